"""``strangler run`` through the command line: each reason it waits (exit 75), done (0),
a failing gate (1), bad input (2) and an unreachable database (3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from strangler.journal import Journal
from tests.fix_pg import Db
from tests.fix_spec import CliResult
from tests.fix_traffic import TrafficWorld, at_phase

Cli = Callable[..., CliResult]


def _router(world: TrafficWorld) -> str:
    return f'{{ kind: local, admin_url: "{world.proxy.url}" }}'


def _run(cli: Cli, spec: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli("run", "order_service", "-f", str(spec), "-o", "json", *args)
    assert done.code in (0, 1, 75), done.stderr
    (service,) = done.json()["services"]
    return done.code, service


def _sleep_until(iso: str) -> None:
    until = datetime.fromisoformat(iso)
    time.sleep(max(0.0, (until - datetime.now(until.tzinfo)).total_seconds()) + 0.05)


def test_run_waits_for_each_bake_then_finishes_the_walk(
    cli: Cli, traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="2s", interval="1s")
    at_phase(tmp_path / "state.db", "verified")
    code, first = _run(cli, spec, "--until", "traffic_complete")
    assert code == 75, first
    assert first["status"] == "waiting" and first["waiting"]["reason"] == "bake"
    assert [s["action"] for s in first["steps"]] == []
    assert traffic_world.proxy.service_percent() == 50  # the first step was taken, then a wait
    assert first["waiting"]["until"] is not None
    seen = 0
    while code == 75:
        seen += 1
        assert seen < 20, "the walk never finished"
        _sleep_until(first["waiting"]["until"])
        code, first = _run(cli, spec, "--until", "traffic_complete")
    assert code == 0, first
    assert first["status"] == "done" and first["phase"] == "traffic_complete"
    assert traffic_world.proxy.service_percent() == 100
    # A run at the target phase has nothing to do and says so with exit 0.
    assert _run(cli, spec, "--until", "traffic_complete")[0] == 0
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
        runs = [e for e in journal.history("order_service") if e.step == "run"]
        assert {e.status for e in runs} == {"waiting", "done"}


def test_run_waits_for_an_approval(
    cli: Cli, traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="1s", interval="1s")
    spec.write_text(
        spec.read_text().replace("      gates:", "      approve_before: [50]\n      gates:")
    )
    at_phase(tmp_path / "state.db", "verified")
    code, result = _run(cli, spec)
    assert code == 75
    assert result["waiting"]["reason"] == "approval"
    assert result["waiting"]["command"] == "strangler shift order_service --approve"
    assert result["waiting"]["until"] is None
    assert traffic_world.proxy.service_percent() == 0
    text = cli("run", "order_service", "-f", str(spec))
    assert text.code == 75 and "waiting (approval)" in text.stdout
    assert "next: strangler shift order_service --approve" in text.stdout
    assert cli("shift", "order_service", "--approve", "-f", str(spec)).code == 0
    code, result = _run(cli, spec, "--until", "traffic")
    assert code == 0 and traffic_world.proxy.service_percent() == 50


def test_run_fails_with_exit_1_when_a_gate_fails_and_traffic_is_back_on_the_monolith(
    cli: Cli, traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    proxy = traffic_world.proxy
    traffic_world.service.failure_rate = 0.3
    traffic_world.service.fail_when = lambda: proxy.service_percent() >= 50
    spec = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="3s", interval="1s")
    at_phase(tmp_path / "state.db", "verified")
    code, result = _run(cli, spec)
    rounds = 0
    while code == 75:
        rounds += 1
        assert rounds < 20
        _sleep_until(result["waiting"]["until"])
        code, result = _run(cli, spec)
    assert code == 1, result
    assert result["status"] == "failed" and result["error"]["error"] == "GateFailed"
    assert "gates failed at 50 %" in result["error"]["message"]
    assert proxy.service_percent() == 0
    # Called again, it does not start over by itself: the rollback is the operator's to undo.
    code, again = _run(cli, spec)
    assert code == 1 and "rolled back" in again["error"]["message"]
    assert "--retry" in again["error"]["hint"]


def test_run_waits_for_an_attestation_then_names_the_unreachable_database(
    cli: Cli, tmp_path: Path
) -> None:
    dev = tmp_path / "dev.yaml"
    dev.write_text(
        "version: 1\nstate: sqlite:///dev.db\nsource: { dsn: postgresql://x/m }\n"
        "services:\n  order_service:\n    tables: [orders]\n    target: { schema: s }\n"
    )
    with Journal(f"sqlite:///{tmp_path / 'dev.db'}") as journal:
        journal.outcome(journal.intent("order_service", "rollback_traffic"), "ok")
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        "version: 1\nstate: sqlite:///state.db\n"
        "source: { dsn: 'postgresql://app@127.0.0.1:9/monolith?connect_timeout=2' }\n"
        "services:\n  order_service:\n    tables: [orders]\n"
        "    target: { schema: order_service }\n    strategy: copy\n"
        "    preflight: { attestations: [oncall], rehearsal_spec: dev.yaml }\n"
    )
    code, result = _run(cli, spec)
    assert code == 75, result
    assert result["waiting"]["reason"] == "attestation"
    assert result["waiting"]["command"] == "strangler attest order_service oncall --note '…'"
    assert result["phase"] == "planned"
    assert cli("attest", "order_service", "oncall", "--note", "paged", "-f", str(spec)).code == 0
    done = cli("run", "order_service", "-f", str(spec))
    assert done.code == 3, done.stderr
    assert "127.0.0.1:9" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_run_waits_for_the_grace_period_before_dropping_old_tables(
    cli: Cli, tmp_path: Path
) -> None:
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        "version: 1\nstate: sqlite:///state.db\nsource: { dsn: postgresql://x/m }\n"
        "services:\n  order_service:\n    tables: [orders]\n    target: { schema: s }\n"
        "    decommission: { drop_old_tables_after: 3d }\n"
    )
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
        intent = journal.intent("order_service", "remove_old_path")
        journal.outcome(intent, "ok", phase="old_path_removed")
    code, result = _run(cli, spec)
    assert code == 75
    assert result["waiting"]["reason"] == "grace_period"
    assert "dropped only 3d after that" in result["waiting"]["message"]
    until = datetime.fromisoformat(result["waiting"]["until"])
    assert 2.9 < (until - datetime.now(until.tzinfo)).total_seconds() / 86400 < 3.01


def test_run_waits_for_the_stable_window_of_the_decommission_check(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    source_db.execute("CREATE TABLE public.orders (id int PRIMARY KEY)")
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        "version: 1\nstate: sqlite:///state.db\n"
        f"source: {{ dsn: '{source_db.dsn}' }}\n"
        "services:\n  order_service:\n    tables: [orders]\n    target: { schema: s }\n"
        "    decommission: { stable_for: 1h, write_window: 10m }\n"
    )
    at_phase(tmp_path / "state.db", "verified")
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
        shift = journal.intent("order_service", "shift_traffic", details={"weight": 100})
        journal.outcome(shift, "ok", phase="traffic_complete", weight=100)
    code, result = _run(cli, spec)
    assert code == 75, result
    assert result["waiting"]["reason"] == "time"
    assert "traffic has been at 100% for" in result["waiting"]["message"]
    until = datetime.fromisoformat(result["waiting"]["until"])
    assert 3500 < (until - datetime.now(until.tzinfo)).total_seconds() <= 3600
    guard = source_db.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass "
        "AND NOT tgisinternal"
    )
    assert guard[0][0] >= 1, "the write guard went on while the window runs"


def test_run_dry_run_prints_the_next_step_and_changes_nothing(
    cli: Cli, traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = traffic_spec(_router(traffic_world))
    at_phase(tmp_path / "state.db", "verified")
    done = cli("run", "order_service", "-f", str(spec), "--dry-run", "-o", "json")
    assert done.code == 0, done.stderr
    (plan,) = done.json()["services"]["order_service"]
    assert plan["action"] == "shift_traffic"
    assert plan["operations"][0]["what"].startswith("set 5 % to order_service")
    assert traffic_world.proxy.service_percent() == 0
    text = cli("run", "order_service", "-f", str(spec), "--dry-run")
    assert "shift_traffic (verified → traffic)" in text.stdout


def test_run_bad_input_exits_2(cli: Cli, traffic_spec: Callable[..., Path]) -> None:
    spec = traffic_spec('{ kind: local, admin_url: "http://127.0.0.1:1" }')
    bad = cli("run", "order_service", "-f", str(spec), "--until", "someday")
    assert bad.code == 2 and "--until 'someday' is not a phase" in bad.stderr
    assert cli("run", "-f", str(spec)).code == 2
    assert cli("run", "nobody", "-f", str(spec)).code == 2
    both = cli("run", "order_service", "--all", "-f", str(spec))
    assert both.code == 2 and "name one service, or pass --all" in both.stderr


def test_run_refuses_to_retire_old_tables_written_after_stable(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    """Issue 13 through ``run``: stable was reached, then a legacy writer wrote; the next run
    fails (exit 1) naming the write, instead of archiving and moving the tables away."""
    source_db.execute("CREATE TABLE public.orders (id int PRIMARY KEY, n int)")
    source_db.execute("INSERT INTO public.orders VALUES (1, 0)")
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        "version: 1\nstate: sqlite:///state.db\n"
        f"source: {{ dsn: '{source_db.dsn}' }}\n"
        "services:\n  order_service:\n    tables: [orders]\n    target: { schema: s }\n"
        "    decommission: { stable_for: 1s, write_window: 1s, archive_dir: archive }\n"
    )
    at_phase(tmp_path / "state.db", "verified")
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
        shift = journal.intent("order_service", "shift_traffic", details={"weight": 100})
        journal.outcome(shift, "ok", phase="traffic_complete", weight=100)
    code, result = _run(cli, spec, "--until", "stable")
    while code == 75 and result["waiting"]["reason"] == "time":
        _sleep_until(result["waiting"]["until"])
        code, result = _run(cli, spec, "--until", "stable")
    assert code == 75 and result["waiting"]["reason"] == "attestation", result
    attested = cli("attest", "order_service", "no_incident", "--note", "quiet", "-f", str(spec))
    assert attested.code == 0
    code, result = _run(cli, spec, "--until", "stable")
    assert (code, result["phase"]) == (0, "stable"), result

    with source_db.connect() as conn:  # the monolith's old code path, still running
        conn.execute("UPDATE public.orders SET n = n + 1")
    code, result = _run(cli, spec)
    assert code == 1, result
    assert result["phase"] == "stable"
    assert (
        "old tables are not proven unwritten, measured now: 1 write(s)"
        in (result["error"]["message"])
    )
    assert source_db.execute("SELECT to_regclass('public.orders') IS NOT NULL") == [(True,)]
    assert not (tmp_path / "archive").exists()
