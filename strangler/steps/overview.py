"""Where every service stands, in full: what ``strangler dashboard`` shows and ``describe`` prints.

One :class:`ServiceOverview` per service, read from the journal (read-only): phase and
weight, the step running now and in which process (or the one that died halfway), the last
verification, the last judged bake interval with each gate's verdict, the current wait of
``strangler run`` (its last ``run`` event), the newest sync-lag sample, and recent history.
Times are datetimes here; :meth:`ServiceOverview.to_dict` gives ISO-8601 strings and numbers,
never "5m ago".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.journal import Entry, Journal
from strangler.spec import Spec
from strangler.steps.facts import last_verification
from strangler.steps.records import Event, LagHistory, Progress
from strangler.steps.status import RunningStep, running_steps

__all__ = ["ServiceOverview", "overview", "service_overview"]


def _entry(e: Entry) -> dict[str, Any]:
    details = {k: v for k, v in e.details.items() if k not in ("pid", "host")}
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "operator": e.operator,
        "step": e.step,
        "kind": e.kind,
        "status": e.status,
        "reason": e.reason,
        "details": details,
    }


@dataclass
class ServiceOverview:
    service: str
    strategy: str
    phase: str
    weight: float
    updated_at: datetime | None
    steps: list[float]
    running: list[RunningStep] = field(default_factory=list)
    verification: Entry | None = None
    gate: Entry | None = None
    run: Entry | None = None
    lag: list[Any] | None = None  # the newest LagHistory sample
    history: list[Entry] = field(default_factory=list)
    last_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        v, g, r = self.verification, self.gate, self.run
        lag = self.lag
        return {
            "service": self.service,
            "strategy": self.strategy,
            "phase": self.phase,
            "weight": self.weight,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "traffic_steps": self.steps,
            "running": [s.to_dict() for s in self.running],
            "last_verification": (
                {
                    "at": v.at.isoformat(),
                    "status": v.status,
                    "mode": v.details.get("mode"),
                    "operator": v.operator,
                }
                if v
                else None
            ),
            "gates": (
                {
                    "at": g.at.isoformat(),
                    "weight": g.details.get("weight"),
                    "verdict": g.details.get("verdict", g.status),
                    "decision": g.details.get("decision"),
                    "reason": g.details.get("reason"),
                    "checks": [
                        {
                            "check": c.get("check"),
                            "status": c.get("status"),
                            "observed": c.get("observed"),
                            "threshold": c.get("threshold"),
                            "detail": c.get("detail"),
                        }
                        for c in g.details.get("checks", [])
                    ],
                }
                if g
                else None
            ),
            "run": (
                {
                    "at": r.at.isoformat(),
                    "status": r.status,
                    "waiting": r.details.get("waiting"),
                    "error": r.details.get("error"),
                }
                if r
                else None
            ),
            "lag": (
                {
                    "at": lag[0],
                    "direction": lag[1],
                    "bytes": lag[2],
                    "seconds": lag[3],
                    "retained_wal_bytes": lag[4],
                }
                if lag
                else None
            ),
            "history": [_entry(e) for e in self.history],
        }


def service_overview(
    spec: Spec, journal: Journal, service: str, *, history: int = 15
) -> ServiceOverview:
    svc = spec.service(service)
    state = journal.state(service)
    entries = journal.history(service)
    lag = (Progress(journal, service).load(LagHistory) or LagHistory()).samples
    return ServiceOverview(
        service=service,
        strategy=svc.strategy,
        phase=state.phase,
        weight=state.weight,
        updated_at=state.updated_at,
        steps=list(svc.traffic.steps) if svc.traffic else [],
        running=running_steps(journal, service),
        verification=last_verification(entries),
        gate=journal.last(service, Event.GATE),
        run=journal.last(service, Event.RUN),
        lag=lag[-1] if lag else None,
        history=entries[-history:],
        last_id=entries[-1].id if entries else 0,
    )


def overview(spec: Spec, journal: Journal) -> list[ServiceOverview]:
    """Every service of the spec, by name."""
    return [service_overview(spec, journal, name) for name in sorted(spec.services)]
