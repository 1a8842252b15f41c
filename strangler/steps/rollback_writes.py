"""``strangler rollback SERVICE --writes`` (writes_cut_over → syncing): writes back to the
monolith while reverse sync holds; reverse sync drained first, forward sync resumes, the
service schema is gated again. The cutover's stages, run backwards (the same list,
:data:`strangler.pg.sync.cutover.SWITCH`). Resumable like the cutover."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strangler.pg.sync import cutover as switch
from strangler.phases import Action, Phase
from strangler.steps.requirements import stated
from strangler.steps.runbook import Runbook
from strangler.steps.types import Operation, ServiceRef, StepPlan
from strangler.steps.wiring import sync_route

__all__ = ["WritesRollback", "plan", "rollback_writes"]


@dataclass(frozen=True)
class WritesRollback:
    service: str
    window_seconds: float
    forward_slot: str
    resumed: bool = False
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window_seconds,
            "forward_slot": self.forward_slot,
            "resumed": self.resumed,
            "stages_ms": {k: round(v * 1000, 1) for k, v in self.stages.items()},
        }


def rollback_writes(
    rb: Runbook, *, reason: str, dry_run: bool = False, writers_timeout: float = 10.0
) -> WritesRollback | StepPlan:
    """Writes back to the monolith; with ``dry_run``, the stages it would run (its plan)."""
    fwd = sync_route(rb.spec, rb.name, "forward")
    rev = sync_route(rb.spec, rb.name, "reverse")
    if dry_run:
        rb.check(Action.ROLLBACK_WRITES)
        return plan(rb)
    with rb.step(Action.ROLLBACK_WRITES, reason=reason, resumable=True) as step:
        done = switch.rollback(
            fwd, rev, writers_timeout=writers_timeout, resume=step.resumed_from is not None
        )
        step.details.update(
            window_seconds=done.window_seconds,
            sequences=done.sequences,
            resumed=done.resumed,
            stages=done.stages,
        )
    return WritesRollback(rb.name, done.window_seconds, fwd.slot, done.resumed, done.stages)


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    fwd = sync_route(rb.spec, rb.name, "forward")
    rev = sync_route(rb.spec, rb.name, "reverse")
    where = f"monolith and {rb.name} database" if rb.service.target.dsn else "monolith"
    return StepPlan(
        action=Action.ROLLBACK_WRITES.value,
        source=Phase.WRITES_CUT_OVER.value,
        target=Phase.SYNCING.value,
        summary="writes back to the monolith; reverse sync drained first",
        operations=tuple(Operation(where, s) for s in switch.rollback_stages(fwd, rev)),
        requires=stated(Action.ROLLBACK_WRITES, rb.service),
    )
