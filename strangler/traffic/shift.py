"""Shifting a route's traffic: one manual step, the gated walk, and the rollback.

``Shifter.shift_to`` is the runbook's shell script done right: read the router, journal the
intent through :meth:`Runbook.step` (phase rules and evidence apply; ``force`` with a reason
overrides), set the weights, read them back. ``Shifter.auto`` walks the spec's steps, baking
each under the gates (:mod:`strangler.gates`), pausing where ``approve_before`` says, and
rolling back to 0 % by itself when a gate fails. ``Shifter.rollback`` sends everything to the
monolith at once.

Where a walk stands lives in the journal's progress store (``traffic:bake``), written after
every interval, so a walk killed mid-bake resumes that bake from its last judged interval:
the intervals already judged are not repeated and the ones still owed are not skipped. The
clock and the sleep are injectable so tests and the demo can run a day's bake in seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.errors import BadInput, CheckFailed, StranglerError
from strangler.gates import Bake, Decision, Evaluation, Verdict, evaluate
from strangler.metrics.base import MetricContext, MetricSource, make_source
from strangler.phases import Action, Phase
from strangler.runbook import Runbook
from strangler.spec import TrafficSpec
from strangler.traffic.base import Router, Weights

__all__ = ["AutoResult", "GateFailed", "ShiftResult", "Shifter", "traffic_spec"]

BAKE_KEY = "traffic:bake"
ROLLED_BACK_KEY = "traffic:rolled_back"
APPROVED_KEY = "traffic:approved"
_TRAFFIC_PHASES = {Phase.TRAFFIC.value, Phase.TRAFFIC_COMPLETE.value, Phase.STABLE.value}


def traffic_spec(runbook: Runbook) -> TrafficSpec:
    """The service's traffic section; BadInput naming the fix when the spec has none."""
    traffic = runbook.service.traffic
    if traffic is None:
        raise BadInput(
            f"{runbook.name} has no traffic: section in the spec",
            hint="add traffic: {route: …, router: {kind: …}} to the service",
        )
    return traffic


class GateFailed(CheckFailed):
    """A bake's gates failed; traffic was rolled back to the monolith."""


@dataclass
class ShiftResult:
    service: str
    before: float
    after: float
    dry_run: bool = False
    calls: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "before": self.before,
            "after": self.after,
            "dry_run": self.dry_run,
            "calls": self.calls,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class AutoResult:
    service: str
    weight: float
    status: str  # complete | paused | rolled_back | stalled | stopped
    message: str
    evaluations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Shifter:
    """Traffic moves for one service. Build with the runbook and the spec's router."""

    def __init__(
        self,
        runbook: Runbook,
        router: Router,
        *,
        source_factory: Callable[[MetricContext], MetricSource] = make_source,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self.rb = runbook
        self.router = router
        self.journal = runbook.journal
        self.service = runbook.name
        self.source_factory = source_factory
        self.clock = clock or runbook.journal.clock
        self.sleep = sleep
        self.say = say

    @property
    def traffic(self) -> TrafficSpec:
        return traffic_spec(self.rb)

    # ------------------------------------------------------------------ one step

    def shift_to(
        self,
        percent: float,
        *,
        dry_run: bool = False,
        force: bool = False,
        reason: str | None = None,
    ) -> ShiftResult:
        if not 0 <= percent <= 100:
            raise BadInput(f"--to {percent:g} is outside 0..100 percent")
        _ = self.traffic
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
        ) as step:
            after = self.router.set_weights(target)
            step.weight = after.service
            step.details["read_back"] = after.service
            step.details["seconds"] = round(time.perf_counter() - began, 4)
        self.say(f"{self.service}: {before.service:g} % → {after.service:g} % (read back)")
        return ShiftResult(
            self.service, before.service, after.service, seconds=time.perf_counter() - began
        )

    # ------------------------------------------------------------------ rollback

    def rollback(self, reason: str, *, dry_run: bool = False) -> ShiftResult:
        """All of the route to the monolith now, read back; journaled with ``reason``."""
        began = time.perf_counter()
        before = self.router.weights()
        zero = Weights(0)
        if dry_run:
            return ShiftResult(self.service, before.service, 0, True, self.router.plan_change(zero))
        details = {"from": before.service, "router": self.router.describe()}
        if self.rb.phase.value in _TRAFFIC_PHASES:
            with self.rb.step(
                Action.ROLLBACK_TRAFFIC, reason=reason, details=details, resumable=True
            ) as step:
                after = self.router.set_weights(zero)
                step.weight = after.service
                step.details["read_back"] = after.service
                step.details["seconds"] = round(time.perf_counter() - began, 4)
        elif before.service > 0:
            # The journal says no traffic moved, yet the router sends some: fix the router
            # and say so, rather than refuse a rollback.
            after = self.router.set_weights(zero)
            self.journal.event(
                self.service,
                str(Action.ROLLBACK_TRAFFIC),
                status="ok",
                reason=reason,
                details={
                    **details,
                    "read_back": after.service,
                    "note": "router had traffic the journal did not know of",
                },
            )
        else:
            after = before
        self.journal.put(
            self.service, ROLLED_BACK_KEY, {"reason": reason, "at": self.clock().isoformat()}
        )
        self._clear(BAKE_KEY)
        seconds = time.perf_counter() - began
        self.say(
            f"{self.service}: rolled back {before.service:g} % → {after.service:g} % "
            f"in {seconds:.3f} s: {reason}"
        )
        return ShiftResult(self.service, before.service, after.service, seconds=seconds)

    # ------------------------------------------------------------------ approval

    def approve(self, reason: str | None = None) -> float:
        """Approve the next step of the walk (the one ``auto`` paused before)."""
        nxt = self._next_step(self.journal.state(self.service).weight)
        if nxt is None:
            raise BadInput(f"{self.service} has no further traffic step to approve")
        self.journal.put(self.service, APPROVED_KEY, nxt)
        self.journal.event(
            self.service, "approve_traffic", status="ok", reason=reason, details={"step": nxt}
        )
        return nxt

    # ------------------------------------------------------------------ the walk

    def _next_step(self, weight: float) -> float | None:
        return next((s for s in self.traffic.steps if s > weight), None)

    def auto(
        self, *, retry: bool = False, force: bool = False, reason: str | None = None
    ) -> AutoResult:
        traffic = self.traffic
        # One walker per service; the service lock itself stays free between steps so that
        # a rollback from another terminal is never blocked by a bake.
        with self.journal.lock(f"{self.service}.shift"):
            rolled = self.journal.get(self.service, ROLLED_BACK_KEY)
            if rolled and not retry:
                raise CheckFailed(
                    f"{self.service}'s traffic was rolled back at {rolled['at']}: "
                    f"{rolled['reason']}",
                    hint=f"fix the service, then 'strangler shift {self.service} --auto --retry'",
                )
            if rolled:
                self._clear(ROLLED_BACK_KEY)
            evaluations = 0
            while True:
                weight = self.journal.state(self.service).weight
                held = self.router.weights().service
                if abs(held - weight) > 0.05:
                    raise CheckFailed(
                        f"the router holds {held:g} % but the journal says {weight:g} %: "
                        "someone changed the router outside strangler",
                        hint=f"set it explicitly with 'strangler shift {self.service} --to N'",
                    )
                bake = self.journal.get(self.service, BAKE_KEY)
                if weight > 0 and not (
                    bake and bake["weight"] == weight and bake["status"] == "complete"
                ):
                    result = self._bake(weight, bake if bake and bake["weight"] == weight else None)
                    evaluations += result.evaluations
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
                if (
                    nxt in traffic.approve_before
                    and self.journal.get(self.service, APPROVED_KEY) != nxt
                ):
                    self.journal.event(
                        self.service,
                        "shift_traffic",
                        status="awaiting_approval",
                        details={"step": nxt, "weight": weight},
                    )
                    msg = (
                        f"paused before {nxt:g} %: approve with "
                        f"'strangler shift {self.service} --approve', then run --auto again"
                    )
                    self.say(msg)
                    return AutoResult(self.service, weight, "paused", msg, evaluations)
                self.shift_to(nxt, force=force, reason=reason)
                self._clear(APPROVED_KEY)

    def _bake(self, weight: float, stored: dict[str, Any] | None) -> AutoResult:
        traffic = self.traffic
        interval = traffic.interval.total_seconds()
        length = (traffic.final_bake if weight >= 100 else traffic.bake).total_seconds()
        extension = (
            traffic.max_extension or (traffic.final_bake if weight >= 100 else traffic.bake)
        ).total_seconds()
        if stored and stored.get("status") == "baking":
            fields = {k: stored[k] for k in Bake.__dataclass_fields__}
            bake_id = int(stored["bake_id"])
            # The process may have died between journaling an interval and saving the tally;
            # the journal is the record, so take the newer of the two.
            newest = self._last_gate_event(bake_id)
            if newest and newest["interval"] > fields["evaluated"]:
                fields.update(
                    evaluated=newest["interval"],
                    done=newest["judged"],
                    consecutive_failures=newest["consecutive_failures"],
                    extensions=newest["extensions"],
                )
            bake = Bake(**fields)
            self.journal.event(
                self.service,
                "bake",
                status="resumed",
                details={"weight": weight, "judged": bake.done, "needed": bake.needed},
            )
            self.say(
                f"resuming the {weight:g} % bake at interval {bake.evaluated + 1} "
                f"({bake.done}/{bake.needed} judged)"
            )
        else:
            bake = Bake(
                weight=weight,
                needed=max(1, math.ceil(length / interval)),
                failed_limit=traffic.failed_intervals,
                max_extensions=max(1, math.ceil(extension / interval)),
                on_error=traffic.on_error,
            )
            bake_id = self.journal.event(
                self.service,
                "bake",
                status="started",
                details={"weight": weight, "needed": bake.needed, "interval": interval},
            )
            self._save(bake, "baking", bake_id)
        ctx = MetricContext(self.service, traffic.route, traffic, self.router)
        source = self.source_factory(ctx)
        while True:
            start = self.clock()
            self.sleep(max(0.0, interval - (self.clock() - start).total_seconds()))
            end = self.clock()
            current = self.journal.state(self.service).weight
            if abs(current - weight) > 0.05:
                return AutoResult(
                    self.service,
                    current,
                    "stopped",
                    f"the weight moved to {current:g} % during the bake (another command)",
                )
            try:
                window = source.measure(start, end)
                evaluation = evaluate(
                    window, traffic.gates, weight=weight, confidence=traffic.confidence
                )
            except StranglerError as exc:
                evaluation = evaluate(None, traffic.gates, weight=weight, error=exc.message)
            decision, why = bake.record(evaluation)
            self._journal_evaluation(bake, bake_id, evaluation, decision)
            if decision is Decision.ROLLBACK:
                self.rollback(f"gate failed: {why}")
                raise GateFailed(
                    f"{self.service}: gates failed at {weight:g} %, traffic rolled back to the "
                    f"monolith: {why}",
                    hint=f"see 'strangler history {self.service}'; after a fix, "
                    f"'strangler shift {self.service} --auto --retry'",
                )
            if evaluation.verdict is Verdict.ERROR:
                self._alert(f"metrics unreadable at {weight:g} %, weight held: {evaluation.reason}")
            if decision is Decision.STALLED:
                self._save(bake, "stalled", bake_id)
                self._alert(why)
                return AutoResult(self.service, weight, "stalled", why, bake.evaluated)
            if decision is Decision.COMPLETE:
                self._save(bake, "complete", bake_id)
                self.say(f"bake at {weight:g} % complete: {why}")
                return AutoResult(self.service, weight, "complete", why, bake.evaluated)
            self._save(bake, "baking", bake_id)

    def _clear(self, key: str) -> None:
        # Stored as null rather than deleted: Journal.forget's LIKE pattern escapes "_" with a
        # backslash but SQLite's LIKE has no ESCAPE clause there, so keys with "_" survive it.
        self.journal.put(self.service, key, None)

    def _save(self, bake: Bake, status: str, bake_id: int) -> None:
        self.journal.put(
            self.service, BAKE_KEY, {**bake.to_dict(), "status": status, "bake_id": bake_id}
        )

    def _last_gate_event(self, bake_id: int) -> dict[str, Any] | None:
        for entry in reversed(self.journal.history(self.service, limit=200)):
            if entry.step == "gate" and entry.details.get("bake") == bake_id:
                return entry.details
        return None

    def _journal_evaluation(
        self, bake: Bake, bake_id: int, evaluation: Evaluation, decision: Decision
    ) -> None:
        details = {
            "bake": bake_id,
            "weight": bake.weight,
            "extensions": bake.extensions,
            "interval": bake.evaluated,
            "judged": bake.done,
            "needed": bake.needed,
            "consecutive_failures": bake.consecutive_failures,
            "decision": decision.value,
            **evaluation.to_dict(),
        }
        self.journal.event(
            self.service,
            "gate",
            status=evaluation.verdict.value,
            reason=evaluation.reason,
            details=details,
        )
        self.say(
            f"  {bake.weight:g} % interval {bake.evaluated}: {evaluation.verdict.value} "
            f"({bake.done}/{bake.needed}) {evaluation.reason}"
        )

    def _alert(self, message: str) -> None:
        self.journal.event(self.service, "alert", status="alert", reason=message)
        self.say(f"ALERT {self.service}: {message}")
