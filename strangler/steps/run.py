"""``strangler run``: advance a service as far as its evidence, gates and schedule allow.

Each call reads where the service stands from the journal, asks the phase machine for the
next step (:func:`strangler.phases.next_action`), has that step advance
(:data:`strangler.steps.table.STEPS`), and goes on until the service is done (or at
``until``), a step must wait, or a step fails. A wait is not an error: it says what for (a
bake interval until a time, an approval, an attestation, a grace period) and ``run`` can be
called again at any moment, by a person or from cron, to continue. After a kill -9 it resumes
or refuses exactly as the single commands do, because it runs the same steps.

Usage::

    result = run(Runbook(spec, journal, "order_service"))
    if result.status == "waiting":
        print(result.waiting.message, result.waiting.until)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.phases import Action, Phase, next_action
from strangler.spec import Spec
from strangler.steps.records import Event
from strangler.steps.runbook import Runbook
from strangler.steps.shift import walk_complete
from strangler.steps.table import STEPS
from strangler.steps.types import EXIT_WAITING, Advanced, RunOptions, StepPlan, Subject, Waiting

__all__ = [
    "EXIT_WAITING",
    "RunResult",
    "next_plan",
    "reached",
    "run",
    "run_all",
    "run_until_done",
]


Status = Literal["done", "waiting", "failed"]


@dataclass
class RunResult:
    service: str
    status: Status
    phase: str
    steps: list[Advanced] = field(default_factory=list)
    waiting: Waiting | None = None
    error: StranglerError | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "done":
            return 0
        if self.status == "waiting":
            return EXIT_WAITING
        return self.error.exit_code if self.error else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "phase": self.phase,
            "steps": [s.to_dict() for s in self.steps],
            "waiting": self.waiting.to_dict() if self.waiting else None,
            "error": self.error.to_dict() if self.error else None,
        }


def reached(phase: Phase, until: Phase | None) -> bool:
    """Whether ``phase`` is at or past ``until`` on the forward path."""
    if until is None:
        return phase is Phase.DECOMMISSIONED
    order = list(Phase)
    return order.index(phase) >= order.index(until)


def _next(rb: Runbook) -> Action | None:
    """The next step to advance: the phase machine's, except that a walk at 100 % finishes
    its final bake before anything is declared stable."""
    if not walk_complete(rb):
        return Action.SHIFT_TRAFFIC
    return next_action(rb.phase, rb.service.strategy)


def _done(rb: Runbook, until: Phase | None) -> bool:
    return reached(rb.phase, until) and (until is not Phase.TRAFFIC_COMPLETE or walk_complete(rb))


def next_plan(rb: Runbook, *, inspect: bool = False) -> list[StepPlan]:
    """What ``run`` would do now: the next step's plan (none when done)."""
    action = _next(rb)
    if action is None:
        return []
    plans = STEPS[action].plan(Subject(rb.spec, rb.name), inspect)
    return [p for p in plans if p.action == action.value] or plans


def run(rb: Runbook, *, until: Phase | None = None, options: RunOptions | None = None) -> RunResult:
    """Advance ``rb``'s service until done (or ``until``), waiting, or failed.

    A failing step's error is in the result (``status == "failed"``), not raised, so that
    ``run --all`` goes on with the other services; bad input is raised.
    """
    opts = options or RunOptions()
    result = RunResult(rb.name, "done", rb.phase.value)
    with rb.journal.lock(f"{rb.name}.run"):
        try:
            while not _done(rb, until):
                phase = rb.phase
                action = _next(rb)
                if action is None:
                    break
                outcome = STEPS[action].advance(rb, opts)
                if isinstance(outcome, Waiting):
                    if until is None or not _done(rb, until):
                        # (A step may move the phase and then wait, as a traffic step does
                        # before its bake: at ``until`` that wait is not this run's.)
                        result.status, result.waiting = "waiting", outcome
                    break
                result.steps.append(outcome)
                opts.say(f"{rb.name}: {outcome.action} → {rb.phase.value}: {outcome.summary}")
                if rb.phase is phase and action is not Action.SHIFT_TRAFFIC:
                    raise StranglerError(
                        f"{rb.name}: step {action.value} ended but the phase is still "
                        f"{phase.value!r}; stopping rather than repeating it",
                        hint=f"see 'strangler history {rb.name}'",
                    )
        except StranglerError as exc:
            if exc.exit_code == 2:
                raise
            result.status, result.error = "failed", exc
        result.phase = rb.phase.value
        rb.journal.event(rb.name, Event.RUN, status=result.status, details=_summary(result))
    return result


def _summary(result: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": [s.action for s in result.steps], "phase": result.phase}
    if result.waiting:
        out["waiting"] = result.waiting.to_dict()
    if result.error:
        out["error"] = result.error.message
    return out


def run_all(
    spec: Spec,
    journal: Journal,
    services: Sequence[str] | None = None,
    *,
    until: Phase | None = None,
    options: RunOptions | None = None,
) -> list[RunResult]:
    """:func:`run` for each service (default: every service of the spec), in name order."""
    names = list(services) if services else sorted(spec.services)
    return [run(Runbook(spec, journal, n), until=until, options=options) for n in names]


def run_until_done(
    rb: Runbook,
    *,
    until: Phase | None = None,
    options: RunOptions | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_nap: float = 60.0,
) -> RunResult:
    """``run --wait``: call :func:`run` again whenever a wait ends by itself (a bake interval,
    a grace period); return when done, failed, or waiting for a person."""
    now = clock or rb.journal.clock
    while True:
        result = run(rb, until=until, options=options)
        if result.status != "waiting" or result.waiting is None or result.waiting.until is None:
            return result
        delay = (result.waiting.until - now()).total_seconds()
        sleep(min(max_nap, max(0.05, delay)))
