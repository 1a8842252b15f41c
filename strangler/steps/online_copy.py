"""The copy of an online service meets its replication slot exactly (issue 5).

For ``strategy: online`` the copy runs *inside* :func:`strangler.pg.sync.cdc.begin`: the
publication and the logical slot are created first, on a replication connection that exports
a snapshot, and every copy worker imports that snapshot. The replication connection stays
open (and idle) until the copy returns. Every row committed before the slot's consistent
point is in the copy, every later change is in the slot's stream: nothing is missed and
nothing arrives twice. ``strangler sync`` then applies from the slot; it never copies.

Resuming after kill -9. The exported snapshot dies with the process that held the
replication connection, so rows copied under it can never be combined with rows copied
under another snapshot (the stream starts at one point only). Two cases:

- every chunk of the plan was copied under the slot's snapshot and the slot still exists:
  the rows are complete as of the slot's consistent point, so the copy goes on with what is
  left (keys, indexes, counts) and sync attaches to the slot where it was created;
- anything else: the slot, publication and stored position are dropped, the target tables
  emptied, the finished chunks forgotten, and the copy starts again under a new slot.

With ``copy.max_snapshot_age`` (issue 17) no snapshot is held for the whole copy: the slot is
made first, without one, and the copy reads its chunks under snapshots of its own, a new one
whenever the current one reaches the limit, so the monolith's xmin horizon moves on during a
copy of many hours. Sync then applies the stream from the slot's start by the catch-up rules
(:mod:`strangler.pg.sync.catchup`) up to a mark made after the copy's last read, validates the
foreign keys the copy left NOT VALID (rows read under different snapshots need not agree until
then), and applies strictly after it. Killed, such a copy resumes with every finished chunk
while its slot lives: each was read after the slot was made, which is all catch-up needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strangler.errors import SnapshotAged
from strangler.pg.copy.extract import CopyFigures
from strangler.pg.sync import cdc
from strangler.pg.sync.catchup import refuse_keyless
from strangler.pg.sync.decoding import check_logical_decoding
from strangler.pg.sync.partitions import partitioned_roots
from strangler.pg.sync.pgoutput import format_lsn
from strangler.pg.sync.slot import check_replica_identity, slot_status
from strangler.steps.records import CopyPlan, OnlineCopy
from strangler.steps.runbook import Runbook
from strangler.steps.types import ServiceRef
from strangler.steps.wiring import sync_route

__all__ = [
    "OnlineResult",
    "catching_up",
    "copy_online",
    "refuse_unpublishable",
    "rows_complete_under_slot",
]

Copy = Callable[[str | None], CopyFigures]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnlineResult:
    figures: CopyFigures
    slot: str
    consistent_lsn: str
    restarted: bool
    # partitioned tables, published through their root (publish_via_partition_root)
    partitioned: list[str] = field(default_factory=list)
    # catch-up mode (copy.max_snapshot_age): snapshots the copy took, where catch-up ends
    snapshots: int | None = None
    catch_up_until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slot": self.slot,
            "consistent_lsn": self.consistent_lsn,
            "restarted": self.restarted,
        }
        if self.partitioned:
            out["published_via_partition_root"] = self.partitioned
        if self.catch_up_until is not None:
            out.update(snapshots=self.snapshots, catch_up_until=self.catch_up_until)
        return out


def refuse_unpublishable(rb: Runbook) -> None:
    """Refuse, before the schema is created, what the sync could not do: a server that cannot
    decode logically (either one: reverse sync decodes the service's server after cutover) or
    a table it could not publish safely."""
    route = sync_route(rb.spec, rb.name, "forward")
    with route.connect_source() as src:
        check_logical_decoding(src)
        check_replica_identity(src, route.source_schema, route.tables)
    if rb.service.target.dsn is not None:
        with route.connect_target() as dst:
            check_logical_decoding(dst, f"{rb.name}'s server (reverse sync after the cutover)")


def rows_complete_under_slot(rb: Runbook, route: cdc.SyncRoute) -> bool:
    """Whether an earlier run copied every chunk under the snapshot of the slot that exists."""
    mine = rb.progress.load(OnlineCopy)
    plan = rb.progress.load(CopyPlan)
    if mine is None or plan is None or mine.slot != route.slot:
        return False
    done = rb.progress.chunks()
    for table, parts in plan.bounds.items():
        for index in range(len(parts)):
            entry = done.get(f"{table}/{index:05d}")
            if entry is None or entry.snapshot != mine.snapshot:
                return False
    with route.connect_source() as src:
        return slot_status(src, route.slot).exists


def copy_online(rb: Runbook, copy: Copy) -> OnlineResult:
    """Run ``copy(snapshot)`` so that it meets the service's forward slot exactly.

    ``copy`` is the extraction's copy: given a snapshot id it reads only that snapshot;
    given None it exports its own (used here only when every row is already copied, or in
    catch-up mode).
    """
    route = sync_route(rb.spec, rb.name, "forward")
    with route.connect_source() as src:
        partitioned = partitioned_roots(src, route.source_schema, route.tables)
    started_before = (
        rb.progress.load(OnlineCopy) is not None or rb.progress.load(CopyPlan) is not None
    )
    if catching_up(rb):
        return _copy_catching_up(rb, copy, route, partitioned, started_before)
    mine = rb.progress.load(OnlineCopy)
    if started_before and mine is not None and rows_complete_under_slot(rb, route):
        figures = copy(None)
        lsn = cdc.attach(route)
        figures.snapshot = mine.snapshot or figures.snapshot
        return OnlineResult(figures, route.slot, format_lsn(lsn), False, partitioned)
    if started_before:
        # The snapshot the finished chunks were read in is gone: start over, cleanly.
        cdc.end(route)
        _start_over(rb, route)
        rb.progress.clear(OnlineCopy)
    else:
        _drop_unrecorded_slot(route)
    result: list[CopyFigures] = []

    def under_slot(snapshot: str | None) -> None:
        rb.progress.save(OnlineCopy(route.slot, snapshot))
        result.append(copy(snapshot))

    lsn = cdc.begin(route, copy=under_slot)
    return OnlineResult(result[0], route.slot, format_lsn(lsn), started_before, partitioned)


def catching_up(rb: ServiceRef) -> bool:
    """Whether the service's online copy is made under snapshots of its own and caught up."""
    return rb.service.strategy == "online" and rb.service.copy_.max_snapshot_age is not None


def _copy_catching_up(
    rb: Runbook, copy: Copy, route: cdc.SyncRoute, partitioned: list[str], started_before: bool
) -> OnlineResult:
    """The copy under snapshots of its own after the slot (module docstring)."""
    mine = rb.progress.load(OnlineCopy)
    with route.connect_source() as src:
        _refuse_keyless(src, route)
        alive = slot_status(src, route.slot).exists
    resuming = mine is not None and mine.catch_up and mine.slot == route.slot and alive
    if not resuming:
        if started_before:
            # Rows read before a slot that is gone (or under another mode) cannot be caught
            # up: start over, cleanly.
            cdc.end(route)
            _start_over(rb, route)
        else:
            _drop_unrecorded_slot(route)
        rb.progress.save(OnlineCopy(route.slot, None, catch_up=True))
        cdc.begin(route, copy=None, gate=False)
    figures: CopyFigures | None = None
    snapshots = 0
    while figures is None:
        snapshots += 1
        try:
            figures = copy(None)
        except SnapshotAged as aged:
            log.info("%s; going on under a new snapshot", aged.message)
    # Sync catches up from the slot's start to a mark made now, then validates the foreign
    # keys the mixed snapshots could not promise (pg/sync/catchup.py).
    until = cdc.catch_up_after_copy(route, figures.deferred)
    lsn = cdc.attach(route)  # the position stays at the slot's start; the gate closes now
    return OnlineResult(
        figures,
        route.slot,
        format_lsn(lsn),
        started_before,
        partitioned,
        snapshots=snapshots,
        catch_up_until=format_lsn(until),
    )


def _start_over(rb: Runbook, route: cdc.SyncRoute) -> None:
    """Empty the target tables and forget the chunks, so the copy loads every row again.
    Foreign keys an earlier attempt made after its rows (it failed later, e.g. the target's
    disk full at ANALYZE) go too, with their records, so the new attempt makes them again
    after its rows (the fault campaign's run x target-disk-full)."""
    dropped = cdc.drop_foreign_keys(route)
    if dropped:
        log.info("dropped %s to load the rows again; the copy adds them after", dropped)
    rb.progress.forget_foreign_keys()
    cdc.empty_targets(route)
    rb.progress.forget_chunks()


def _drop_unrecorded_slot(route: cdc.SyncRoute) -> None:
    """Drop the slot (and publication, position) of a run killed between creating its slot
    and recording its copy in the journal: the journal knows of no copy and no sync of this
    service, so nothing was copied under that slot and nothing can have streamed from it."""
    with route.connect_source() as src:
        alive = slot_status(src, route.slot).exists
    if alive:
        log.warning(
            "replication slot %s was left by a copy killed before it recorded itself; "
            "dropping it to start the copy under a new one",
            route.slot,
        )
        cdc.end(route)


def _refuse_keyless(src: Any, route: cdc.SyncRoute) -> None:
    refuse_keyless(
        src,
        route.source_schema,
        list(route.tables),
        what="a copy under copy.max_snapshot_age",
        otherwise="or remove copy.max_snapshot_age to copy under the slot's one snapshot",
    )
