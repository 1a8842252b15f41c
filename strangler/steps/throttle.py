"""``strangler throttle SERVICE``: the operator's brake, and what the brakes decided.

``--pause`` and ``--resume`` write the pause where every brake of the service reads it (the
service's database, beside the chunk queue), and journal it. :func:`throttle_status` is what
``strangler status`` shows: the pause in force and the last decision a brake journaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.spec import Spec
from strangler.steps.records import Event
from strangler.steps.types import JournaledRef

if TYPE_CHECKING:
    from strangler.throttle.control import ManualPause

__all__ = ["ThrottleLine", "pause", "throttle_status"]


@dataclass(frozen=True)
class ThrottleLine:
    """The throttle of one service now: the operator's pause and the last brake decision."""

    paused: ManualPause | None = None
    last_action: str | None = None
    last_reason: str | None = None
    last_for: str | None = None
    last_at: datetime | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "paused": self.paused.to_dict() if self.paused else None,
            "last_decision": self.last_action,
            "reason": self.last_reason,
            "for": self.last_for,
            "at": self.last_at.isoformat() if self.last_at else None,
            **({"error": self.error} if self.error else {}),
        }


def pause(rb: JournaledRef, *, paused: bool, reason: str) -> ManualPause | None:
    """Pause (or resume) every copy, verification, sync and worker of the service; the next
    chunk or round of each waits. Journaled as a ``throttle`` event."""
    from strangler.pg.connect import connect
    from strangler.throttle.control import set_pause

    with connect(rb.spec.target_dsn(rb.name), role=f"{rb.name} target") as conn:
        now = set_pause(conn, rb.name, paused=paused, reason=reason, by=rb.journal.operator)
    rb.journal.event(
        rb.name,
        Event.THROTTLE,
        status="paused" if paused else "resumed",
        reason=reason,
        details={"for": "operator", "manual": True},
    )
    return now


def throttle_status(spec: Spec, journal: Journal, service: str) -> ThrottleLine | None:
    """None when the service has no throttle and nothing was ever paused (then nothing is
    read from the service's database)."""
    last = journal.last(service, Event.THROTTLE)
    if spec.service(service).throttle is None and last is None:
        return None
    # PostgreSQL's client only when there is something to read: ``status`` of a service
    # without a throttle starts without it.
    from strangler.pg.connect import connect
    from strangler.throttle.control import read_pause

    try:
        with connect(spec.target_dsn(service), role=f"{service} target", connect_timeout=5) as c:
            paused = read_pause(c, service)
    except StranglerError as exc:
        return ThrottleLine(error=exc.message)
    return ThrottleLine(
        paused,
        last.status if last else None,
        last.reason if last else None,
        str(last.details.get("for")) if last and last.details.get("for") else None,
        last.at if last else None,
    )
