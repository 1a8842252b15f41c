"""What a step records as it ends lands with its outcome or not at all (issue 15).

Found by an audit after CI caught a verification killed between its outcome and its
verdict: five more steps wrote records that later steps read in transactions of their own,
before or after the outcome that moved the phase or the weight. Each test here fails the
journal's commit (its disk full, which leaves the journal as a kill -9 there would) on the
second of two writes that belong together, then runs the documented recovery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from strangler.errors import GateFailed, StranglerError
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.records import Approved, BakeState, RolledBack
from strangler.steps.runbook import Runbook
from strangler.steps.shift import Shifter
from strangler.steps.wiring import router as spec_router
from tests.crash_points import commit_fails, entry_of, progress_write
from tests.fix_traffic import TrafficWorld, at_phase


def test_writes_inside_atomic_commit_together_or_not_at_all(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 's.db'}", operator="test", command="test")
    intent = journal.intent("svc", "verify")
    with commit_fails(journal, progress_write("k")) as fault:
        with pytest.raises(StranglerError, match="disk is full"), journal.atomic():
            journal.outcome(intent, "ok", phase="verified")
            journal.event("svc", "verify", status="passed")
            journal.put("svc", "k", 1)
        assert fault.fired
    assert journal.state("svc").phase == "planned"
    assert journal.last("svc", "verify", status="passed") is None
    assert journal.get("svc", "k") is None
    assert [e.id for e in journal.dangling("svc")] == [intent]
    # Outside atomic() each write is its own transaction, and the journal works on.
    journal.outcome(intent, "ok", phase="verified")
    journal.put("svc", "k", 2)
    assert journal.state("svc").phase == "verified" and journal.get("svc", "k") == 2
    journal.close()


def _router(world: TrafficWorld) -> str:
    return f'{{ kind: local, admin_url: "{world.proxy.url}" }}'


def _shifter(spec_path: Path) -> tuple[Shifter, Journal]:
    spec = load_spec(spec_path)
    journal = Journal(spec.state_url(), operator="test", command="test")
    return Shifter(Runbook(spec, journal, "order_service"), spec_router(spec, "order_service")), (
        journal
    )


def test_a_traffic_rollback_and_its_record_land_together(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """Before: the rollback's outcome (weight 0) committed, its record did not, and the next
    walk moved traffic back onto the service without --retry."""
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]")
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    shifter.shift_to(50)
    with commit_fails(journal, progress_write(RolledBack.KEY)) as fault:
        with pytest.raises(StranglerError, match="disk is full"):
            shifter.rollback("drill")
        assert fault.fired
    rolled = shifter.rb.progress.load(RolledBack)
    weight = journal.state("order_service").weight
    assert (weight, rolled) == (50, None), "a rollback journaled without its record"
    assert [e.step for e in journal.dangling("order_service")] == ["rollback_traffic"]
    assert traffic_world.proxy.service_percent() == 0  # the router moved before the fault
    # The walk finishes the rollback that died (its own reason), then refuses to undo it.
    with pytest.raises(StranglerError, match=r"rolled back .*: drill") as refused:
        shifter.auto()
    assert "--retry" in (refused.value.hint or "")
    assert journal.state("order_service").weight == 0
    assert journal.dangling("order_service") == []
    assert traffic_world.proxy.service_percent() == 0
    assert shifter.rb.progress.load(BakeState) is None
    journal.close()


def test_an_approval_is_spent_with_the_move_it_approved(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """Before: the move to 100 % committed and the approval stayed, so a walk retried after
    a rollback passed the approval step without a person."""
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]")
    spec_path.write_text(
        spec_path.read_text().replace("      gates:", "      approve_before: [100]\n      gates:")
    )
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    assert shifter.auto().status == "paused"
    shifter.approve("go")
    with commit_fails(journal, progress_write(Approved.KEY)) as fault:
        with pytest.raises(StranglerError, match="disk is full"):
            shifter.auto()
        assert fault.fired
    state = journal.state("order_service")
    approved = shifter.rb.progress.load(Approved)
    assert (state.weight, approved is not None) == (50, True), "moved, approval not spent"
    # The recovery: the walk again finishes the move the approval was for, and spends it.
    assert shifter.auto().status == "complete"
    assert shifter.rb.progress.load(Approved) is None
    shifter.rollback("drill")
    retried = shifter.auto(retry=True)
    assert (retried.status, retried.weight) == ("paused", 50)
    journal.close()


def test_a_bake_judged_to_roll_back_rolls_back_when_the_walk_resumes(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """Before: the verdict was journaled, the process died before the rollback began, and
    the resumed bake kept the failing weight for another interval (or completed it)."""
    proxy = traffic_world.proxy
    traffic_world.service.failure_rate = 0.3
    traffic_world.service.fail_when = lambda: proxy.service_percent() >= 50
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]", failed=2)
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    with commit_fails(journal, entry_of("rollback_traffic", "intent")) as fault:
        with pytest.raises(StranglerError, match="disk is full"):
            shifter.auto()
        assert fault.fired
    gates = [e for e in journal.history("order_service") if e.step == "gate"]
    assert gates[-1].details["decision"] == "rollback"
    assert proxy.service_percent() == 50 and journal.state("order_service").weight == 50
    with pytest.raises(GateFailed, match="gates failed at 50 %"):
        shifter.auto()
    after = [e for e in journal.history("order_service") if e.step == "gate"]
    assert len(after) == len(gates), "the condemned weight was judged again"
    assert proxy.service_percent() == 0 and journal.state("order_service").weight == 0
    rolled = shifter.rb.progress.load(RolledBack)
    assert rolled is not None and "gate failed" in rolled.reason
    journal.close()
