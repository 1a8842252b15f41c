"""Every step of the runbook and every rollback, written out: one static table each.

:data:`STEPS` maps each forward :class:`~strangler.phases.Action` to its step: the command a
person runs, what it would do (``plan``), and how ``strangler run`` advances it. The phase
machine (:mod:`strangler.phases`) says which comes next; this table says who does it.
:data:`ROLLBACKS` maps each ``strangler rollback --<kind>`` to its step; it lives in
:mod:`strangler.steps.rollbacks` (so that a rollback loads only its own step) and is
re-exported here. Nothing here is filled at import time, so what exists never depends on
which modules someone imported first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from strangler.phases import Action
from strangler.steps import (
    copy,
    create_schema,
    cutover,
    decommission,
    move,
    shift,
    sync,
    verify,
)
from strangler.steps.rollbacks import ROLLBACKS, Rollback, rollback_for
from strangler.steps.runbook import Runbook
from strangler.steps.types import Outcome, RunOptions, ServiceRef, StepPlan

__all__ = ["ROLLBACKS", "STEPS", "Rollback", "Step", "rollback_for"]


def _one(plan: Callable[..., StepPlan]) -> Callable[[ServiceRef, bool], list[StepPlan]]:
    return lambda rb, inspect: [plan(rb, inspect=inspect)]


@dataclass(frozen=True)
class Step:
    action: Action
    command: str  # what a person runs, ``{service}`` filled in
    plan: Callable[[ServiceRef, bool], list[StepPlan]]
    advance: Callable[[Runbook, RunOptions], Outcome]


def _decommission_plan(index: int) -> Callable[[ServiceRef, bool], list[StepPlan]]:
    return lambda rb, inspect: [decommission.plan(rb, inspect=inspect)[index]]


STEPS: Mapping[Action, Step] = {
    Action.CREATE_SCHEMA: Step(
        Action.CREATE_SCHEMA,
        "strangler copy {service} --schema-only",
        _one(create_schema.plan),
        create_schema.advance,
    ),
    Action.COPY: Step(Action.COPY, "strangler copy {service}", _one(copy.plan), copy.advance),
    Action.MOVE: Step(Action.MOVE, "strangler move {service}", _one(move.plan), move.advance),
    Action.START_SYNC: Step(
        Action.START_SYNC, "strangler sync {service}", _one(sync.plan), sync.advance
    ),
    Action.VERIFY: Step(
        Action.VERIFY, "strangler verify {service}", _one(verify.plan), verify.advance
    ),
    Action.CUTOVER_WRITES: Step(
        Action.CUTOVER_WRITES, "strangler cutover {service}", _one(cutover.plan), cutover.advance
    ),
    Action.SHIFT_TRAFFIC: Step(
        Action.SHIFT_TRAFFIC, "strangler shift {service} --auto", _one(shift.plan), shift.advance
    ),
    Action.MARK_STABLE: Step(
        Action.MARK_STABLE,
        "strangler decommission {service} --check",
        _decommission_plan(0),
        decommission.advance_stable,
    ),
    Action.REMOVE_OLD_PATH: Step(
        Action.REMOVE_OLD_PATH,
        "strangler decommission {service}",
        _decommission_plan(1),
        decommission.advance_decommission,
    ),
    Action.DECOMMISSION: Step(
        Action.DECOMMISSION,
        "strangler decommission {service}",
        _decommission_plan(2),
        decommission.advance_decommission,
    ),
}
