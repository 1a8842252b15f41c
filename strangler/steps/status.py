"""``strangler status``: every service of the spec, where it stands, read from the journal
(and, for online services, the slot: lag and WAL retained)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.errors import StranglerError
from strangler.journal import Journal, LockHolder
from strangler.phases import Action, Phase
from strangler.spec import Spec
from strangler.steps.facts import current_verification
from strangler.steps.records import Event
from strangler.steps.throttle import ThrottleLine, throttle_status

__all__ = ["RunningStep", "ServiceStatus", "SyncLine", "running_steps", "service_status", "status"]


@dataclass(frozen=True)
class SyncLine:
    direction: str
    slot: str | None = None
    slot_exists: bool = False
    lag_bytes: int | None = None
    retained_wal_bytes: int | None = None
    applied_at: Any = None
    error: str | None = None
    # running (a reader holds the slot) | idle (the slot waits for 'strangler sync') |
    # stopped (no slot: 'sync --stop' or a failed copy removed it) | failed (the last run
    # stopped on an error, see strangler history)
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"direction": self.direction, "error": self.error}
        return {
            "direction": self.direction,
            "state": self.state,
            "slot": self.slot,
            "slot_exists": self.slot_exists,
            "lag_bytes": self.lag_bytes,
            "retained_wal_bytes": self.retained_wal_bytes,
            "applied_at": self.applied_at,
        }


@dataclass(frozen=True)
class Verification:
    """The newest verification's verdict; ``obsoleted_by``: the later step that changed the
    copy (a schema rollback, a re-copy), when there is one: then it proves nothing."""

    status: str
    at: datetime
    obsoleted_by: str | None = None
    obsoleted_at: datetime | None = None

    @property
    def shown(self) -> str:
        """The verdict as status shows it: an obsolete one is never shown as passed."""
        return "obsolete" if self.obsoleted_by else self.status


@dataclass(frozen=True)
class RunningStep:
    """A step whose intent has no outcome: ``running`` in a live process that holds the
    service's lock now (pid, host), or ``unfinished``: its process died halfway (issue 14:
    before, a step running elsewhere was shown as "never finished")."""

    step: str
    since: datetime
    operator: str
    state: str  # running | unfinished
    pid: int | None = None
    host: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "since": self.since.isoformat(),
            "operator": self.operator,
            "state": self.state,
            "pid": self.pid,
            "host": self.host,
            "command": self.command,
        }


def running_steps(journal: Journal, service: str) -> list[RunningStep]:
    """The steps of ``service`` that began and have no outcome, each running or unfinished."""
    dangling = journal.dangling(service)
    if not dangling:
        return []
    holder: LockHolder | None = journal.lock_holder(service)
    out = []
    for e in dangling:
        pid, host = e.details.get("pid"), e.details.get("host")
        alive = holder is not None and (holder.pid, holder.host) == (pid, host)
        out.append(
            RunningStep(
                e.step,
                e.at,
                e.operator,
                "running" if alive else "unfinished",
                pid if isinstance(pid, int) else None,
                host if isinstance(host, str) else None,
                e.command,
            )
        )
    return out


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
    incomplete_steps: list[RunningStep]
    sync: SyncLine | None = None
    warnings: list[str] = field(default_factory=list)
    throttle: ThrottleLine | None = None  # issue 17: the pause and the last brake decision

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """For programs: ISO-8601 timestamps and ages in seconds, never "5m ago"."""

        def age(at: datetime | None) -> float | None:
            return None if at is None else round((now - at).total_seconds(), 3)

        out: dict[str, Any] = {
            "service": self.service,
            "strategy": self.strategy,
            "phase": self.phase,
            "weight": self.weight,
            "last_step": self.last_step,
            "last_status": self.last_status,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "last_age_seconds": age(self.last_at),
            "last_verification": _verification(self.last_verification, age),
            "incomplete_steps": [e.to_dict() for e in self.incomplete_steps],
        }
        if self.sync is not None:
            out["sync"] = self.sync.to_dict()
            out["warnings"] = self.warnings
        if self.throttle is not None:
            out["throttle"] = self.throttle.to_dict()
        return out


def _verification(v: Verification | None, age: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    out: dict[str, Any] = {"status": v.shown, "at": v.at.isoformat(), "age_seconds": age(v.at)}
    if v.obsoleted_by:
        out.update(
            was=v.status,
            obsoleted_by=v.obsoleted_by,
            obsoleted_at=v.obsoleted_at.isoformat() if v.obsoleted_at else None,
        )
    return out


def _sync_line(
    spec: Spec, journal: Journal, service: str, phase: Phase
) -> tuple[SyncLine | None, list[str]]:
    if spec.service(service).strategy != "online":
        return None, []
    # The sync mechanism only for an online service: status of the others starts faster.
    from strangler.pg.sync import cdc
    from strangler.steps.sync import direction_in
    from strangler.steps.wiring import sync_route

    direction = direction_in(phase)
    if direction is None:
        return None, []
    try:
        info = cdc.status(sync_route(spec, service, direction))
    except StranglerError as exc:
        return SyncLine(direction, error=exc.message), []
    warnings = list(info.warnings)
    state = "running" if info.active_pid else "idle"
    failed = journal.last(service, Event.SYNC, status="failed")
    if not info.slot_exists:
        state = "stopped"
        stop = journal.last(service, Action.STOP_SYNC, status="ok")
        how = (
            f"removed by 'strangler sync {service} --stop' at {stop.at:%Y-%m-%d %H:%M} UTC "
            f"({stop.operator})"
            if stop
            else "gone"
        )
        follows = (
            "the service's schema no longer follows the monolith: 'strangler rollback "
            f"{service} --schema' then 'strangler copy {service}' start over"
            if direction == "forward"
            else "the monolith's tables no longer follow the service's, so 'strangler "
            f"rollback {service} --writes' would lose what the service writes from now on"
        )
        warnings.insert(0, f"{direction} sync is stopped: slot {info.slot} was {how}; {follows}")
    elif (
        failed is not None
        and failed.details.get("direction") == direction
        and not info.active_pid
        and (info.applied_at is None or info.applied_at < failed.at)
    ):
        # Nothing applied since it failed: it is still stopped on that error.
        state = "failed"
        warnings.insert(
            0,
            f"the last {direction} sync stopped on an error at {failed.at:%Y-%m-%d %H:%M} "
            f"UTC and nothing was applied since: {failed.details.get('error')}",
        )
    return (
        SyncLine(
            direction,
            info.slot,
            info.slot_exists,
            info.lag_bytes,
            info.retained_wal_bytes,
            info.applied_at,
            state=state,
        ),
        warnings,
    )


def service_status(spec: Spec, journal: Journal, name: str) -> ServiceStatus:
    st = journal.state(name)
    hist = journal.history(name, limit=1)
    last = hist[-1] if hist else None
    # Only verify events are verdicts (a verify step that could not connect is none), and
    # a change to the copy after one makes it obsolete.
    found = current_verification(journal.history(name))
    verified = None
    if found is not None:
        later = found.obsoleted_by
        verified = Verification(
            found.entry.status or "",
            found.entry.at,
            later.step if later else None,
            later.at if later else None,
        )
    sync, warnings = _sync_line(spec, journal, name, Phase(st.phase))
    return ServiceStatus(
        service=name,
        strategy=spec.services[name].strategy,
        phase=st.phase,
        weight=st.weight,
        last_step=last.step if last else None,
        last_status=(last.status or last.kind) if last else None,
        last_at=last.at if last else None,
        last_verification=verified,
        incomplete_steps=running_steps(journal, name),
        sync=sync,
        warnings=warnings,
        throttle=throttle_status(spec, journal, name),
    )


def status(spec: Spec, journal: Journal) -> list[ServiceStatus]:
    """Every service of the spec, by name."""
    return [service_status(spec, journal, name) for name in sorted(spec.services)]
