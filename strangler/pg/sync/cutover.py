"""Write cutover and its rollback: gate, drain, sequences, reverse sync, open, in that order.

The write gate is a statement-level ``BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE`` trigger
on each moved table calling one function per side. Installing triggers locks the tables, so
it happens once, before the timed window; closing and opening the gate is then
``CREATE OR REPLACE FUNCTION`` (no table lock, effective for the next statement), which is
what makes the refused-write window short and reversible. A refused write fails with SQLSTATE
25006 and a message naming the migration. Apply sessions run as ``replica`` and pass.

Cutover (runbook phase C)::

    close monolith gate → wait for transactions already writing → mark → drain forward sync
    → move sequences past the monolith's → drop forward slot → create reverse slot
    → open service gate                      (window = close … open, recorded)

Rollback is the same backwards. A failure before the new direction exists undoes the gate;
a process killed after the old slot was dropped is finished by the next call (both sides
are frozen and equal from that point on). :data:`SWITCH` lists the stages; plans and dry runs
print them from that list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.sync import cdc
from strangler.pg.sync.gate import Side, close_gate, install_gate, open_gate
from strangler.pg.sync.position import emit_mark
from strangler.pg.sync.slot import lock_waits_named

__all__ = [
    "SWITCH",
    "Switch",
    "SwitchStep",
    "cutover",
    "cutover_stages",
    "describe",
    "move_sequences",
    "rollback",
    "rollback_stages",
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
SELECT s.relname, q.seqincrement, v.last_value
FROM pg_sequence q JOIN pg_class s ON s.oid = q.seqrelid
JOIN pg_namespace n ON n.oid = s.relnamespace
LEFT JOIN pg_sequences v ON v.schemaname = n.nspname AND v.sequencename = s.relname
WHERE n.nspname = %s
"""


def move_sequences(
    src: psycopg.Connection[Any],
    src_schema: str,
    dst: psycopg.Connection[Any],
    dst_schema: str,
    tables: Sequence[str] = (),
) -> dict[str, int]:
    """Set every sequence of ``dst_schema`` that has a twin of the same name in ``src_schema``
    past the twin's value, so the side that takes the writes next never draws an id the other
    side already used.

    Every sequence, not only those a table owns (issue 12): the copy carries each sequence a
    moved column draws from (serial and identity, ``DEFAULT nextval('…')`` without OWNED BY,
    one shared by several tables, one a carried trigger function calls) under its own name, so
    the twins are exactly the sequences the moved tables use. ``tables`` is not needed any
    more and kept for callers that pass it.
    """
    theirs = {
        name: (inc, value)
        for name, inc, value in src.execute(_SEQUENCES, (src_schema,)).fetchall()
        if value is not None
    }
    moved: dict[str, int] = {}
    for name, inc, value in dst.execute(_SEQUENCES, (dst_schema,)).fetchall():
        if name not in theirs:
            continue
        other = int(theirs[name][1])
        mine = None if value is None else int(value)
        # past the other side's value, in the direction the sequence runs
        beyond = other if mine is None else (max(other, mine) if inc > 0 else min(other, mine))
        if beyond == mine:
            continue
        dst.execute(
            "SELECT setval(%s::regclass, %s, true)",
            (sql.Identifier(dst_schema, name).as_string(dst), beyond),
        )
        moved[f"{dst_schema}.{name}"] = beyond
    return moved


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
    SwitchStep("close", "close the write gate on {old}'s tables (SQLSTATE 25006 names the "
               "migration)"),
    SwitchStep("wait", "wait for transactions already writing to {old}'s tables to end"),
    SwitchStep("drain", "mark {old}'s WAL and drain sync from {old_slot} up to the mark"),
    SwitchStep("sequences", "move {new}'s sequences past {old}'s"),
    SwitchStep("drop", "drop the slot and publication {old_slot}"),
    SwitchStep("create", "create the slot and publication {new_slot} (no copy: both sides "
               "are equal)"),
    SwitchStep("open", "open the write gate on {new}'s tables"),
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


def _finish(old: cdc.SyncRoute, new: cdc.SyncRoute, new_side: Side) -> Switch | None:
    """Finish a switch killed after the point of no return (the old slot dropped).

    Both sides' gates were closed then and every change drained, so the two sides are equal:
    the new direction is created without a copy and its source's gate opened. Returns None
    when the old direction still exists: nothing irreversible happened, and the switch is
    simply run again.
    """
    if cdc.status(old).slot_exists:
        return None
    new_state = cdc.status(new)
    if not new_state.slot_exists:
        cdc.begin(new, copy=None)
    elif new_state.applied_lsn is None:
        cdc.attach(new)
    with old.connect_target() as dst:
        open_gate(dst, old.service, new_side)
    return Switch(new.direction, 0.0, 0, {}, resumed=True)


def _switch(
    old: cdc.SyncRoute,
    new: cdc.SyncRoute,
    old_side: Side,
    new_side: Side,
    writers_timeout: float = 10.0,
) -> Switch:
    """Move writes from ``old``'s source to ``new``'s source (they are each other's target)."""
    service = old.service
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
        started = time.monotonic()
        close_gate(src, service, old_side)
        new_exists = False
        try:
            wait_in_flight(src, old.source_schema, old.tables, writers_timeout)
            mark = emit_mark(src)
            last = cdc.run(old, until_lsn=mark, poll=0.001, max_poll=0.01)
            seqs = move_sequences(src, old.source_schema, dst, old.target_schema)
            cdc.end(old)
            cdc.begin(new, copy=None)
            new_exists = True
            open_gate(dst, service, new_side)
        except BaseException:
            # Undo: the old direction resumes and its source takes writes again.
            if not new_exists:
                with_new = cdc.status(new).slot_exists
                if with_new:
                    cdc.end(new)
                if not cdc.status(old).slot_exists:
                    cdc.begin(old, copy=None)
                open_gate(src, service, old_side)
            raise
        window = time.monotonic() - started
    return Switch(new.direction, window, last.rows, seqs)


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
