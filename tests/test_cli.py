"""The command line through a real subprocess: exit codes, JSON, messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from tests.fix_pg import Db
from tests.fix_spec import CliResult

Cli = Callable[..., CliResult]


def test_plan_of_a_broken_spec_exits_2_with_the_field_path(cli: Cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec()
    path.write_text(path.read_text().replace("strategy: copy", "strategy: fast"))
    done = cli("plan", "-f", str(path))
    assert done.code == 2
    allowed = "Input should be 'copy', 'online' or 'move'"
    assert f"services.order_service.strategy: {allowed}" in done.stderr
    assert f"{path}:11" in done.stderr


def test_broken_spec_as_json(cli: Cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec()
    path.write_text(path.read_text().replace("tables: [orders, order_items]", "tables: []"))
    done = cli("plan", "-f", str(path), "--output", "json")
    assert done.code == 2
    err = done.json()
    assert err["error"] == "SpecError" and err["exit_code"] == 2
    assert "services.order_service.tables: list at least one table" in err["message"]


def test_missing_spec_file_exits_2_and_suggests_init(cli: Cli) -> None:
    done = cli("status")
    assert done.code == 2
    assert "strangler.yaml (the default) does not exist" in done.stderr
    assert "strangler init" in done.stderr


def test_usage_error_exits_2(cli: Cli) -> None:
    assert cli("status", "--no-such-flag").code == 2


def test_init_writes_a_spec_that_plans(cli: Cli, tmp_path: Path) -> None:
    done = cli("init")
    assert done.code == 0, done.stderr
    assert (tmp_path / "strangler.yaml").exists()
    assert cli("init").code == 2  # refuses to overwrite
    env = {
        "MONOLITH_DSN": "postgresql://app:monolith-pw-1@db/monolith",
        "ORDER_SERVICE_DSN": "postgresql://svc@orders-db/orders",
        "ORDER_SERVICE_DB_PASSWORD": "role-pw-7",
    }
    plan = cli("plan", "--offline", "--output", "json", env=env)
    assert plan.code == 0, plan.stderr
    data = plan.json()
    svc = data["services"][0]
    assert svc["service"] == "order_service" and svc["strategy"] == "online"
    assert [s["action"] for s in svc["steps"]][:4] == [
        "create_schema",
        "copy",
        "start_sync",
        "verify",
    ]
    assert svc["source"].startswith("postgresql://app:***@db/monolith")
    assert "monolith-pw-1" not in plan.stdout and "role-pw-7" not in plan.stdout
    text = cli("plan", "--offline", env=env)
    assert text.code == 0 and "create_schema" in text.stdout
    # Connecting, as terraform plan does: the hosts do not exist, a finding, exit 1.
    reached = cli("plan", env=env)
    assert reached.code == 1 and "finding: order_service: monolith" in reached.stderr
    assert "monolith-pw-1" not in reached.stdout + reached.stderr
    # Without the variables the plan names what is missing, and no value.
    missing = cli("plan")
    assert missing.code == 2
    assert "environment variable MONOLITH_DSN is not set" in missing.stderr


def test_schema_prints_json_schema(cli: Cli) -> None:
    done = cli("schema")
    assert done.code == 0
    doc = json.loads(done.stdout)
    assert set(doc["required"]) == {"version", "source", "services"}
    assert "base_dir" not in doc["properties"]


def test_status_and_history_json(cli: Cli, write_spec, source_db: Db) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(source=source_db.dsn)
    done = cli("status", "-f", str(path), "--output", "json")
    assert done.code == 0, done.stderr
    rows = done.json()["services"]
    assert rows == [
        {
            "service": "order_service",
            "strategy": "copy",
            "phase": "planned",
            "weight": 0.0,
            "last_step": None,
            "last_status": None,
            "last_at": None,
            "last_age_seconds": None,
            "last_verification": None,
            "incomplete_steps": [],
        }
    ]
    hist = cli("history", "order_service", "-f", str(path), "-o", "json")
    assert hist.code == 0 and hist.json()["entries"] == []
    unknown = cli("history", "nope", "-f", str(path))
    assert unknown.code == 2 and "no service 'nope'" in unknown.stderr


def test_resolve_requires_a_reason(cli: Cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec()
    done = cli("resolve", "order_service", "-f", str(path))
    assert done.code == 2
    ok = cli("resolve", "order_service", "-f", str(path), "--reason", "checked")
    assert ok.code == 0 and "nothing to resolve" in ok.stdout


def test_every_command_has_help(cli: Cli) -> None:
    top = cli("--help")
    assert top.code == 0
    for command in ("init", "schema", "plan", "status", "history", "resolve", "demo"):
        assert command in top.stdout
        sub = cli(command, "--help")
        assert sub.code == 0 and len(sub.stdout) > 100, command


def test_rollback_needs_one_kind_and_a_reason(cli: Cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec()
    none = cli("rollback", "order_service", "-f", str(path), "--reason", "x")
    assert none.code == 2 and "choose exactly one of --traffic" in none.stderr
    two = cli(
        "rollback", "order_service", "-f", str(path), "--traffic", "--schema", "--reason", "x"
    )
    assert two.code == 2
    no_reason = cli("rollback", "order_service", "-f", str(path), "--traffic")
    assert no_reason.code == 2 and "needs --reason" in no_reason.stderr


def test_the_command_table_names_the_module_that_registers_each_command() -> None:
    # main() imports only the module of the command it runs (issue 16, start-up); a command
    # missing from COMMANDS, or listed under the wrong module, would be "No such command".
    from strangler.cli import COMMANDS, load_commands
    from strangler.cli.app import app

    load_commands()
    registered = {
        (c.name or c.callback.__name__): c.callback.__module__.rsplit(".", 1)[1]  # type: ignore[union-attr]
        for c in app.registered_commands
    }
    assert registered == COMMANDS


def test_each_command_runs_with_only_its_own_module_loaded(cli: Cli) -> None:
    # With COMMANDS wrong, the command would not exist in a process that loaded one module.
    for command, module in (("status", "core"), ("rollback", "rollback"), ("k8s", "bulk")):
        done = cli(command, "--help")
        assert done.code == 0 and f"Usage: strangler {command} " in done.stdout, module
    wrong = cli("statu")
    assert wrong.code == 2 and "Did you mean 'status'" in wrong.stderr


def test_help_keeps_examples_as_written_and_wraps_to_the_terminal(cli: Cli) -> None:
    narrow = cli("rollback", "--help", env={"COLUMNS": "60"})
    # Everything fits in 60 columns but the examples, which are kept whole to be pasted.
    lines = [line for line in narrow.stdout.splitlines() if "   strangler rollback" not in line]
    assert len(lines) > 20 and max(len(line) for line in lines) <= 60
    # An example is one line, indented, never merged with the next or rewrapped.
    examples = narrow.stdout.split("Examples:\n", 1)[1].split("╭", 1)[0].rstrip().splitlines()
    assert len(examples) == 3 and all(
        e.startswith("   strangler rollback order_service") for e in examples
    )
    assert "Usage: strangler rollback [OPTIONS] SERVICE" in narrow.stdout
    wide = cli("rollback", "--help", env={"COLUMNS": "200"})
    # Every option is listed with its help; a required argument is marked; defaults shown.
    assert re.search(r"│ \*\s+service\s+<str>\s+The service\. \[required\]", wide.stdout)
    assert re.search(r"│\s+--output\s+-o\s+<text\|json\|yaml\|wide>\s+text for people", wide.stdout)
    assert "[default: text]" in wide.stdout
    assert max(len(line) for line in wide.stdout.splitlines()) == 100  # help's own cap
    # A summary is the help's first paragraph on one line, never cut mid-sentence.
    top = cli("--help", env={"COLUMNS": "200"})
    rows = top.stdout.split("│ throttle ", 1)[1].split("│ sync ", 1)[0]
    said = " ".join(part.strip(" │\n") for part in rows.split("│"))
    assert "between two chunks or rounds; without an option, show the pause" in " ".join(
        said.split()
    )
