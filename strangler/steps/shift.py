"""Shifting a route's traffic: one manual step, the gated walk, approval, and the rollback.

The bake of each step is :mod:`strangler.steps.bake`.

``Shifter.shift_to`` is the runbook's shell script done right: read the router, journal the
intent through :meth:`Runbook.step` (phase rules and evidence apply; ``force`` with a reason
overrides), set the weights, read them back. ``Shifter.auto`` walks the spec's steps, baking
each under the gates (:mod:`strangler.metrics.gates`), pausing where ``approve_before`` says,
and rolling back to 0 % by itself when a gate fails. ``Shifter.rollback`` sends everything to
the monolith at once (:mod:`strangler.steps.rollback_traffic`).

A rollback always wins: the walk remembers the newest journal entry it has seen, and every
move it makes is refused inside the service's lock if a rollback was recorded after it
(:data:`strangler.steps.requirements.no_rollback_since`); the walk then ends ``stopped``
(exit 1), wherever the rollback landed: during a bake, between a bake and the next move, or
while the walk read the router.

Where a walk stands lives in the journal (:class:`strangler.steps.records.BakeState`),
written after every interval together with the clock of the interval under way and, for a
source that counts (the router's own counters), the reading it started from. So a walk
killed mid-bake resumes the interval it was in, and ``auto(wait=False)`` (what ``strangler
run`` calls from cron) judges an interval that has elapsed since an earlier process began it
and returns at once, saying until when it waits. The clock and the sleep are injectable so
tests and the demo can run a day's bake in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from strangler.errors import BadInput, CheckFailed, GateFailed
from strangler.metrics.base import MetricContext, MetricSource
from strangler.metrics.kinds import make_source
from strangler.phases import Action, Phase
from strangler.spec import TrafficSpec
from strangler.steps import sync
from strangler.steps.bake import AutoResult, Baker
from strangler.steps.facts import newest_id
from strangler.steps.records import Approved, BakeState, Event, RolledBack
from strangler.steps.requirements import stated
from strangler.steps.rollback_traffic import roll_back
from strangler.steps.runbook import Runbook
from strangler.steps.traffic_plan import traffic_section
from strangler.steps.types import (
    Advanced,
    Operation,
    Outcome,
    RunOptions,
    ServiceRef,
    ShiftResult,
    StepPlan,
    Waiting,
)
from strangler.steps.wiring import router, traffic_of
from strangler.traffic.base import Router, Weights

__all__ = ["AutoResult", "GateFailed", "ShiftResult", "Shifter", "plan"]


class Shifter:
    """Traffic moves for one service. Build with the runbook and the spec's router."""

    def __init__(
        self,
        runbook: Runbook,
        router: Router,
        *,
        source_factory: Callable[[MetricContext], MetricSource] | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = lambda _text: None,
        lock_wait: float = 120.0,
    ) -> None:
        self.rb = runbook
        self.lock_wait = lock_wait
        self.router = router
        self.journal = runbook.journal
        self.service = runbook.name
        self.source_factory = source_factory or self._spec_source
        self.clock = clock or runbook.journal.clock
        self.sleep = sleep
        self.say = say

    @property
    def traffic(self) -> TrafficSpec:
        return traffic_of(self.rb.service, self.service)

    def _spec_source(self, ctx: MetricContext) -> MetricSource:
        metrics = self.traffic.metrics
        return make_source(
            metrics.kind if metrics else None, metrics.options() if metrics else {}, ctx
        )

    # ------------------------------------------------------------------ one step

    def shift_to(
        self,
        percent: float,
        *,
        dry_run: bool = False,
        force: bool = False,
        reason: str | None = None,
        seen: int | None = None,
        walking: bool = False,
    ) -> ShiftResult:
        """One traffic step. ``seen``: the newest journal entry the decision to move was
        based on (default: the newest now); a rollback recorded after it refuses the move
        inside the lock (:data:`strangler.steps.requirements.no_rollback_since`)."""
        if not 0 <= percent <= 100:
            raise BadInput(f"--to {percent:g} is outside 0..100 percent")
        _ = self.traffic
        if seen is None:
            seen = newest_id(self.journal, self.service)
        before = self.router.weights()
        target = Weights(percent)
        if dry_run:
            if not force:
                self.rb.check(Action.SHIFT_TRAFFIC, weight=percent)
            calls = self.router.plan_change(target)
            return ShiftResult(self.service, before.service, percent, True, calls)
        began = time.perf_counter()
        details = {"from": before.service, "to": percent, "router": self.router.describe()}
        with self.rb.step(
            Action.SHIFT_TRAFFIC,
            weight=percent,
            details=details,
            reason=reason,
            force=force,
            resumable=True,
            seen=seen,
            walking=walking,
        ) as step:
            after = self.router.set_weights(target)
            step.weight = after.service
            step.details["read_back"] = after.service
            step.details["seconds"] = round(time.perf_counter() - began, 4)
            approved = self.rb.progress.load(Approved)
            if walking or (approved is not None and approved.step == percent):
                # The approval was for this move: spent with it, in its transaction (a kill
                # between them let a later walk pass that step without a person).
                step.on_ok.append(lambda: self.rb.progress.clear(Approved))
        self.say(f"{self.service}: {before.service:g} % → {after.service:g} % (read back)")
        return ShiftResult(
            self.service, before.service, after.service, seconds=time.perf_counter() - began
        )

    # ------------------------------------------------------------------ rollback

    def rollback(self, reason: str, *, dry_run: bool = False) -> ShiftResult:
        """All of the route to the monolith now, read back; journaled with ``reason``
        (:func:`strangler.steps.rollback_traffic.roll_back`: it waits for a step in progress
        and is never refused by a walk)."""
        return roll_back(
            self.rb,
            self.router,
            reason,
            dry_run=dry_run,
            clock=self.clock,
            sleep=self.sleep,
            say=self.say,
            lock_wait=self.lock_wait,
        )

    # ------------------------------------------------------------------ approval

    def approve(self, reason: str | None = None) -> float:
        """Approve the next step of the walk (the one ``auto`` paused before)."""
        nxt = self._next_step(self.journal.state(self.service).weight)
        if nxt is None:
            raise BadInput(f"{self.service} has no further traffic step to approve")
        self.rb.progress.save(Approved(nxt))
        self.journal.event(
            self.service, Event.APPROVE_TRAFFIC, status="ok", reason=reason, details={"step": nxt}
        )
        return nxt

    # ------------------------------------------------------------------ the walk

    def _next_step(self, weight: float) -> float | None:
        return next((s for s in self.traffic.steps if s > weight), None)

    def auto(
        self,
        *,
        retry: bool = False,
        force: bool = False,
        reason: str | None = None,
        wait: bool = True,
    ) -> AutoResult:
        """Walk the steps. ``wait=False``: never sleep; return ``waiting`` (with ``until``)
        while a bake interval is still running, to be called again after that time."""
        traffic = self.traffic
        # One walker per service; the service lock itself stays free between steps so that
        # a rollback from another terminal is never blocked by a bake.
        with self.journal.lock(f"{self.service}.shift"):
            self._finish_crashed_rollback()
            rolled = self.rb.progress.load(RolledBack)
            if rolled and not retry:
                raise CheckFailed(
                    f"{self.service}'s traffic was rolled back at {rolled.at}: {rolled.reason}",
                    hint=f"fix the service, then 'strangler shift {self.service} --auto --retry'",
                )
            if rolled:
                self.rb.progress.clear(RolledBack)
            evaluations = 0
            self._finish_crashed_shift(force=force, reason=reason)
            # What the walk has seen: a rollback recorded after this stops it (it never undoes
            # one), wherever it lands: during a bake, between a bake and the next move, or
            # between reading the router and moving it.
            seen = newest_id(self.journal, self.service)
            while True:
                stop = self._stopped(seen, evaluations)
                if stop is not None:
                    return stop
                weight = self.journal.state(self.service).weight
                held = self.router.weights().service
                if abs(held - weight) > 0.05:
                    stop = self._stopped(seen, evaluations)
                    if stop is not None:
                        return stop
                    raise CheckFailed(
                        f"the router holds {held:g} % but the journal says {weight:g} %: "
                        "someone changed the router outside strangler",
                        hint=f"set it explicitly with 'strangler shift {self.service} --to N'",
                    )
                bake = self.rb.progress.load(BakeState)
                if weight > 0 and not (
                    bake and bake.weight == weight and bake.status == "complete"
                ):
                    result = self._baker().bake(
                        weight, bake if bake and bake.weight == weight else None, wait=wait
                    )
                    evaluations += result.evaluations
                    if result.status == "stopped":
                        return self._stopped(seen, evaluations) or result
                    if result.status != "complete":
                        result.evaluations = evaluations
                        return result
                    continue
                nxt = self._next_step(weight)
                if nxt is None:
                    return AutoResult(
                        self.service,
                        weight,
                        "complete",
                        f"all of {traffic.route} is on {self.service}",
                        evaluations,
                    )
                approved = self.rb.progress.load(Approved)
                if nxt in traffic.approve_before and (approved is None or approved.step != nxt):
                    self.journal.event(
                        self.service,
                        Event.AWAITING_APPROVAL,
                        status="awaiting_approval",
                        details={"step": nxt, "weight": weight},
                    )
                    msg = (
                        f"paused before {nxt:g} %: approve with "
                        f"'strangler shift {self.service} --approve', then run --auto again"
                    )
                    self.say(msg)
                    return AutoResult(self.service, weight, "paused", msg, evaluations)
                try:
                    self.shift_to(nxt, force=force, reason=reason, seen=seen, walking=True)
                except CheckFailed:
                    # Refused inside the lock: if a rollback landed since the walk last
                    # looked, that is the walk's end, not an error.
                    stop = self._stopped(seen, evaluations)
                    if stop is not None:
                        return stop
                    raise
                # The walk has seen up to its own move (not beyond: a rollback that lands
                # right after it must still stop the walk).
                moved = self.journal.last(self.service, str(Action.SHIFT_TRAFFIC), status="ok")
                seen = moved.id if moved is not None else seen

    def _stopped(self, seen: int, evaluations: int) -> AutoResult | None:
        """The walk's "stopped" result when traffic was rolled back after entry ``seen``
        (by an operator or another process); None otherwise."""
        last = self.journal.last(self.service, str(Action.ROLLBACK_TRAFFIC), status="ok")
        if last is None or last.id <= seen:
            return None
        record = self.rb.progress.load(RolledBack)
        why = f": {record.reason}" if record else ""
        weight = self.journal.state(self.service).weight
        message = (
            f"traffic was rolled back by {last.operator} at {last.at:%Y-%m-%d %H:%M:%S} UTC"
            f"{why}; the walk stopped at {weight:g} % and never undoes a rollback (after a "
            f"fix: 'strangler shift {self.service} --auto --retry')"
        )
        self.say(f"{self.service}: {message}")
        return AutoResult(self.service, weight, "stopped", message, evaluations)

    def _baker(self) -> Baker:
        return Baker(
            self.rb,
            self.router,
            self.traffic,
            source_factory=self.source_factory,
            clock=self.clock,
            sleep=self.sleep,
            say=self.say,
            rollback=self.rollback,
        )

    def _finish_crashed_rollback(self) -> None:
        """A traffic rollback killed before its outcome (the router may already be at 0 %,
        the journal still at the old weight) is finished first, with its own reason: a
        rollback always wins, and the walk would otherwise take the router for changed by
        hand."""
        for entry in self.journal.dangling(self.service):
            if entry.step == Action.ROLLBACK_TRAFFIC:
                self.rollback(entry.reason or "finishing a rollback that died halfway")
                return

    def _finish_crashed_shift(self, *, force: bool, reason: str | None) -> None:
        """A shift killed between setting the router and recording it leaves the router at
        the new weight and the journal at the old one: finish that shift (setting weights is
        idempotent) instead of taking the router for changed by hand."""
        for entry in self.journal.dangling(self.service):
            if entry.step == Action.SHIFT_TRAFFIC and "weight" in entry.details:
                self.shift_to(float(entry.details["weight"]), force=force, reason=reason)


def walk_complete(rb: Runbook) -> bool:
    """Whether the traffic walk is over: at 100 % with its final bake judged complete. A
    service can be ``traffic_complete`` (the router at 100 %) while that bake still runs."""
    if rb.phase is not Phase.TRAFFIC_COMPLETE:
        return True
    bake = rb.progress.load(BakeState)
    if bake is None:
        # Moved to 100 % by hand (``shift --to 100``), never walked: nothing bakes.
        return rb.journal.last(rb.name, Event.BAKE) is None
    return bake.weight >= 100 and bake.status == "complete"


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    traffic = svc.traffic
    ready = Phase.WRITES_CUT_OVER if svc.strategy == "online" else Phase.VERIFIED
    requires = stated(Action.SHIFT_TRAFFIC, svc)
    if traffic is None:
        return StepPlan(
            action=Action.SHIFT_TRAFFIC.value,
            source=ready.value,
            target=Phase.TRAFFIC.value,
            summary="shift traffic: no traffic: section in the spec yet",
            requires=requires,
        )
    ops = []
    for step in traffic.steps:
        bake = traffic.final_bake if step >= 100 else traffic.bake
        approval = " after an approval" if step in traffic.approve_before else ""
        ops.append(
            Operation(
                f"router {traffic.router.kind}",
                f"set {step:g} % to {rb.name}{approval}, read it back, then bake "
                f"{timedelta(seconds=bake.total_seconds())} judged every "
                f"{timedelta(seconds=traffic.interval.total_seconds())}",
            )
        )
    section, warnings = traffic_section(svc, rb.name)
    return StepPlan(
        action=Action.SHIFT_TRAFFIC.value,
        source=ready.value,
        target=Phase.TRAFFIC.value,
        summary=f"shift {traffic.route} in steps of "
        + ", ".join(f"{s:g}" for s in traffic.steps)
        + " %, gated on metrics",
        operations=tuple(ops),
        requires=requires,
        sections={"traffic": section} if section else {},
        warnings=tuple(warnings),
    )


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    """One call of the walk that never sleeps: judge what has elapsed, shift what is due."""
    if rb.service.strategy == "online":
        sync.drain(rb, opts.drain_timeout)
    walker = Shifter(rb, router(rb.spec, rb.name), say=opts.say)
    result = walker.auto(wait=False)
    if result.status == "complete":
        return Advanced(Action.SHIFT_TRAFFIC.value, rb.phase.value, result.message, result)
    if result.status == "waiting":
        return Waiting("bake", result.message, until=result.until)
    if result.status == "paused":
        return Waiting("approval", result.message, command=f"strangler shift {rb.name} --approve")
    raise CheckFailed(
        f"{rb.name}: the traffic walk {result.status} at {result.weight:g} %: {result.message}",
        hint=f"see 'strangler history {rb.name}'; set the weight with 'strangler shift "
        f"{rb.name} --to N' or roll back with 'strangler rollback {rb.name} --traffic'",
    )
