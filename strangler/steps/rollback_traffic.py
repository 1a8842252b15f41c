"""``strangler rollback SERVICE --traffic`` (→ the phase before traffic): all of the route to
the monolith now, weights read back.

A rollback always wins. It never waits for a bake or an approval: a walk in progress does
not hold the service's lock while it bakes. A step in progress (a move whose router call can
take minutes, as a Terraform apply does) holds it briefly: the rollback waits for it rather
than fail, then goes through; the walk's next move re-reads the journal under the same lock
and stops (:data:`strangler.steps.requirements.no_rollback_since`). The rollback record it
leaves (:class:`strangler.steps.records.RolledBack`) keeps ``shift --auto`` from walking again
until ``--retry``. Builds the router with ``assume_yes`` (a Terraform apply that undoes a shift
is not asked about) and the reason for the commit message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from strangler.errors import LockHeld
from strangler.phases import Action, Phase
from strangler.steps.records import BakeState, RolledBack
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook
from strangler.steps.types import Operation, ServiceRef, ShiftResult, StepPlan
from strangler.steps.wiring import router, router_context, traffic_of
from strangler.traffic.base import Router, Weights

__all__ = ["plan", "roll_back", "rollback_traffic"]

_TRAFFIC_PHASES = {Phase.TRAFFIC, Phase.TRAFFIC_COMPLETE, Phase.STABLE}


def rollback_traffic(rb: Runbook, request: RollbackRequest) -> ShiftResult:
    traffic_of(rb.service, rb.name)
    ctx = router_context(rb.spec, rb.name, assume_yes=True, reason=request.reason)
    return roll_back(rb, router(rb.spec, rb.name, ctx), request.reason, dry_run=request.dry_run)


def roll_back(
    rb: Runbook,
    route: Router,
    reason: str,
    *,
    dry_run: bool = False,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda _text: None,
    lock_wait: float = 120.0,
) -> ShiftResult:
    """All of ``rb``'s route to the monolith through ``route``, read back; journaled with
    ``reason``. ``lock_wait``: how long to wait for a step in progress on the service."""
    began = time.perf_counter()
    before = route.weights()
    if dry_run:
        return ShiftResult(rb.name, before.service, 0, True, route.plan_change(Weights(0)))
    details = {"from": before.service, "router": route.describe()}
    with _service_lock(rb, lock_wait, sleep, say):
        # Inside the lock: a walk's next move re-reads this record under the same lock. It
        # is written in the rollback's own transaction: a kill -9 between the two left the
        # weight at 0 with no record, and the next `run` walked traffic back onto the
        # service without --retry (and a stale bake state came back with --retry).
        at = (clock or rb.journal.clock)().isoformat()

        def remember() -> None:
            rb.progress.save(RolledBack(reason, at))
            rb.progress.clear(BakeState)

        after = _to_zero(rb, route, reason, before, details, began, remember)
    seconds = time.perf_counter() - began
    say(
        f"{rb.name}: rolled back {before.service:g} % → {after.service:g} % "
        f"in {seconds:.3f} s: {reason}"
    )
    return ShiftResult(rb.name, before.service, after.service, seconds=seconds)


@contextlib.contextmanager
def _service_lock(
    rb: Runbook, wait: float, sleep: Callable[[float], None], say: Callable[[str], None]
) -> Iterator[None]:
    """The service's lock, waited for up to ``wait`` seconds (never refused at once because
    another process is mid-step)."""
    deadline = time.monotonic() + wait
    with contextlib.ExitStack() as held:
        while True:
            try:
                held.enter_context(rb.journal.lock(rb.name))
                break
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                say(f"{rb.name}: a step is in progress; the rollback waits for it")
                sleep(0.2)
        yield


def _to_zero(
    rb: Runbook,
    route: Router,
    reason: str,
    before: Weights,
    details: dict[str, Any],
    began: float,
    remember: Callable[[], None],
) -> Weights:
    """0 % on the router, read back, journaled with ``remember``'s records in one
    transaction."""
    zero = Weights(0)
    if rb.phase in _TRAFFIC_PHASES:
        with rb.step(
            Action.ROLLBACK_TRAFFIC, reason=reason, details=details, resumable=True
        ) as step:
            after = route.set_weights(zero)
            step.weight = after.service
            step.details["read_back"] = after.service
            step.details["seconds"] = round(time.perf_counter() - began, 4)
            step.on_ok.append(remember)
        return after
    if before.service > 0:
        # The journal says no traffic moved, yet the router sends some: fix the router
        # and say so, rather than refuse a rollback.
        after = route.set_weights(zero)
        with rb.journal.atomic():
            rb.journal.event(
                rb.name,
                str(Action.ROLLBACK_TRAFFIC),
                status="ok",
                reason=reason,
                details={
                    **details,
                    "read_back": after.service,
                    "note": "router had traffic the journal did not know of",
                },
            )
            remember()
        return after
    remember()
    return before


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    traffic = rb.service.traffic
    ready = Phase.WRITES_CUT_OVER if rb.service.strategy == "online" else Phase.VERIFIED
    where = f"router {traffic.router.kind}" if traffic else "router (none in the spec)"
    return StepPlan(
        action=Action.ROLLBACK_TRAFFIC.value,
        source=Phase.TRAFFIC.value,
        target=ready.value,
        summary="all traffic to the monolith at once, weights read back",
        operations=(Operation(where, "set 0 % to the service, read it back"),),
    )
