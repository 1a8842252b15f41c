"""What strangler would do for a service, from where it stands now: pure data, printable.

``strangler plan`` renders this; ``run`` walks the same steps. Capabilities that need a live
database to plan (boundary analysis, DDL) add their own sections in their own modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strangler.durations import format_duration
from strangler.phases import Action, Phase, _forward
from strangler.secrets import redact_dsn
from strangler.spec import Spec

__all__ = ["PlannedStep", "ServicePlan", "build_plan", "register_section"]

# A capability that needs a live system to plan adds a section: (spec, service, phase) ->
# (name, value) or None. ``value`` is JSON-serialisable; a ``render(console)`` method draws it.
SectionProvider = Callable[[Spec, str, Phase], "tuple[str, Any] | None"]
_SECTIONS: list[SectionProvider] = []


def register_section(provider: SectionProvider) -> SectionProvider:
    _SECTIONS.append(provider)
    return provider


_WHAT = {
    Action.CREATE_SCHEMA: "create schema {schema}: types, tables, sequences, role {role}",
    Action.COPY: "copy {tables} from one snapshot, then keys, indexes, foreign keys, sequences",
    Action.START_SYNC: "capture the monolith's changes (logical decoding) and apply them",
    Action.VERIFY: "prove the copy: counts, chunked checksums, the exact rows that differ",
    Action.CUTOVER_WRITES: "block writes on the old tables, drain sync, start reverse sync",
    Action.SHIFT_TRAFFIC: "shift {route} in steps {steps}, gated on metrics",
    Action.MARK_STABLE: "gather the decommission evidence over {stable_for}",
    Action.REMOVE_OLD_PATH: "remove the old route; archive and rename the old tables",
    Action.DECOMMISSION: "drop the old tables after {drop_after}",
}


@dataclass(frozen=True)
class PlannedStep:
    action: str
    source: str
    target: str
    what: str
    done: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "from": self.source,
            "to": self.target,
            "what": self.what,
            "done": self.done,
        }


@dataclass
class ServicePlan:
    service: str
    strategy: str
    phase: str
    source: str
    target: str
    target_schema: str
    tables: list[str]
    steps: list[PlannedStep]
    warnings: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "strategy": self.strategy,
            "phase": self.phase,
            "source": self.source,
            "target": self.target,
            "target_schema": self.target_schema,
            "tables": self.tables,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": self.warnings,
            **self.sections,
        }


def build_plan(spec: Spec, service: str, phase: Phase | str = Phase.PLANNED) -> ServicePlan:
    svc = spec.service(service)
    phase = Phase(phase)
    order = list(Phase)
    fill = {
        "schema": svc.target.schema_,
        "role": svc.target.role.name if svc.target.role else "(none)",
        "tables": ", ".join(svc.tables),
        "route": svc.traffic.route if svc.traffic else "(no traffic section)",
        "steps": svc.traffic.steps if svc.traffic else [],
        "stable_for": format_duration(svc.decommission.stable_for),
        "drop_after": format_duration(svc.decommission.drop_old_tables_after),
    }
    steps = []
    seen: set[Action] = set()
    for src, action, dst in _forward(svc.strategy):
        if action in seen:
            continue
        seen.add(action)
        steps.append(
            PlannedStep(
                action=action.value,
                source=src.value,
                target=dst.value,
                what=_WHAT[action].format(**fill),
                done=order.index(phase) >= order.index(dst) and phase != Phase.PLANNED,
            )
        )
    warnings = []
    if svc.traffic is None:
        warnings.append("no traffic: section; traffic steps cannot run until one is added")
    if svc.preflight is None:
        warnings.append(
            "no preflight: section; copy and write cutover will not require a passing "
            "'strangler preflight'"
        )
    sections: dict[str, Any] = {}
    for provider in _SECTIONS:
        found = provider(spec, service, phase)
        if found is not None:
            sections[found[0]] = found[1]
    from strangler.traffic.plan import traffic_section

    traffic, traffic_warnings = traffic_section(svc, service)
    warnings += traffic_warnings
    if traffic:
        sections["traffic"] = traffic
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
