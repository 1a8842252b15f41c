"""``strangler sync SERVICE --rebuild``: a way back again after the reverse slot was lost.

After the cutover, reverse sync keeps the monolith's old tables equal to the service's, so
that ``rollback --writes`` can go back without losing a write. When the server invalidates
the reverse slot (``max_slot_wal_keep_size`` exceeded while reverse sync was stopped), the
service's writes since can no longer be read: the old tables fall behind for good, traffic
will not move and decommission will not archive them. Issue 15's fault campaign met it in
three steps (sync-reverse, rollback-writes, shift) with no way out inside strangler.

The rebuild, in the service's lock:

1. records that a rebuild began (:class:`strangler.steps.records.ReverseRebuild`), then drops
   the lost slot, its publication and stored position, and makes a new reverse slot, holding
   no snapshot (``cdc.begin(copy=None)``), at L0;
2. rewrites the monolith's old tables with the service's rows, read after L0, in one
   transaction (:func:`strangler.pg.sync.level.level_tables`); the monolith's side is gated
   since the cutover, so nothing else writes them;
3. marks the stream after the copy and has sync apply the stream from L0 to that mark by the
   catch-up rules (:mod:`strangler.pg.sync.catchup`), strictly after it; then it journals a
   ``rebuild_reverse`` event and forgets the record.

Killed anywhere, the same command again carries on: with the record and the new slot alive,
step 2 runs again (it replaces every row, so it is idempotent) and step 3 after it. The
phase does not change: the service is where it was, with its way back restored once
``strangler sync SERVICE`` has applied past the mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strangler.errors import CheckFailed
from strangler.pg.sync import cdc
from strangler.pg.sync.catchup import refuse_keyless
from strangler.pg.sync.level import level_tables
from strangler.pg.sync.pgoutput import format_lsn
from strangler.steps.records import Event, ReverseRebuild
from strangler.steps.runbook import Runbook
from strangler.steps.sync import direction_in
from strangler.steps.wiring import sync_route

__all__ = ["Rebuilt", "rebuild_reverse", "would_rebuild"]


@dataclass(frozen=True)
class Rebuilt:
    service: str
    slot: str
    resumed: bool
    start_lsn: str
    catch_up_until: str
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def would_rebuild(rb: Runbook) -> cdc.SyncRoute:
    """The reverse route a rebuild would make again; CheckFailed (changing nothing) when
    there is nothing to rebuild or it cannot be rebuilt."""
    if rb.service.strategy != "online":
        raise CheckFailed(
            f"{rb.name} is strategy: {rb.service.strategy}: it has no sync to rebuild",
        )
    if direction_in(rb.phase) != "reverse":
        raise CheckFailed(
            f"{rb.name} is {rb.phase.value}: --rebuild remakes reverse sync, which runs from "
            "the write cutover until the old path is removed",
            hint=f"before the cutover a lost slot is replaced by 'strangler rollback {rb.name} "
            f"--schema', then 'strangler copy {rb.name}'",
        )
    route = sync_route(rb.spec, rb.name, "reverse")
    now = cdc.status(route)
    begun = rb.progress.load(ReverseRebuild)
    if now.slot_exists and not now.slot_lost and (begun is None or begun.slot != route.slot):
        raise CheckFailed(
            f"reverse sync of {rb.name} is healthy (slot {route.slot}): nothing to rebuild",
            hint=f"'strangler sync {rb.name}' applies its changes",
        )
    with route.connect_source() as src:
        refuse_keyless(
            src,
            route.source_schema,
            list(route.tables),
            what="sync after a rebuild",
            otherwise="in the service schema, then run the same command again",
        )
    return route


def rebuild_reverse(rb: Runbook) -> Rebuilt:
    """Make reverse sync of ``rb`` again (module docstring); resumable after kill -9."""
    with rb.journal.lock(rb.name):
        route = would_rebuild(rb)
        begun = rb.progress.load(ReverseRebuild)
        now = cdc.status(route)
        resumed = (
            begun is not None and begun.slot == route.slot and now.slot_exists and not now.slot_lost
        )
        if not resumed:
            rb.progress.save(ReverseRebuild(route.slot, rb.journal.clock().isoformat()))
            cdc.end(route)
            cdc.begin(route, copy=None, gate=False)
        start = cdc.status(route).applied_lsn or "?"
        with route.connect_source() as src, route.connect_target() as dst:
            rows = level_tables(src, route.source_schema, dst, route.target_schema, route.tables)
        until = cdc.catch_up_after_copy(route)
        cdc.attach(route)  # the position stays at L0; the monolith's gate stays closed
        done = Rebuilt(rb.name, route.slot, resumed, start, format_lsn(until), rows)
        rb.journal.event(rb.name, Event.REBUILD_REVERSE, status="ok", details=done.to_dict())
        rb.progress.clear(ReverseRebuild)
        return done
