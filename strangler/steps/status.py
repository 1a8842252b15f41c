"""``strangler status``: every service of the spec, where it stands, read from the journal
(and, for online services, the slot: lag and WAL retained)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.durations import format_duration
from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.pg.sync import cdc
from strangler.phases import Phase
from strangler.spec import Spec
from strangler.steps.records import Event
from strangler.steps.sync import direction_in
from strangler.steps.throttle import ThrottleLine, throttle_status
from strangler.steps.wiring import sync_route

__all__ = ["ServiceStatus", "SyncLine", "service_status", "status"]


@dataclass(frozen=True)
class SyncLine:
    direction: str
    slot: str | None = None
    slot_exists: bool = False
    lag_bytes: int | None = None
    retained_wal_bytes: int | None = None
    applied_at: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"direction": self.direction, "error": self.error}
        return {
            "direction": self.direction,
            "slot": self.slot,
            "slot_exists": self.slot_exists,
            "lag_bytes": self.lag_bytes,
            "retained_wal_bytes": self.retained_wal_bytes,
            "applied_at": self.applied_at,
        }


@dataclass(frozen=True)
class Verification:
    status: str
    at: datetime


@dataclass(frozen=True)
class Unfinished:
    step: str
    at: datetime
    operator: str


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    strategy: str
    phase: str
    weight: float
    last_step: str | None
    last_status: str | None
    last_at: datetime | None
    last_verification: Verification | None
    incomplete_steps: list[Unfinished]
    sync: SyncLine | None = None
    warnings: list[str] = field(default_factory=list)
    throttle: ThrottleLine | None = None  # issue 17: the pause and the last brake decision

    def to_dict(self, now: datetime) -> dict[str, Any]:
        def age(at: datetime | None) -> str | None:
            return None if at is None else format_duration(now - at) + " ago"

        out: dict[str, Any] = {
            "service": self.service,
            "strategy": self.strategy,
            "phase": self.phase,
            "weight": self.weight,
            "last_step": self.last_step,
            "last_status": self.last_status,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "last_age": age(self.last_at),
            "last_verification": (
                {
                    "status": self.last_verification.status,
                    "at": self.last_verification.at.isoformat(),
                    "age": age(self.last_verification.at),
                }
                if self.last_verification
                else None
            ),
            "incomplete_steps": [
                {"step": e.step, "at": e.at.isoformat(), "operator": e.operator}
                for e in self.incomplete_steps
            ],
        }
        if self.sync is not None:
            out["sync"] = self.sync.to_dict()
            out["warnings"] = self.warnings
        if self.throttle is not None:
            out["throttle"] = self.throttle.to_dict()
        return out


def _sync_line(spec: Spec, service: str, phase: Phase) -> tuple[SyncLine | None, list[str]]:
    if spec.service(service).strategy != "online":
        return None, []
    direction = direction_in(phase)
    if direction is None:
        return None, []
    try:
        info = cdc.status(sync_route(spec, service, direction))
    except StranglerError as exc:
        return SyncLine(direction, error=exc.message), []
    return (
        SyncLine(
            direction,
            info.slot,
            info.slot_exists,
            info.lag_bytes,
            info.retained_wal_bytes,
            info.applied_at,
        ),
        list(info.warnings),
    )


def service_status(spec: Spec, journal: Journal, name: str) -> ServiceStatus:
    st = journal.state(name)
    hist = journal.history(name, limit=1)
    last = hist[-1] if hist else None
    verdicts = [journal.last(name, Event.VERIFY, status=v) for v in ("passed", "failed")]
    verified = max((e for e in verdicts if e), key=lambda e: e.id, default=None)
    sync, warnings = _sync_line(spec, name, Phase(st.phase))
    return ServiceStatus(
        service=name,
        strategy=spec.services[name].strategy,
        phase=st.phase,
        weight=st.weight,
        last_step=last.step if last else None,
        last_status=(last.status or last.kind) if last else None,
        last_at=last.at if last else None,
        last_verification=Verification(verified.status or "", verified.at) if verified else None,
        incomplete_steps=[Unfinished(e.step, e.at, e.operator) for e in journal.dangling(name)],
        sync=sync,
        warnings=warnings,
        throttle=throttle_status(spec, journal, name),
    )


def status(spec: Spec, journal: Journal) -> list[ServiceStatus]:
    """Every service of the spec, by name."""
    return [service_status(spec, journal, name) for name in sorted(spec.services)]
