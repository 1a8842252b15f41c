"""The journal: intents and outcomes, crash detection, locks across real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strangler.errors import IncompleteStep, LockHeld, PhaseRefused
from strangler.journal import Journal
from strangler.phases import Action
from strangler.secrets import register_secret
from strangler.spec import Spec, load_spec
from strangler.steps.runbook import Runbook
from tests.fix_pg import Db


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'journal.db'}"
    else:
        db: Db = request.getfixturevalue("source_db")
        yield db.dsn


@pytest.fixture
def spec_for(write_spec: Callable[..., Path]) -> Callable[[str, str], tuple[Spec, Path]]:
    def make(url: str, strategy: str = "copy") -> tuple[Spec, Path]:
        path = write_spec(
            source="postgresql://localhost/m", target="postgresql://localhost/s", strategy=strategy
        )
        path.write_text(path.read_text().replace("sqlite:///state.db", url))
        return load_spec(path), path

    return make


def test_intent_outcome_and_phase_move_together(journal_url: str) -> None:
    with Journal(journal_url, operator="alice", command="strangler copy") as j:
        assert j.state("svc").phase == "planned"
        intent = j.intent("svc", "copy", reason="window 42", details={"tables": 3})
        assert [e.id for e in j.dangling("svc")] == [intent]
        j.outcome(intent, "ok", details={"rows": 10}, phase="copied")
        assert j.dangling("svc") == []
        assert j.state("svc").phase == "copied"
        hist = j.history("svc")
        assert [(e.kind, e.step, e.status) for e in hist] == [
            ("intent", "copy", None),
            ("outcome", "copy", "ok"),
        ]
        assert hist[0].operator == "alice" and hist[0].reason == "window 42"
        assert hist[0].command == "strangler copy"
        assert hist[1].intent_id == intent and hist[1].details == {"rows": 10}


def test_an_intent_has_at_most_one_outcome(journal_url: str) -> None:
    with Journal(journal_url) as j:
        intent = j.intent("svc", "copy")
        j.outcome(intent, "ok")
        with pytest.raises(Exception, match=r"(?i)unique"):
            j.outcome(intent, "failed")
        assert [e.status for e in j.history("svc") if e.kind == "outcome"] == ["ok"]


def test_secrets_never_reach_the_journal(journal_url: str) -> None:
    register_secret("hunter2-very-secret")
    with Journal(journal_url) as j:
        intent = j.intent(
            "svc",
            "copy",
            reason="pw hunter2-very-secret",
            details={"dsn": "postgresql://u:hunter2-very-secret@h/db"},
        )
        j.outcome(intent, "failed", details={"error": "auth failed for hunter2-very-secret"})
        j.put("svc", "k", {"password": "hunter2-very-secret"})
        text = str([e.to_dict() for e in j.history("svc")]) + str(j.get("svc", "k"))
    assert "hunter2-very-secret" not in text
    assert "***" in text


def test_progress_records(journal_url: str) -> None:
    with Journal(journal_url) as j:
        j.put("svc", "copy/orders/0001", {"rows": 5})
        j.put("svc", "copy/orders/0002", {"rows": 6})
        j.put("svc", "copy/orders/0002", {"rows": 7})
        j.put("svc", "copyx/other", 1)
        j.put("svc", "copy/order_items/0001", {"rows": 1})  # "_" is a LIKE wildcard
        j.put("svc", "copy_other/x", 2)  # must not match the prefix "copy/"
        assert j.items("svc", "copy/order_items/")["copy/order_items/0001"] == {"rows": 1}
        assert "copy_other/x" not in j.items("svc", "copy/")
        j.forget("svc", "copy/order_items/")
        assert j.get("svc", "copy/order_items/0001") is None
        assert j.items("svc", "copy/") == {
            "copy/orders/0001": {"rows": 5},
            "copy/orders/0002": {"rows": 7},
        }
        j.forget("svc", "copy/")
        assert j.items("svc", "copy/") == {}
        assert j.get("svc", "copyx/other") == 1


def test_step_failure_is_recorded_and_phase_unchanged(journal_url: str, spec_for) -> None:  # type: ignore[no-untyped-def]
    spec, _ = spec_for(journal_url)
    with Journal(journal_url, operator="bob") as j:
        rb = Runbook(spec, j, "order_service")
        with pytest.raises(RuntimeError), rb.step(Action.CREATE_SCHEMA):
            raise RuntimeError("boom")
        assert rb.phase == "planned"
        last = j.history("order_service")[-1]
        assert (last.kind, last.status, last.details["error"]) == ("outcome", "failed", "boom")
        with rb.step(Action.CREATE_SCHEMA) as step:
            step.details["schema"] = "order_service"
        assert rb.phase == "schema_ready"
        with pytest.raises(PhaseRefused, match="run 'strangler copy order_service' first"):
            rb.check(Action.VERIFY)


def test_forced_step_needs_a_reason_and_is_journaled(journal_url: str, spec_for) -> None:  # type: ignore[no-untyped-def]
    spec, _ = spec_for(journal_url)
    with Journal(journal_url) as j:
        rb = Runbook(spec, j, "order_service")
        with (
            pytest.raises(PhaseRefused, match="--force needs --reason"),
            rb.step(Action.SHIFT_TRAFFIC, weight=5, force=True),
        ):
            pass
        with rb.step(Action.SHIFT_TRAFFIC, weight=5, force=True, reason="rehearsal") as st:
            st.weight = 5
        assert (rb.phase, rb.state.weight) == ("traffic", 5)
        forced = [e for e in j.history("order_service") if e.status == "forced"]
        assert forced and forced[0].reason == "rehearsal"


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from strangler.journal import Journal
    from strangler.steps.runbook import Runbook
    from strangler.phases import Action
    from strangler.spec import load_spec
    spec = load_spec(sys.argv[1])
    j = Journal(spec.state_url(), operator="alice", command="strangler copy order_service")
    mode = sys.argv[3]
    if mode == "step":
        rb = Runbook(spec, j, "order_service")
        with rb.step(Action.CREATE_SCHEMA):
            Path(sys.argv[2]).write_text("in step")
            time.sleep(60)
    else:
        with j.lock("order_service"):
            Path(sys.argv[2]).write_text("locked")
            time.sleep(60)
    """
)


def _spawn(spec_path: Path, marker: Path, mode: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec_path), str(marker), mode],
        cwd=Path(__file__).parent.parent,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, "child died early"
        assert time.monotonic() < deadline, "child never got going"
        time.sleep(0.05)
    return proc


def _kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_crash_between_intent_and_outcome_is_detected(
    journal_url: str, spec_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec, path = spec_for(journal_url)
    proc = _spawn(path, tmp_path / "marker", "step")
    _kill9(proc)
    with Journal(journal_url, operator="carol", command="strangler copy order_service") as j:
        rb = Runbook(spec, j, "order_service")
        # Not resumable: refused, naming the step, the operator and the process.
        with pytest.raises(IncompleteStep) as info, rb.step(Action.CREATE_SCHEMA):
            pass
        msg = str(info.value)
        assert "step 'create_schema' began" in msg and "by alice" in msg
        assert f"pid {proc.pid}" in msg and "strangler resolve order_service" in msg
        assert rb.phase == "planned"
        # Resumable: the dead intent is closed as crashed and the step carries on.
        with rb.step(Action.CREATE_SCHEMA, resumable=True) as step:
            assert step.resumed_from is not None
            assert step.resumed_from.operator == "alice"
        assert rb.phase == "schema_ready"
        statuses = [
            (e.operator, e.status) for e in j.history("order_service") if e.kind == "outcome"
        ]
        assert statuses == [("carol", "crashed"), ("carol", "ok")]


def test_resolve_abandons_the_dangling_step(journal_url: str, spec_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, path = spec_for(journal_url)
    _kill9(_spawn(path, tmp_path / "marker", "step"))
    with Journal(journal_url) as j:
        rb = Runbook(spec, j, "order_service")
        found = rb.resolve("checked by hand: nothing was created")
        assert [e.step for e in found] == ["create_schema"]
        assert j.dangling("order_service") == []
        with rb.step(Action.CREATE_SCHEMA):
            pass


def test_lock_contention_between_two_processes(journal_url: str, spec_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, path = spec_for(journal_url)
    proc = _spawn(path, tmp_path / "marker", "lock")
    try:
        with Journal(journal_url, operator="dave") as j:
            with pytest.raises(LockHeld) as info, j.lock("order_service"):
                pass
            msg = str(info.value)
            assert "order_service is locked by alice" in msg
            assert f"pid {proc.pid}" in msg and "strangler copy order_service" in msg
            assert "since 20" in msg
            # Another service is not affected.
            with j.lock("billing"):
                pass
            # The holder dies without cleaning up: the OS/PostgreSQL release the lock.
            _kill9(proc)
            deadline = time.monotonic() + 10
            while True:
                try:
                    with j.lock("order_service"):
                        break
                except LockHeld:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
    finally:
        if proc.poll() is None:
            _kill9(proc)


def test_a_lock_record_of_a_gone_process_goes_with_the_next_lock_taken(
    journal_url: str, tmp_path: Path
) -> None:
    """The fault campaign's shift x journal-disk: the journal's disk filled as the process
    ended, so its lock record could not be removed. The lock itself died with the process;
    the next lock this host takes, of any service, removes the record. A live process's
    record stays."""
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    with Journal(journal_url, operator="erin") as j:
        with j.lock("warm-up"):  # the tables exist
            pass
        with j._tx():
            for service, pid in (("shop.shift", gone.pid), ("live", os.getpid())):
                j._exec(
                    "INSERT INTO strangler_locks (service, operator, host, pid, command, since)"
                    " VALUES (?, 'x', ?, ?, 'strangler shift', '2026-01-01T00:00:00+00:00')",
                    (service, host, pid),
                )
        assert j.lock_holder("shop.shift") is None  # the lock is free: nobody holds it
        with j.lock("billing"):
            pass
        left = [r[0] for r in j._exec("SELECT service FROM strangler_locks").fetchall()]
    assert left == ["live"]


def test_lock_is_reentrant_in_one_process(journal_url: str) -> None:
    with Journal(journal_url) as j:
        with j.lock("svc"), j.lock("svc"):
            assert j.holds_lock("svc")
        assert not j.holds_lock("svc")


def test_required_evidence_gates_a_step_unless_forced(
    journal_url: str,
    spec_for,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from strangler.errors import CheckFailed
    from strangler.steps import requirements

    spec, _ = spec_for(journal_url)
    calls: list[str] = []

    def no_preflight(rb: Runbook, moment: object) -> dict[str, object]:
        calls.append(rb.name)
        raise CheckFailed("no passing preflight", hint="run 'strangler preflight'")

    gate = requirements.Requirement("no_preflight", "a preflight", "now", no_preflight)
    monkeypatch.setitem(requirements.REQUIREMENTS, Action.CREATE_SCHEMA, (gate,))  # type: ignore[index]
    with Journal(journal_url) as j:
        rb = Runbook(spec, j, "order_service")
        with (
            pytest.raises(CheckFailed, match="no passing preflight"),
            rb.step(Action.CREATE_SCHEMA),
        ):
            pass
        assert rb.phase == "planned" and calls == ["order_service"]
        with rb.step(Action.CREATE_SCHEMA, force=True, reason="lab rehearsal"):
            pass
        assert rb.phase == "schema_ready"
        forced = [e for e in j.history("order_service") if e.status == "forced"]
        assert forced[0].details["refusal"] == "no passing preflight"


def test_library_callers_get_the_evidence_rules_without_the_cli(
    spec_for,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A program that imports only the runbook must not be able to skip verification."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    _, path = spec_for(url)
    script = textwrap.dedent(
        """
        import sys
        from strangler.errors import CheckFailed
        from strangler.journal import Journal
        from strangler.phases import Action
        from strangler.steps.runbook import Runbook
        from strangler.spec import load_spec
        spec = load_spec(sys.argv[1])
        j = Journal(spec.state_url())
        j.outcome(j.intent("order_service", "verify"), "ok", phase="verified")
        try:
            with Runbook(spec, j, "order_service").step(Action.SHIFT_TRAFFIC, weight=5):
                pass
        except CheckFailed as exc:
            print("refused:", exc.message)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert "refused: order_service: the copy has never been verified" in done.stdout
    assert "strangler.cli" not in done.stderr


def test_evidence_never_blocks_a_move_back_to_zero_traffic(
    journal_url: str,
    spec_for,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from strangler.errors import CheckFailed
    from strangler.steps import requirements

    spec, _ = spec_for(journal_url)

    def always_stale(rb: Runbook, moment: object) -> dict[str, object]:
        raise CheckFailed("verification is stale")

    stale = requirements.Requirement("always_stale", "a verification", "now", always_stale)
    monkeypatch.setitem(requirements.REQUIREMENTS, Action.SHIFT_TRAFFIC, (stale,))  # type: ignore[index]
    with Journal(journal_url) as j:
        rb = Runbook(spec, j, "order_service")
        with rb.step(Action.SHIFT_TRAFFIC, weight=20, force=True, reason="setup") as st:
            st.weight = 20
        with (
            pytest.raises(CheckFailed),  # ours, or the real verification rule: both refuse
            rb.step(Action.SHIFT_TRAFFIC, weight=50),
        ):
            pass
        with rb.step(Action.SHIFT_TRAFFIC, weight=0) as st:
            st.weight = 0
        assert (rb.phase, rb.state.weight) == ("verified", 0)


def test_the_intent_records_the_evidence_and_a_rollbacks_win_is_never_forced(
    journal_url: str,
    spec_for,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: what each requirement was checked against is in the step's intent; an
    operator's rollback recorded after a move was decided refuses it, --force or not."""
    from strangler.errors import CheckFailed
    from strangler.steps import requirements
    from strangler.steps.facts import newest_id

    spec, _ = spec_for(journal_url)

    def measured(rb: Runbook, moment: object) -> dict[str, object]:
        return {"rows": 42}

    now = requirements.Requirement("measured", "rows", "measured now", measured)
    monkeypatch.setitem(requirements.REQUIREMENTS, Action.CREATE_SCHEMA, (now,))  # type: ignore[index]
    with Journal(journal_url) as j:
        rb = Runbook(spec, j, "order_service")
        with rb.step(Action.CREATE_SCHEMA):
            pass
        intent = next(e for e in j.history("order_service") if e.kind == "intent")
        assert intent.details["evidence"] == {"measured": {"fresh": "measured now", "rows": 42}}

        with rb.step(Action.SHIFT_TRAFFIC, weight=20, force=True, reason="setup") as st:
            st.weight = 20
        decided = newest_id(j, "order_service")
        with rb.step(Action.ROLLBACK_TRAFFIC, reason="5xx") as st:
            st.weight = 0
        with rb.step(Action.SHIFT_TRAFFIC, weight=20, force=True, reason="setup") as st:
            st.weight = 20
        before = j.history("order_service")
        with (
            pytest.raises(CheckFailed, match="a rollback always wins, nothing was moved"),
            rb.step(Action.SHIFT_TRAFFIC, weight=50, seen=decided, force=True, reason="hurry"),
        ):
            pass
        assert j.history("order_service") == before
        assert rb.state.weight == 20
