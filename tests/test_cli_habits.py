"""The command line has its neighbours' habits (kubectl, terraform, Argo Rollouts), issue 14."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from strangler.cli.app import WORKFLOW
from strangler.journal import Journal
from tests.cdc_world import make_shop
from tests.fix_spec import CliResult
from tests.fix_traffic import at_phase

Cli = Callable[..., CliResult]


def _commands(cli: Cli) -> list[str]:
    top = cli("--help")
    return re.findall(r"^│ ([a-z]+)\s", top.stdout, flags=re.M)


def test_version_and_commands_in_workflow_order(cli: Cli) -> None:
    done = cli("--version")
    assert done.code == 0 and re.fullmatch(r"strangler \d+\.\d+\.\d+\n", done.stdout)
    listed = _commands(cli)
    assert listed[:3] == ["init", "plan", "preflight"]
    assert listed == sorted(listed, key=WORKFLOW.index)  # the order a migration uses them
    for command in ("report", "dashboard", "describe", "completion"):
        assert command in listed


def test_every_command_has_examples_and_no_bool_metavar(cli: Cli) -> None:
    for command in _commands(cli):
        helped = cli(command, "--help", env={"COLUMNS": "120"})
        assert helped.code == 0, command
        assert "Examples:" in helped.stdout, command
        assert f"strangler {command}" in helped.stdout.split("Examples:")[1], command
        assert "<bool>" not in helped.stdout, command


def test_completion_scripts_and_answers(cli: Cli) -> None:
    for shell in ("bash", "zsh", "fish"):
        script = cli("completion", shell)
        assert script.code == 0 and "_STRANGLER_COMPLETE" in script.stdout, shell
    answer = cli("", env={"_STRANGLER_COMPLETE": "complete_bash", "COMP_WORDS": "strangler sta",
                          "COMP_CWORD": "1"})  # fmt: skip
    assert answer.stdout.split() == ["status"]


def test_piped_tables_are_plain_and_never_cut(cli: Cli, write_spec: Callable[..., Path]) -> None:
    long_table = "order_status_history_with_a_name_longer_than_a_column"
    spec = write_spec()
    spec.write_text(spec.read_text().replace("order_items]", f"{long_table}]"))
    journal = Journal(f"sqlite:///{spec.parent / 'state.db'}", operator="ops", command="test")
    try:
        journal.event(
            "order_service",
            "verify",
            status="failed",
            details={"mode": "rows", "tables": {f"public.{long_table}": {"missing": 3}}},
            reason="a reason with several words that must never be cut in the middle of one",
        )
    finally:
        journal.close()
    narrow = {"COLUMNS": "40"}
    status = cli("status", "-f", str(spec), env=narrow)
    assert status.code == 0, status.stderr
    assert "…" not in status.stdout and "│" not in status.stdout  # plain, nothing cut
    assert "order_service  copy" in status.stdout
    history = cli("history", "order_service", "-f", str(spec), env=narrow)
    assert "cut in the middle of one" in history.stdout and "…" not in history.stdout
    assert "{" not in history.stdout and "'" not in history.stdout  # no Python reprs
    plan = cli("plan", "-f", str(spec), "--offline", env=narrow)
    assert long_table in plan.stdout


def test_json_yaml_wide_without_human_strings(cli: Cli, write_spec: Callable[..., Path]) -> None:
    spec = write_spec()
    at_phase(spec.parent / "state.db", "copied")
    as_json = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
    assert "ago" not in json.dumps(as_json)
    assert isinstance(as_json["last_age_seconds"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", as_json["last_at"])
    as_yaml = yaml.safe_load(cli("status", "-f", str(spec), "-o", "yaml").stdout)
    assert as_yaml["services"][0]["phase"] == "copied"
    wide = cli("status", "-f", str(spec), "-o", "wide")
    assert "last at (UTC)" in wide.stdout and "running" in wide.stdout
    described = cli("describe", "order_service", "-f", str(spec))
    assert described.code == 0 and "Phase:" in described.stdout and "copied" in described.stdout
    assert "True" not in described.stdout and "None" not in described.stdout
    assert cli("describe", "order_service", "-f", str(spec), "-o", "json").json()["phase"] == (
        "copied"
    )


HOLDER = """
import os, socket, sys, time
from strangler.journal import Journal
j = Journal(sys.argv[1], operator="alice", command="strangler copy order_service")
with j.lock("order_service"):
    j.intent("order_service", "copy", details={"pid": os.getpid(), "host": socket.gethostname()})
    print("holding", flush=True)
    time.sleep(120)
"""


def test_status_shows_a_step_another_process_is_running(
    cli: Cli, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec()
    holder = tmp_path / "hold.py"
    holder.write_text(HOLDER)
    url = f"sqlite:///{spec.parent / 'state.db'}"
    proc = subprocess.Popen([sys.executable, str(holder), url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        running = cli("status", "-f", str(spec))
        assert f"is running: pid {proc.pid}" in running.stderr, running.stderr
        assert "never finished" not in running.stderr
        data = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
        assert data["incomplete_steps"][0]["state"] == "running"
        assert data["incomplete_steps"][0]["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    died = cli("status", "-f", str(spec))
    assert "never finished" in died.stderr and "strangler resolve" in died.stderr


def test_status_watch_until_and_timeout(cli: Cli, write_spec: Callable[..., Path]) -> None:
    spec = write_spec()
    timed_out = cli("status", "-f", str(spec), "--watch", "--until", "copied",
                    "--timeout", "2s", "--interval", "0.3")  # fmt: skip
    assert timed_out.code == 75 and "still waiting after 2s for copied" in timed_out.stderr
    # The phase changes only once the watcher has printed what it saw first (a timer would
    # race a slow start of the command on a busy machine).
    watcher = subprocess.Popen(
        [sys.executable, "-m", "strangler", "status", "-f", str(spec), "--watch", "--until",
         "copied", "-o", "json", "--timeout", "60s", "--interval", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=spec.parent,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        at_phase(spec.parent / "state.db", "copied")
        rest, err = watcher.communicate(timeout=90)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    assert "Traceback" not in err
    lines = [json.loads(line) for line in (first + rest).splitlines()]
    assert lines[0]["services"][0]["phase"] == "planned"
    assert lines[-1]["services"][0]["phase"] == "copied"  # printed again on the change


def test_destructive_steps_need_yes_without_a_terminal(
    cli: Cli, write_spec: Callable[..., Path]
) -> None:
    spec = write_spec(strategy="online")
    schema = cli("rollback", "order_service", "--schema", "--reason", "x", "-f", str(spec))
    assert schema.code == 2 and "pass --yes" in schema.stderr
    decommission = cli("decommission", "order_service", "-f", str(spec))
    assert decommission.code == 2 and "pass --yes" in decommission.stderr
    at_phase(spec.parent / "state.db", "writes_cut_over")
    stop = cli("sync", "order_service", "--stop", "-f", str(spec))
    assert stop.code == 2 and "reverse sync" in stop.stderr and "pass --yes" in stop.stderr
    status = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
    assert status["phase"] == "writes_cut_over"  # nothing changed


def test_ctrl_c_says_how_to_continue(source_db, target_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_shop(source_db, None, rows=100)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        "version: 1\nstate: sqlite:///state.db\n"
        f'source: {{ dsn: "{source_db.dsn}", schema: public }}\n'
        "services:\n  shop:\n    tables: [orders, items]\n"
        f'    target: {{ dsn: "{target_db.dsn}", schema: svc }}\n    strategy: copy\n'
    )
    blocker = source_db.connect(autocommit=False)
    blocker.execute("LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "copy", "shop", "-f", str(spec)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the copy waits on the lock
            waiting = source_db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            if waiting[0][0]:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        blocker.rollback()
        blocker.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"Run 'strangler copy shop -f {spec}' again to continue" in err
    assert "finished chunks are kept" in err


PLAN_SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: {strategy}
"""


def test_plan_has_terraforms_exit_codes(source_db, target_db, tmp_path: Path, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    make_shop(source_db, None, rows=5)
    spec = tmp_path / "strangler.yaml"

    def plan(*args: str, **fmt: str) -> CliResult:
        values = {"source": source_db.dsn, "target": target_db.dsn, "strategy": "online", **fmt}
        spec.write_text(PLAN_SPEC.format(**values))
        return cli("plan", "-f", str(spec), *args)

    good = plan()
    assert good.code == 0, good.stderr
    assert plan("--detailed-exitcode").code == 2  # steps to come, nothing wrong
    inst = source_db.instance
    wrong_pw = plan(source=inst.dsn(source_db.name, password="not-the-password"))
    assert wrong_pw.code == 1, wrong_pw.stderr
    assert "finding: shop: monolith" in wrong_pw.stderr and "not-the-password" not in (
        wrong_pw.stderr + wrong_pw.stdout
    )
    text = PLAN_SPEC.format(source=source_db.dsn, target=target_db.dsn, strategy="online")
    spec.write_text(text.replace("[orders, items]", "[orders, nope]"))
    missing = cli("plan", "-f", str(spec), "-o", "json")
    assert missing.code == 1
    assert [f["message"] for f in missing.json()["findings"]] == [
        "table public.nope does not exist"
    ]
    source_db.execute("ALTER TABLE public.items REPLICA IDENTITY NOTHING")
    unpublishable = plan()
    assert unpublishable.code == 1 and "REPLICA IDENTITY" in unpublishable.stderr
    assert plan(strategy="copy").code == 0  # a copy never publishes the table
    bad_spec = plan(strategy="fast")
    assert bad_spec.code == 2
    assert plan("--detailed-exitcode", strategy="fast").code == 1  # terraform: errors are 1


def test_init_writes_a_spec_the_whole_runbook_rehearses_from(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").code == 0
    text = (tmp_path / "strangler.yaml").read_text()
    env = {
        "MONOLITH_DSN": "postgresql://app@db/monolith",
        "ORDER_SERVICE_DSN": "postgresql://svc@orders-db/orders",
        "ORDER_SERVICE_DB_PASSWORD": "pw",
    }
    plan = cli("plan", "--offline", "-o", "json", env=env)
    assert plan.code == 0, plan.stderr
    svc = plan.json()["services"][0]
    assert "max_retained_wal: 1GB" in text
    assert svc["traffic"]["router"] == "local"  # rehearsable without a cloud
    assert [s["weight"] for s in svc["traffic"]["steps"]] == [5, 20, 50, 100]
    assert not any("no traffic: section" in w for w in svc["warnings"])


def test_long_commands_log_json_lines(source_db, target_db, tmp_path: Path, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    make_shop(source_db, None, rows=50)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(PLAN_SPEC.format(source=source_db.dsn, target=target_db.dsn,
                                     strategy="online"))  # fmt: skip

    def lines(done: CliResult) -> list[dict[str, object]]:
        assert done.code == 0, done.stderr
        found = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
        assert found
        for line in found:
            assert {"ts", "level", "msg", "command"} <= set(line)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", str(line["ts"]))
        return found

    copied = lines(cli("copy", "shop", "-f", str(spec), "--log-format", "json"))
    assert any(x.get("table") == "orders" and x.get("rows") for x in copied)
    source_db.execute("INSERT INTO public.orders (customer, total) VALUES ('new', 1)")
    synced = lines(cli("sync", "shop", "-f", str(spec), "--until-caught-up",
                       "--log-format", "json", "-o", "json"))  # fmt: skip
    assert any(x.get("rows") for x in synced)
    ran = lines(cli("run", "shop", "-f", str(spec), "--until", "verified", "--log-format", "json"))
    assert any("verify" in str(x["msg"]) for x in ran)
