"""Verification in the runbook: journal events, phase moves, evidence for cutover, the CLI,
``strangler status``, and rechecks through the online-sync watermark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from strangler.errors import CheckFailed
from strangler.journal import Journal
from strangler.phases import Action
from strangler.spec import load_spec
from strangler.steps.requirements import fresh_verification
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify
from strangler.verify import SyncWatermark
from tests.verify_helpers import SPEC, both, digest, make_spec, run

ORDERS = """
CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2), notes text);
INSERT INTO orders SELECT g, g * 1.25, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, 2000) g;
CREATE TABLE order_items (order_id bigint, line int, qty int, PRIMARY KEY (order_id, line));
INSERT INTO order_items SELECT g / 3, g % 3, g FROM generate_series(3, 3000) g;
"""


def _copied(spec: Any, journal: Journal, service: str) -> Runbook:
    """Walk the journal to 'copied' as the copy command would (the data is made with SQL)."""
    rb = Runbook(spec, journal, service)
    for action in (Action.CREATE_SCHEMA, Action.COPY):
        with rb.step(action):
            pass
    return rb


@pytest.fixture
def world(source_db, target_db, tmp_path: Path):
    both([source_db, target_db], ORDERS)
    spec = make_spec(source_db.dsn, target_db.dsn, ["orders", "order_items"], tmp_path / "s.db")
    journal = Journal(spec.state_url(), operator="test", command="pytest")
    yield spec, journal, source_db, target_db
    journal.close()


def test_failed_verification_is_journaled_and_keeps_the_phase(world) -> None:
    spec, journal, _src, tgt = world
    rb = _copied(spec, journal, "svc")
    tgt.execute("UPDATE svc.orders SET notes = NULL WHERE id = 10")
    report = verify(Runbook(spec, journal, "svc"))
    assert not report.passed
    assert rb.phase.value == "copied"
    event = journal.last("svc", "verify", status="failed")
    assert event is not None and event.kind == "event"
    assert event.details["tables"]["public.orders"]["changed"] == 1
    assert event.details["tables"]["public.orders"]["first"] == [
        {"kind": "changed", "key": {"id": "10"}, "columns": ["notes"]}
    ]
    assert journal.history("svc")[-1].id == event.id  # the verdict is the newest entry

    tgt.execute("UPDATE svc.orders SET notes = 'n10' WHERE id = 10")
    assert verify(Runbook(spec, journal, "svc")).passed
    assert rb.phase.value == "verified"
    assert journal.last("svc", "verify", status="passed") is not None


def test_evidence_requires_a_fresh_passing_verification(world) -> None:
    spec, journal, _src, tgt = world
    rb = _copied(spec, journal, "svc")
    with pytest.raises(CheckFailed, match="never been verified") as never:
        fresh_verification(rb)
    assert never.value.hint == "strangler verify svc"

    tgt.execute("DELETE FROM svc.order_items WHERE order_id = 5 AND line = 1")
    verify(Runbook(spec, journal, "svc"))
    with pytest.raises(CheckFailed, match="found differences"):
        fresh_verification(rb)
    # A counts-only pass proves nothing about values and does not clear the refusal.
    tgt.execute("INSERT INTO svc.order_items VALUES (5, 1, 999)")
    assert verify(Runbook(spec, journal, "svc"), mode="counts").passed
    with pytest.raises(CheckFailed, match="found differences"):
        fresh_verification(rb)

    tgt.execute("UPDATE svc.order_items SET qty = 16 WHERE order_id = 5 AND line = 1")
    assert verify(Runbook(spec, journal, "svc")).passed
    fresh_verification(rb)
    with rb.step(Action.SHIFT_TRAFFIC, weight=5):
        pass
    assert rb.phase.value == "traffic"

    # The copy changes after the proof (a re-copy): the proof is stale again.
    intent = journal.intent("svc", "copy")
    journal.outcome(intent, "ok")
    with (
        pytest.raises(CheckFailed, match="the copy changed") as stale,
        rb.step(Action.SHIFT_TRAFFIC, weight=20),
    ):
        pass
    assert stale.value.hint == "strangler verify svc"
    assert rb.state.weight == 5


# A verification killed as it journals its verdict: the process dies (os._exit, as kill -9
# would) the moment the verify event is written, after the rows were compared.
_KILLED_AS_IT_JOURNALS = """
import os, sys
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify

insert = Journal._insert

def dying_insert(self, service, step, kind, **kw):
    if kind == "event" and step == "verify":
        os._exit(9)
    return insert(self, service, step, kind, **kw)

Journal._insert = dying_insert
spec = load_spec(sys.argv[1])
with Journal(spec.state_url(), operator="test", command="verify svc") as journal:
    verify(Runbook(spec, journal, "svc"))
"""


def test_a_verification_killed_as_it_journals_its_verdict_leaves_no_phase_without_proof(
    source_db, target_db, tmp_path: Path
) -> None:
    """The phase and the proof land in one transaction. They were two: a run killed between
    them found the service 'verified' and its cutover refused for ever with 'never been
    verified' (CI, test_run_library, seed 221014383)."""
    both([source_db, target_db], ORDERS)
    path = tmp_path / "strangler.yaml"
    path.write_text(
        SPEC.format(
            state=tmp_path / "s.db",
            source=json.dumps(source_db.dsn),
            target=json.dumps(target_db.dsn),
            tables=json.dumps(["orders", "order_items"]),
        )
    )
    spec = load_spec(path)
    with Journal(spec.state_url(), operator="test", command="pytest") as journal:
        _copied(spec, journal, "svc")
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_AS_IT_JOURNALS, str(path)], capture_output=True, text=True
    )
    assert child.returncode == 9, child.stderr
    with Journal(spec.state_url(), operator="test", command="pytest") as journal:
        rb = Runbook(spec, journal, "svc")
        assert rb.phase.value == "copied"  # not 'verified' without its proof
        assert [e.step for e in journal.dangling("svc")] == ["verify"]
        with pytest.raises(CheckFailed, match="never been verified"):
            fresh_verification(rb)
        # The documented recovery: the same command again resumes the step and proves it.
        assert verify(rb).passed
        assert rb.phase.value == "verified"
        assert fresh_verification(rb)["status"] == "passed"
        assert journal.dangling("svc") == []


class FakeSync:
    """A watermark whose 'sync' applies pending SQL to the target when waited on."""

    def __init__(self, target: Any, pending: list[str], *, catches_up: bool = True) -> None:
        self.target, self.pending, self.catches_up = target, pending, catches_up
        self.position = 0
        self.waited: list[tuple[str, float]] = []

    def source_position(self) -> str:
        self.position += 1
        return f"0/{self.position:X}"

    def wait_applied(self, lsn: str, timeout: float) -> bool:
        self.waited.append((lsn, timeout))
        if not self.catches_up:
            return False
        for statement in self.pending:
            self.target.execute(statement)
        self.pending = []
        return True


def test_recheck_reports_only_differences_that_persist(source_db, target_db, tmp_path) -> None:
    both([source_db, target_db], ORDERS)
    # Lag: the source moved on and the sync has not applied it yet; plus one real difference.
    source_db.execute(
        "UPDATE orders SET total = 1 WHERE id IN (7, 8); DELETE FROM orders WHERE id = 9"
    )
    target_db.execute("UPDATE svc.orders SET notes = 'damaged' WHERE id = 1500")
    sync = FakeSync(
        target_db,
        [
            "UPDATE svc.orders SET total = 1 WHERE id IN (7, 8)",
            "DELETE FROM svc.orders WHERE id = 9",
        ],
    )
    assert isinstance(sync, SyncWatermark)
    naps: list[float] = []
    report = run(
        source_db, target_db, ["orders"], tmp_path, recheck=3, watermark=sync, sleep=naps.append
    )
    assert digest(report) == {("changed", "id=1500", ("notes",))}
    assert report.tables[0].cleared_by_recheck == 3
    assert [lsn for lsn, _ in sync.waited] == ["0/1", "0/2", "0/3"]
    assert naps == [0.5, 1.0]  # backoff between the three reads of the persisting row


def test_recheck_keeps_differences_when_sync_lags(source_db, target_db, tmp_path) -> None:
    both([source_db, target_db], ORDERS)
    source_db.execute("DELETE FROM orders WHERE id = 9")
    sync = FakeSync(target_db, ["DELETE FROM svc.orders WHERE id = 9"], catches_up=False)
    report = run(source_db, target_db, ["orders"], tmp_path, recheck=2, watermark=sync)
    assert digest(report) == {("extra", "id=9", ())}
    assert "had not applied the source up to 0/1" in report.tables[0].problems[0]


def test_cli_verify_status_and_exit_codes(source_db, target_db, write_spec, cli) -> None:
    both([source_db, target_db], ORDERS)
    target_db.execute(
        "CREATE SCHEMA order_service;"
        "ALTER TABLE svc.orders SET SCHEMA order_service;"
        "ALTER TABLE svc.order_items SET SCHEMA order_service;"
    )
    path = write_spec(source=source_db.dsn, target=target_db.dsn)
    spec = load_spec(path)
    with Journal(spec.state_url(), operator="t") as journal:
        _copied(spec, journal, "order_service")

    plan = cli("verify", "order_service", "-f", str(path), "--dry-run", "-o", "json")
    assert plan.code == 0, plan.stderr
    assert plan.json()["tables"][0] == {"source": "public.orders", "target": "order_service.orders"}

    target_db.execute("UPDATE order_service.orders SET total = total + 0.01 WHERE id = 42")
    target_db.execute("INSERT INTO order_service.order_items VALUES (4000, 1, 1)")
    bad = cli("verify", "order_service", "-f", str(path), "-o", "json")
    assert bad.code == 1, bad.stderr
    data = bad.json()
    assert data["status"] == "failed"
    rows = {t["source"]: t["rows"] for t in data["tables"]}
    assert rows["public.orders"] == [{"kind": "changed", "key": {"id": "42"}, "columns": ["total"]}]
    assert rows["public.order_items"] == [
        {"kind": "extra", "key": {"order_id": "4000", "line": "1"}}
    ]

    text = cli(
        "verify", "order_service", "-f", str(path), "--table", "orders", "--markdown", "v.md"
    )
    assert text.code == 1
    assert "changed  id=42  columns: total" in text.stdout
    assert "DO NOT proceed with cutover" in text.stdout
    assert "| `public.orders` |" in (path.parent / "v.md").read_text()

    status = cli("status", "-f", str(path), "-o", "json").json()["services"][0]
    assert (status["phase"], status["last_verification"]["status"]) == ("copied", "failed")

    target_db.execute("UPDATE order_service.orders SET total = total - 0.01 WHERE id = 42")
    target_db.execute("DELETE FROM order_service.order_items WHERE order_id = 4000")
    good = cli("verify", "order_service", "-f", str(path), "--every", "1ms", "--runs", "2")
    assert good.code == 0, good.stdout + good.stderr
    assert good.stdout.count("the copy is identical") == 2
    status = cli("status", "-f", str(path), "-o", "json").json()["services"][0]
    assert (status["phase"], status["last_verification"]["status"]) == ("verified", "passed")
    history = cli("history", "order_service", "-f", str(path), "-o", "json").json()["entries"]
    verdicts = [e["status"] for e in history if e["kind"] == "event" and e["step"] == "verify"]
    assert verdicts == ["failed", "failed", "passed", "passed"]

    wrong = cli("verify", "order_service", "-f", str(path), "--every", "soon")
    assert wrong.code == 2
    assert "--every" in wrong.stderr
