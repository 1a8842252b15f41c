"""One bake of a traffic step: judge each interval under the gates, journal every verdict,
and decide (keep baking, complete, roll back, stall).

Where a bake stands lives in the journal (:class:`strangler.steps.records.BakeState`),
written after every interval together with the clock of the interval under way and, for a
source that counts (the router's own counters), the reading it started from. So a bake killed
mid-interval resumes that interval, and ``wait=False`` (what ``strangler run`` uses from cron)
judges an interval that has elapsed since an earlier process began it and returns at once,
saying until when it waits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

from strangler.errors import GateFailed, StranglerError
from strangler.metrics.base import Checkpointed, MetricContext, MetricSource
from strangler.metrics.gates import Bake, Decision, Evaluation, Verdict, evaluate
from strangler.spec import TrafficSpec
from strangler.steps.records import BakeState, Event
from strangler.steps.runbook import Runbook
from strangler.steps.types import EXIT_WAITING
from strangler.traffic.base import Router

__all__ = ["AutoResult", "Baker"]


@dataclass
class AutoResult:
    """Where a walk stopped. ``status``: complete | paused (for an approval) | waiting (a bake
    interval still running; ``until`` says when it ends) | stalled | stopped."""

    service: str
    weight: float
    status: str
    message: str
    evaluations: int = 0
    until: datetime | None = None

    @property
    def exit_code(self) -> int:
        """``shift --auto``'s exit code: 0 complete; 1 stopped (a rollback or another command
        moved the weight during the walk: it did not reach its end, and never undoes that);
        otherwise :data:`EXIT_WAITING` (paused for an approval, a bake still running, or
        stalled for lack of traffic: not done and nothing failed, as ``strangler run``)."""
        if self.status == "complete":
            return 0
        return 1 if self.status == "stopped" else EXIT_WAITING

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "service": self.service,
            "weight": self.weight,
            "status": self.status,
            "message": self.message,
            "evaluations": self.evaluations,
        }
        if self.until is not None:
            out["until"] = self.until.isoformat()
        return out


class Baker:
    """Bakes one weight of one service's walk (see the module docstring)."""

    def __init__(
        self,
        rb: Runbook,
        router: Router,
        traffic: TrafficSpec,
        *,
        source_factory: Callable[[MetricContext], MetricSource],
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = lambda _text: None,
        rollback: Callable[[str], object],
    ) -> None:
        self.rb = rb
        self.journal = rb.journal
        self.service = rb.name
        self.router = router
        self.traffic = traffic
        self.source_factory = source_factory
        self.clock = clock
        self.sleep = sleep
        self.say = say
        self.rollback = rollback

    def _new_bake(self, weight: float) -> BakeState:
        traffic = self.traffic
        interval = traffic.interval.total_seconds()
        length = (traffic.final_bake if weight >= 100 else traffic.bake).total_seconds()
        extension = (
            traffic.max_extension or (traffic.final_bake if weight >= 100 else traffic.bake)
        ).total_seconds()
        needed = max(1, math.ceil(length / interval))
        bake_id = self.journal.event(
            self.service,
            Event.BAKE,
            status="started",
            details={"weight": weight, "needed": needed, "interval": interval},
        )
        state = BakeState(
            weight=weight,
            needed=needed,
            failed_limit=traffic.failed_intervals,
            max_extensions=max(1, math.ceil(extension / interval)),
            status="baking",
            bake_id=bake_id,
            on_error=traffic.on_error,
        )
        self.rb.progress.save(state)
        return state

    def _resumed(self, weight: float, state: BakeState, newest: dict[str, Any] | None) -> BakeState:
        # The process may have died between journaling an interval and saving the tally;
        # the journal (``newest``: the bake's last gate event) is the record, so take the
        # newer of the two.
        if newest and newest["interval"] > state.evaluated:
            state = replace(
                state,
                evaluated=newest["interval"],
                done=newest["judged"],
                consecutive_failures=newest["consecutive_failures"],
                extensions=newest["extensions"],
                interval_start=None,
                checkpoint=None,
            )
        self.journal.event(
            self.service,
            Event.BAKE,
            status="resumed",
            details={"weight": weight, "judged": state.done, "needed": state.needed},
        )
        self.say(
            f"resuming the {weight:g} % bake at interval {state.evaluated + 1} "
            f"({state.done}/{state.needed} judged)"
        )
        return state

    def bake(self, weight: float, stored: BakeState | None, *, wait: bool) -> AutoResult:
        traffic = self.traffic
        interval = traffic.interval
        if stored and stored.status == "baking":
            newest = self._last_gate_event(stored.bake_id)
            self._finish_judged_rollback(weight, newest)
            state = (
                self._resumed(weight, stored, newest)
                if wait or stored.interval_start is None
                else stored
            )
        else:
            state = self._new_bake(weight)
        ctx = MetricContext(self.service, traffic.route, self.router)
        source = self.source_factory(ctx)
        while True:
            if state.interval_start is None or (
                state.checkpoint is None and isinstance(source, Checkpointed)
            ):
                # The interval starts now, from what the source reads now.
                checkpoint = source.checkpoint() if isinstance(source, Checkpointed) else None
                state = replace(
                    state, interval_start=self.clock().isoformat(), checkpoint=checkpoint
                )
                self.rb.progress.save(state)
            elif isinstance(source, Checkpointed) and state.checkpoint is not None:
                source.restore(state.checkpoint)
            assert state.interval_start is not None  # set just above when it was missing
            start = datetime.fromisoformat(state.interval_start)
            due = start + interval
            now = self.clock()
            if now < due:
                if not wait:
                    return AutoResult(
                        self.service,
                        weight,
                        "waiting",
                        f"baking at {weight:g} %: interval {state.evaluated + 1} "
                        f"({state.done}/{state.needed} judged) ends at {due:%Y-%m-%d %H:%M:%S} UTC",
                        until=due,
                    )
                self.sleep(max(0.0, (due - now).total_seconds()))
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
            bake = Bake(
                weight=state.weight,
                needed=state.needed,
                failed_limit=state.failed_limit,
                max_extensions=state.max_extensions,
                on_error=state.on_error,
                done=state.done,
                consecutive_failures=state.consecutive_failures,
                extensions=state.extensions,
                evaluated=state.evaluated,
            )
            decision, why = bake.record(evaluation)
            self._journal_evaluation(bake, state.bake_id, evaluation, decision, why)
            checkpoint = source.checkpoint() if isinstance(source, Checkpointed) else None
            state = replace(
                state,
                done=bake.done,
                consecutive_failures=bake.consecutive_failures,
                extensions=bake.extensions,
                evaluated=bake.evaluated,
                interval_start=end.isoformat(),
                checkpoint=checkpoint,
            )
            if decision is Decision.ROLLBACK:
                self._roll_back(weight, why)
            if evaluation.verdict is Verdict.ERROR:
                self._alert(f"metrics unreadable at {weight:g} %, weight held: {evaluation.reason}")
            if decision is Decision.STALLED:
                self.rb.progress.save(replace(state, status="stalled"))
                self._alert(why)
                return AutoResult(self.service, weight, "stalled", why, bake.evaluated)
            if decision is Decision.COMPLETE:
                self.rb.progress.save(replace(state, status="complete"))
                self.say(f"bake at {weight:g} % complete: {why}")
                return AutoResult(self.service, weight, "complete", why, bake.evaluated)
            self.rb.progress.save(state)

    def _roll_back(self, weight: float, why: str) -> NoReturn:
        self.rollback(f"gate failed: {why}")
        raise GateFailed(
            f"{self.service}: gates failed at {weight:g} %, traffic rolled back to the "
            f"monolith: {why}",
            hint=f"see 'strangler history {self.service}'; after a fix, "
            f"'strangler shift {self.service} --auto --retry'",
        )

    def _finish_judged_rollback(self, weight: float, newest: dict[str, Any] | None) -> None:
        """A bake whose last verdict (``newest``) was "roll back" and whose rollback never
        happened (the process died between the two: a rollback clears the bake in its own
        transaction) rolls back now, instead of baking on at a weight its gates condemned."""
        if newest and newest.get("decision") == Decision.ROLLBACK.value:
            why = str(newest.get("why") or newest.get("reason") or "judged before a crash")
            self._roll_back(weight, why)

    def _last_gate_event(self, bake_id: int) -> dict[str, Any] | None:
        for entry in reversed(self.journal.history(self.service, limit=200)):
            if entry.step == Event.GATE and entry.details.get("bake") == bake_id:
                return entry.details
        return None

    def _journal_evaluation(
        self, bake: Bake, bake_id: int, evaluation: Evaluation, decision: Decision, why: str
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
        if decision is Decision.ROLLBACK:
            details["why"] = why  # what a rollback resumed after a crash says
        self.journal.event(
            self.service,
            Event.GATE,
            status=evaluation.verdict.value,
            reason=evaluation.reason,
            details=details,
        )
        self.say(
            f"  {bake.weight:g} % interval {bake.evaluated}: {evaluation.verdict.value} "
            f"({bake.done}/{bake.needed}) {evaluation.reason}"
        )

    def _alert(self, message: str) -> None:
        self.journal.event(self.service, Event.ALERT, status="alert", reason=message)
        self.say(f"ALERT {self.service}: {message}")
