"""Write cutover and its rollback: gate, drain, sequences, reverse sync, open, in that order.

The write gate is a statement-level ``BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE`` trigger
on each moved table calling one function per side. Installing triggers locks the tables, so
it happens once, before the timed window; closing and opening the gate is then
``CREATE OR REPLACE FUNCTION`` (no table lock, effective for the next statement), which is
what makes the refused-write window short and reversible. A refused write fails with SQLSTATE
25006 and a message naming the migration. Apply sessions run as ``replica`` and pass.

Cutover (runbook phase C)::

    create the reverse slot, ready the drain    (before the window: waits, connections)
    close monolith gate → wait for transactions already writing → mark → drain forward sync
    → move sequences past the monolith's → start reverse sync at the service's WAL position
    → open service gate                      (window = close … open, recorded)
    drop the forward slot                       (after the window)

Rollback is the same backwards. The window holds only what must happen while writes are
refused (issue 16: p99 211 ms, most of it new connections and creating and dropping slots):
the reverse slot is made before, and sync starts it at the service's WAL position after the
drain, so what forward sync wrote there meanwhile is never sent back; the forward slot goes
after. A failure before the new gate opens undoes the old gate. Opening the new gate is the
point of no return: a process killed after it is finished by the next call (the old slot
dropped), and one killed before it simply runs again. :data:`SWITCH` lists the stages;
plans and dry runs print them from that list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.sync import cdc
from strangler.pg.sync.drain import Drain
from strangler.pg.sync.gate import Side, close_gate, gate_is_open, install_gate, open_gate
from strangler.pg.sync.pgoutput import parse_lsn
from strangler.pg.sync.position import (
    delete_position,
    emit_mark,
    ensure_position,
    ensure_position_table,
    start_position,
)
from strangler.pg.sync.slot import (
    check_replica_identity,
    create_publication,
    drop_sync_objects,
    exported_slot,
    lock_waits_named,
    slot_status,
)

__all__ = [
    "SWITCH",
    "Switch",
    "SwitchStep",
    "apply_sequences",
    "cutover",
    "cutover_stages",
    "describe",
    "move_sequences",
    "rollback",
    "rollback_stages",
    "sequence_pairs",
    "wait_in_flight",
]


def wait_in_flight(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str], timeout: float = 10.0
) -> None:
    """Wait until every transaction that began writing to ``tables`` has ended.

    Run after the gate closed. A writer takes ROW EXCLUSIVE on a table before its statement
    reaches the gate's trigger and keeps it to its end, so a SHARE lock on the tables is
    granted exactly when every writer that might have passed the gate is gone; its commit
    then lies before the drain's mark. (Waiting for transactions that held an xid missed a
    writer between the trigger and its first row: the tests lost one under load.) Writers
    arriving meanwhile queue for the few milliseconds the lock is held, then meet the gate.
    """
    names = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
    what = f"transactions that were writing when the gate closed are still open after {timeout:g}s"
    with lock_waits_named(conn, timeout, what):
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(names))


_SEQUENCES = """
SELECT s.relname, q.seqincrement
FROM pg_sequence q JOIN pg_class s ON s.oid = q.seqrelid
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE n.nspname = %s
"""

SequencePair = tuple[str, int]  # a sequence's name (the same on both sides), its increment


def sequence_pairs(
    src: psycopg.Connection[Any],
    src_schema: str,
    dst: psycopg.Connection[Any],
    dst_schema: str,
) -> list[SequencePair]:
    """Every sequence of ``dst_schema`` with a twin of the same name in ``src_schema``: names
    only, read before a switch's window (issue 16: the window holds only what must happen
    while writes are refused).

    Every sequence, not only those a table owns (issue 12): the copy carries each sequence a
    moved column draws from (serial and identity, ``DEFAULT nextval('…')`` without OWNED BY,
    one shared by several tables, one a carried trigger function calls) under its own name, so
    the twins are exactly the sequences the moved tables use.
    """
    theirs = {name for name, _ in src.execute(_SEQUENCES, (src_schema,)).fetchall()}
    mine = dst.execute(_SEQUENCES, (dst_schema,)).fetchall()
    return sorted((name, int(inc)) for name, inc in mine if name in theirs)


def apply_sequences(
    src: psycopg.Connection[Any],
    src_schema: str,
    dst: psycopg.Connection[Any],
    dst_schema: str,
    pairs: Sequence[SequencePair],
) -> dict[str, int]:
    """Set each sequence of ``pairs`` in ``dst_schema`` past its twin's value, in the direction
    it runs, so the side that takes the writes next never draws an id the other side already
    used: one query on each side, whatever the number of sequences."""
    if not pairs:
        return {}
    values = dict(
        src.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s "
            "AND sequencename = ANY(%s) AND last_value IS NOT NULL",
            (src_schema, [name for name, _ in pairs]),
        ).fetchall()
    )
    used = [(name, inc, int(values[name])) for name, inc in pairs if name in values]
    if not used:
        return {}
    # greatest/least skip NULL: a sequence never drawn from here takes the twin's value.
    rows = dst.execute(
        """
        SELECT w.name, setval(format('%%I.%%I', %s::text, w.name)::regclass, w.beyond, true)
        FROM (
            SELECT u.name, p.last_value AS mine,
                   CASE WHEN u.inc > 0 THEN greatest(u.v, p.last_value)
                        ELSE least(u.v, p.last_value) END AS beyond
            FROM unnest(%s::text[], %s::int8[], %s::int8[]) AS u(name, inc, v)
            LEFT JOIN pg_sequences p ON p.schemaname = %s AND p.sequencename = u.name
        ) w
        WHERE w.beyond IS DISTINCT FROM w.mine
        """,
        (
            dst_schema,
            [u[0] for u in used],
            [u[1] for u in used],
            [u[2] for u in used],
            dst_schema,
        ),
    ).fetchall()
    return {f"{dst_schema}.{name}": int(value) for name, value in rows}


def move_sequences(
    src: psycopg.Connection[Any],
    src_schema: str,
    dst: psycopg.Connection[Any],
    dst_schema: str,
    tables: Sequence[str] = (),
) -> dict[str, int]:
    """:func:`sequence_pairs` then :func:`apply_sequences`, outside a switch (``tables`` is
    not needed any more and kept for callers that pass it)."""
    pairs = sequence_pairs(src, src_schema, dst, dst_schema)
    return apply_sequences(src, src_schema, dst, dst_schema, pairs)


@dataclass(frozen=True)
class SwitchStep:
    """One stage of a switch, in the order :func:`cutover` and :func:`rollback` run them.

    ``what`` names the sides as ``{old}`` (the side writes leave) and ``{new}`` (the side
    they move to), so a cutover and its rollback describe themselves from the same list.
    """

    name: str
    what: str

    def describe(self, old: str, new: str, old_slot: str, new_slot: str) -> str:
        return self.what.format(old=old, new=new, old_slot=old_slot, new_slot=new_slot)


SWITCH: tuple[SwitchStep, ...] = (
    SwitchStep("prepare", "before the window: create the slot and publication {new_slot} (no "
               "copy: the sides will be equal) and open the drain's connections"),
    SwitchStep("close", "close the write gate on {old}'s tables (SQLSTATE 25006 names the "
               "migration)"),
    SwitchStep("wait", "wait for transactions already writing to {old}'s tables to end"),
    SwitchStep("drain", "mark {old}'s WAL and drain sync from {old_slot} up to the mark"),
    SwitchStep("sequences", "move {new}'s sequences past {old}'s"),
    SwitchStep("position", "start {new_slot} at {new}'s WAL position now: what sync wrote "
               "there is not sent back"),
    SwitchStep("open", "open the write gate on {new}'s tables"),
    SwitchStep("drop", "after the window: drop the slot and publication {old_slot}"),
)  # fmt: skip


@dataclass
class Switch:
    """What a cutover or rollback did; ``window_seconds`` is how long writes were refused.

    ``resumed``: a switch killed halfway was finished from where the databases stood."""

    direction: str
    window_seconds: float
    drained_rows: int
    sequences: dict[str, int]
    resumed: bool = False
    # seconds each stage of the window took, in order (SWITCH's names): where the window goes
    stages: dict[str, float] = field(default_factory=dict)


def _side_name(route: cdc.SyncRoute, side: Side) -> str:
    return "the monolith" if side == "monolith" else f"{route.service}'s schema"


def describe(old: cdc.SyncRoute, new: cdc.SyncRoute, old_side: Side, new_side: Side) -> list[str]:
    """The stages of the switch from ``old`` to ``new``, as it will run them."""
    a, b = _side_name(old, old_side), _side_name(old, new_side)
    return [s.describe(a, b, old.slot, new.slot) for s in SWITCH]


def cutover_stages(forward: cdc.SyncRoute, reverse: cdc.SyncRoute) -> list[str]:
    return describe(forward, reverse, "monolith", "service")


def rollback_stages(forward: cdc.SyncRoute, reverse: cdc.SyncRoute) -> list[str]:
    return describe(reverse, forward, "service", "monolith")


def _current_lsn(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return parse_lsn(str(row[0]))


def _prepare(
    new: cdc.SyncRoute, new_src: psycopg.Connection[Any], new_dst: psycopg.Connection[Any]
) -> None:
    """Before the window: the new direction's publication and slot (creating a slot waits for
    the transactions running on its server), with no position yet (a stale one goes)."""
    check_replica_identity(new_src, new.source_schema, new.tables)
    create_publication(new_src, new.slot, new.source_schema, new.tables)
    if not slot_status(new_src, new.slot).exists:
        with exported_slot(new.source_dsn, new_src, new.slot, export_snapshot=False):
            pass
    ensure_position_table(new_dst)
    delete_position(new_dst, new.slot)


def _finish(old: cdc.SyncRoute, new: cdc.SyncRoute, new_side: Side) -> Switch | None:
    """Finish a switch killed halfway, from where the databases stand; None when nothing
    irreversible happened and the switch simply runs again.

    Past the point of no return the new side's gate is open: only the old slot is left to
    drop. An old slot gone with the new gate still closed (a switch of an earlier strangler,
    which dropped it first) means both sides were frozen and drained: the new direction
    starts at the new source's position now and its gate opens.
    """
    with old.connect_source() as src, old.connect_target() as dst:
        opened = gate_is_open(dst, old.service, new_side)
        if not opened and slot_status(src, old.slot).exists:
            return None
        if not opened:
            _prepare(new, dst, src)
            ensure_position(src, new.slot, _current_lsn(dst))
            open_gate(dst, old.service, new_side)
        drop_sync_objects(src, old.slot)
        delete_position(dst, old.slot)
    return Switch(new.direction, 0.0, 0, {}, resumed=True)


def _switch(
    old: cdc.SyncRoute,
    new: cdc.SyncRoute,
    old_side: Side,
    new_side: Side,
    writers_timeout: float = 10.0,
) -> Switch:
    """Move writes from ``old``'s source to ``new``'s source (they are each other's target):
    ``src`` is the old source and the new target, ``dst`` the old target and the new source."""
    service = old.service
    stages: dict[str, float] = {}
    clock = [time.monotonic()]

    def stage(name: str) -> None:
        now = time.monotonic()
        stages[name] = now - clock[0]
        clock[0] = now

    with old.connect_source() as src, old.connect_target() as dst:
        install_gate(
            src,
            service,
            old_side,
            old.source_schema,
            old.tables,
            closed=False,
            lock_timeout=writers_timeout,
        )
        install_gate(
            dst, service, new_side, old.target_schema, old.tables, closed=True,
            lock_timeout=writers_timeout,
        )  # fmt: skip
        _prepare(new, dst, src)
        pairs = sequence_pairs(src, old.source_schema, dst, old.target_schema)
        with Drain(old) as drain:
            stage("prepare")
            started = time.monotonic()
            close_gate(src, service, old_side)
            stage("close")
            try:
                wait_in_flight(src, old.source_schema, old.tables, writers_timeout)
                stage("wait")
                last = drain.until(emit_mark(src))
                stage("drain")
                seqs = apply_sequences(src, old.source_schema, dst, old.target_schema, pairs)
                stage("sequences")
                start_position(src, new.slot, _current_lsn(dst))
                stage("position")
            except BaseException:
                # Nothing reached the new side: the old direction goes on as it was.
                open_gate(src, service, old_side)
                drop_sync_objects(dst, new.slot)
                delete_position(src, new.slot)
                raise
            open_gate(dst, service, new_side)
            window = time.monotonic() - started
            stage("open")
        # After the window: the old direction ends (a running sync's stream with it).
        drop_sync_objects(src, old.slot)
        delete_position(dst, old.slot)
        stage("drop")
    return Switch(new.direction, window, last.rows, seqs, stages=stages)


def cutover(
    forward: cdc.SyncRoute,
    reverse: cdc.SyncRoute,
    *,
    writers_timeout: float = 10.0,
    resume: bool = False,
) -> Switch:
    """Writes to the service schema; the monolith's copy kept current by reverse sync.

    ``writers_timeout``: how long to wait for transactions already writing when the gate
    closes; past it the switch is undone and they are named. ``resume``: an earlier cutover
    was killed halfway; finish it from where the databases stand (:func:`_finish`)."""
    return (resume and _finish(forward, reverse, "service")) or _switch(
        forward, reverse, "monolith", "service", writers_timeout
    )


def rollback(
    forward: cdc.SyncRoute,
    reverse: cdc.SyncRoute,
    *,
    writers_timeout: float = 10.0,
    resume: bool = False,
) -> Switch:
    """Writes back to the monolith; forward sync resumes; the service schema is gated."""
    return (resume and _finish(reverse, forward, "monolith")) or _switch(
        reverse, forward, "service", "monolith", writers_timeout
    )
