"""``strangler decoder GROUP``: one decoding of the monolith's WAL for every service whose
``sync.decoder`` names GROUP (issue 17; mechanism in :mod:`strangler.pg.sync.shared`).

Joining moves each member from its own slot onto the group's (journaled per service as an
``attach_sync`` event); running applies every member's changes exactly once; stopping drops
the group's slot (journaled as ``stop_sync``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from strangler.errors import BadInput
from strangler.journal import Journal
from strangler.pg.sync import shared
from strangler.phases import Action
from strangler.spec import Spec
from strangler.steps.records import Event
from strangler.steps.wiring import sync_route

__all__ = ["group_route", "join", "leave", "run", "status", "stop"]


def group_route(spec: Spec, group: str) -> shared.SharedRoute:
    names = sorted(
        n for n, s in spec.services.items() if s.sync is not None and s.sync.decoder == group
    )
    if not names:
        known = sorted(
            {s.sync.decoder for s in spec.services.values() if s.sync and s.sync.decoder}
        )
        raise BadInput(
            f"no service names decoder group {group!r} (sync.decoder)",
            hint=f"groups in the spec: {', '.join(known) or 'none'}",
        )
    for n in names:
        if spec.services[n].strategy != "online":
            raise BadInput(f"{n} is in decoder group {group!r} but is not strategy: online")
    route = shared.SharedRoute(group, tuple(sync_route(spec, n, "forward") for n in names))
    route.check()
    return route


def join(spec: Spec, journal: Journal, group: str) -> dict[str, str]:
    route = group_route(spec, group)
    moved = shared.join(route)
    for service, how in moved.items():
        journal.event(
            service, Event.ATTACH_SYNC, status="ok", details={"decoder": group, "position": how}
        )
    return moved


def run(
    spec: Spec,
    group: str,
    *,
    stop: threading.Event | None = None,
    until_caught_up: bool = False,
    on_round: Callable[[shared.GroupRound], None] | None = None,
) -> shared.GroupRound:
    return shared.run(
        group_route(spec, group), stop=stop, until_caught_up=until_caught_up, on_round=on_round
    )


def status(spec: Spec, group: str) -> dict[str, Any]:
    return shared.status(group_route(spec, group))


def stop(spec: Spec, journal: Journal, group: str) -> dict[str, Any]:
    route = group_route(spec, group)
    done = shared.leave_all(route)
    for m in route.members:
        journal.event(
            m.service, str(Action.STOP_SYNC), status="ok",
            details={"decoder": group, "direction": "forward", **done},
        )  # fmt: skip
    return done


def leave(spec: Spec, journal: Journal, group: str, service: str) -> str:
    """Give one member its own slot again (before its cutover); the others keep streaming."""
    route = group_route(spec, group)
    member = next((m for m in route.members if m.service == service), None)
    if member is None:
        raise BadInput(
            f"{service} is not in decoder group {group!r}",
            hint=f"its members: {', '.join(m.service for m in route.members)}",
        )
    position = shared.leave(route, member)
    journal.event(
        service,
        Event.ATTACH_SYNC,
        status="ok",
        details={"left_decoder": group, "position": position},
    )
    return position
