"""The copy of an online service meets its replication slot exactly (issue 5).

For ``strategy: online`` the extraction's copy runs *inside* :func:`strangler.pg.sync.cdc.begin`:
the publication and the logical slot are created first, on a replication connection that
exports a snapshot, and every copy worker imports that snapshot. The replication connection
stays open (and idle) until the copy returns. Every row committed before the slot's
consistent point is in the copy, every later change is in the slot's stream: nothing is
missed and nothing arrives twice. ``strangler sync`` then applies from the slot; it never
copies.

Resuming after kill -9. The exported snapshot dies with the process that held the
replication connection, so rows copied under it can never be combined with rows copied
under another snapshot (the stream starts at one point only). Two cases:

- every chunk of the plan was copied under the slot's snapshot and the slot still exists:
  the rows are complete as of the slot's consistent point, so the copy goes on with what is
  left (keys, indexes, counts) and sync attaches to the slot where it was created;
- anything else: the slot, publication and stored position are dropped, the target tables
  emptied, the finished chunks forgotten, and the copy starts again under a new slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import sql

from strangler.errors import CheckFailed
from strangler.pg.sync import cdc
from strangler.pg.sync.pgoutput import format_lsn
from strangler.pg.sync.slot import check_replica_identity, slot_status
from strangler.phases import Action, Phase
from strangler.runbook import Runbook

__all__ = ["ONLINE_KEY", "copy_online", "preflight", "rows_complete_under_slot", "start_sync"]

ONLINE_KEY = "copy/online"  # journal: {"slot": name, "snapshot": id} of the slot the copy met

Copy = Callable[[str | None], dict[str, Any]]


def preflight(rb: Runbook) -> None:
    """Refuse, before the schema is created, tables the sync could not publish safely."""
    route = cdc.SyncRoute.of(rb.spec, rb.name, "forward")
    with route.connect_source() as src:
        check_replica_identity(src, route.source_schema, route.tables)


def rows_complete_under_slot(rb: Runbook, route: cdc.SyncRoute) -> bool:
    """Whether an earlier run copied every chunk under the snapshot of the slot that exists."""
    mine = rb.journal.get(rb.name, ONLINE_KEY)
    plan = rb.journal.get(rb.name, "copy/plan")
    if not mine or plan is None or mine.get("slot") != route.slot:
        return False
    done = rb.journal.items(rb.name, "copy/chunk/")
    for table, parts in plan.items():
        for index in range(len(parts)):
            entry = done.get(f"copy/chunk/{table}/{index:05d}")
            if not entry or entry.get("snapshot") != mine.get("snapshot"):
                return False
    with route.connect_source() as src:
        return slot_status(src, route.slot).exists


def _empty_targets(route: cdc.SyncRoute) -> None:
    """Empty the service's tables (all at once: foreign keys between them may exist)."""
    with route.connect_target() as dst, dst.transaction():
        present = [
            t
            for t in route.tables
            if dst.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (sql.Identifier(route.target_schema, t).as_string(dst),),
            ).fetchone()
            == (True,)
        ]
        if present:
            # As replica: a write gate left by an earlier attempt must not refuse this.
            dst.execute("SET LOCAL session_replication_role = replica")
            dst.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(route.target_schema, t) for t in present)
                )
            )


def copy_online(rb: Runbook, copy: Copy) -> dict[str, Any]:
    """Run ``copy(snapshot)`` so that it meets the service's forward slot exactly.

    ``copy`` is the extraction's copy: given a snapshot id it reads only that snapshot;
    given None it exports its own (used here only when every row is already copied).
    """
    route = cdc.SyncRoute.of(rb.spec, rb.name, "forward")
    journal, name = rb.journal, rb.name
    started_before = (
        journal.get(name, ONLINE_KEY) is not None or journal.get(name, "copy/plan") is not None
    )
    if started_before and rows_complete_under_slot(rb, route):
        mine = journal.get(name, ONLINE_KEY)
        out = copy(None)
        lsn = cdc.attach(route)
        return {
            **out,
            "snapshot": mine["snapshot"],
            "slot": route.slot,
            "consistent_lsn": format_lsn(lsn),
            "restarted": False,
        }
    if started_before:
        # The snapshot the finished chunks were read in is gone: start over, cleanly.
        cdc.end(route)
        _empty_targets(route)
        journal.forget(name, "copy/chunk/")
        journal.forget(name, ONLINE_KEY)
    result: dict[str, Any] = {}

    def under_slot(snapshot: str | None) -> None:
        journal.put(name, ONLINE_KEY, {"slot": route.slot, "snapshot": snapshot})
        result.update(copy(snapshot))

    lsn = cdc.begin(route, copy=under_slot)
    return {
        **result,
        "slot": route.slot,
        "consistent_lsn": format_lsn(lsn),
        "restarted": started_before,
    }


def _slot_gone(route: cdc.SyncRoute) -> CheckFailed:
    if route.direction == "forward":
        return CheckFailed(
            f"sync of {route.service} has no replication slot {route.slot!r}: it was removed "
            "(sync --stop) or the copy was made without one, so the rows in the service schema "
            "no longer meet a change stream",
            hint=f"'strangler rollback {route.service} --schema', then 'strangler copy "
            f"{route.service}' copies again and creates the slot with the copy",
        )
    return CheckFailed(
        f"reverse sync of {route.service} has no replication slot {route.slot!r}: the "
        "monolith's tables no longer follow the service schema",
        hint=f"'strangler sync {route.service} --status' shows what is left; the cutover "
        "creates the reverse slot",
    )


def start_sync(rb: Runbook, route: cdc.SyncRoute) -> None:
    """Before ``strangler sync`` applies: the slot the copy (or the cutover) created must be
    there; sync never copies. Moves a freshly copied service to ``syncing``."""
    if rb.phase in (Phase.PLANNED, Phase.SCHEMA_READY):
        rb.check(Action.START_SYNC)  # refuses, naming 'strangler copy' as the step first
    now = cdc.status(route)
    if not now["slot_exists"]:
        raise _slot_gone(route)
    if now["applied_lsn"] is None:
        # The copy finished but died before storing the position: the slot has not moved.
        lsn = cdc.attach(route)
        rb.journal.event(rb.name, "attach_sync", status="ok", details={"lsn": lsn})
    if rb.phase is Phase.COPIED:
        with rb.step(Action.START_SYNC) as step:
            step.details.update(slot=route.slot, applied_lsn=cdc.status(route)["applied_lsn"])
