"""``Action.CUTOVER_WRITES`` (verified → writes_cut_over): writes move to the service schema in
well under a second; reverse sync keeps the monolith's tables current so that
``rollback --writes`` can always go back (runbook pattern 3, phase C).

Resumable: a cutover killed halfway is finished from where the databases stand
(:func:`strangler.pg.sync.cutover.cutover`), so running it again is always right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strangler.pg.sync import cutover as switch
from strangler.phases import Action, Phase
from strangler.steps import preflight
from strangler.steps.requirements import stated
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan
from strangler.steps.wiring import sync_route

__all__ = ["CutoverResult", "cutover", "plan"]


@dataclass(frozen=True)
class CutoverResult:
    service: str
    window_seconds: float
    sequences: dict[str, int]
    reverse_slot: str
    resumed: bool = False
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "window_seconds": self.window_seconds,
            "sequences": self.sequences,
            "reverse_slot": self.reverse_slot,
            "resumed": self.resumed,
            "stages_ms": {k: round(v * 1000, 1) for k, v in self.stages.items()},
        }


def cutover(
    rb: Runbook, *, reason: str | None = None, force: bool = False, writers_timeout: float = 10.0
) -> CutoverResult:
    fwd = sync_route(rb.spec, rb.name, "forward")
    rev = sync_route(rb.spec, rb.name, "reverse")
    with rb.step(Action.CUTOVER_WRITES, reason=reason, force=force, resumable=True) as step:
        done = switch.cutover(
            fwd, rev, writers_timeout=writers_timeout, resume=step.resumed_from is not None
        )
        step.details.update(
            window_seconds=done.window_seconds,
            sequences=done.sequences,
            resumed=done.resumed,
            stages=done.stages,
        )
    return CutoverResult(
        rb.name, done.window_seconds, done.sequences, rev.slot, done.resumed, done.stages
    )


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    fwd = sync_route(rb.spec, rb.name, "forward")
    rev = sync_route(rb.spec, rb.name, "reverse")
    where = f"monolith and {rb.name} database" if rb.service.target.dsn else "monolith"
    ops = tuple(Operation(where, s) for s in switch.cutover_stages(fwd, rev))
    return StepPlan(
        action=Action.CUTOVER_WRITES.value,
        source=Phase.VERIFIED.value,
        target=Phase.WRITES_CUT_OVER.value,
        summary="block writes on the old tables, drain sync, start reverse sync",
        operations=ops,
        requires=stated(Action.CUTOVER_WRITES, rb.service),
    )


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    waiting = preflight.ensure(rb, opts)
    if waiting is not None:
        return waiting
    done = cutover(rb)
    return Advanced(
        Action.CUTOVER_WRITES.value,
        rb.phase.value,
        f"writes cut over; refused for {done.window_seconds * 1000:.0f} ms",
        done,
    )
