"""``strangler plan``: every step still to come for a service, as the steps describe
themselves (:data:`strangler.steps.table.STEPS`), in the phase machine's order.

Without ``inspect`` the plan reads the spec only and needs no server; with it, steps that can
read the catalogs add what they find there (the boundary, what the monolith allows for
sync), read-only and each with a short timeout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from strangler.phases import Action, Phase, forward_path
from strangler.secrets import redact_dsn
from strangler.spec import Spec
from strangler.steps import sync
from strangler.steps.table import STEPS
from strangler.steps.types import ServicePlan, StepPlan, Subject

__all__ = ["build_plan", "step_plans"]


def step_plans(spec: Spec, service: str, *, inspect: bool = False) -> list[StepPlan]:
    """The forward steps of ``service``, in order, as their plans."""
    ref = Subject(spec, service)
    seen: set[Action] = set()
    out: list[StepPlan] = []
    for _src, action, _dst in forward_path(ref.service.strategy):
        if action in seen:
            continue
        seen.add(action)
        out += STEPS[action].plan(ref, inspect)
    return out


def build_plan(
    spec: Spec, service: str, phase: Phase | str = Phase.PLANNED, *, inspect: bool = False
) -> ServicePlan:
    svc = spec.service(service)
    phase = Phase(phase)
    order = list(Phase)
    steps: list[StepPlan] = []
    warnings: list[str] = []
    sections: dict[str, Any] = {}
    for plan in step_plans(spec, service, inspect=inspect):
        done = order.index(phase) >= order.index(Phase(plan.target)) and phase != Phase.PLANNED
        steps.append(_with(plan, done))
        warnings += plan.warnings
        sections.update(plan.sections)
    if "sync" not in sections:
        sections["sync"] = sync.mechanism(Subject(spec, service), inspect=inspect)
    if svc.traffic is None:
        warnings.insert(0, "no traffic: section; traffic steps cannot run until one is added")
    if svc.preflight is None:
        warnings.insert(
            1 if svc.traffic is None else 0,
            "no preflight: section; copy and write cutover will not require a passing "
            "'strangler preflight'",
        )
    return ServicePlan(
        service=service,
        strategy=svc.strategy,
        phase=phase.value,
        source=redact_dsn(spec.source.dsn) + f" schema {spec.source.schema_}",
        target=(redact_dsn(svc.target.dsn) if svc.target.dsn else "the monolith's instance")
        + f" schema {svc.target.schema_}",
        target_schema=svc.target.schema_,
        tables=list(svc.tables),
        steps=steps,
        warnings=warnings,
        sections=sections,
    )


def _with(plan: StepPlan, done: bool) -> StepPlan:
    return replace(plan, done=done)
