"""Replay one table's changes one by one, in commit order: the path for what cannot be folded.

Tables under ``REPLICA IDENTITY FULL`` (identical rows may exist, so exactly one of them
changes per change), key values absent from the stream, unique values swapped between rows
within one round, and streams that only a diverged target explains all come here. Slower
(a round trip per change, except runs of inserts) but needs nothing from the fold, and every
UPDATE or DELETE is checked to touch exactly one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.sync.pgoutput import UNCHANGED, Delete, Insert, Relation, Update, Value
from strangler.pg.sync.stage import Diverged

__all__ = ["replay"]

_Pending = list[tuple[sql.Composed, list[Value]]]


def replay(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    changes: Sequence[tuple[Relation, Insert | Update | Delete]],
) -> None:
    """Apply ``changes`` to ``table`` in order; raises Diverged on a missing row."""
    pending: _Pending = []
    for rel, msg in changes:
        stmt, params = _statement(table, rel, msg)
        # Consecutive changes with the same statement go together (multi-row VALUES for
        # inserts); order is kept because only neighbours are grouped.
        if pending and pending[0][0] != stmt:
            _flush(conn, pending)
        pending.append((stmt, params))
    _flush(conn, pending)


def _statement(
    table: sql.Identifier, rel: Relation, msg: Insert | Update | Delete
) -> tuple[sql.Composed, list[Value]]:
    if isinstance(msg, Insert):
        cols = rel.column_names
        stmt = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})").format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        )
        return stmt, list(msg.new)
    if isinstance(msg, Update):
        sets = [
            (c, v) for c, v in zip(rel.column_names, msg.new, strict=True) if v is not UNCHANGED
        ]
        # The old key when the key changed (or the whole old row under REPLICA IDENTITY FULL);
        # otherwise the new tuple's key columns still locate the row.
        full = msg.old is not None and not msg.old_is_key
        where, where_vals = _where(table, rel, msg.old or msg.new, full=full)
        stmt = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c, _ in sets
            ),
            where,
        )
        return stmt, [v for _, v in sets] + where_vals
    where, where_vals = _where(table, rel, msg.old, full=not msg.old_is_key)
    return sql.SQL("DELETE FROM {} WHERE {}").format(table, where), where_vals


def _where(
    table: sql.Identifier, rel: Relation, values: Sequence[Value], *, full: bool
) -> tuple[sql.Composable, list[Value]]:
    parts: list[sql.Composable] = []
    params: list[Value] = []
    for col, value in zip(rel.columns, values, strict=True):
        if not (col.key or full) or value is UNCHANGED:
            continue
        if value is None:
            parts.append(sql.SQL("{} IS NULL").format(sql.Identifier(col.name)))
        else:
            parts.append(sql.SQL("{} = {}").format(sql.Identifier(col.name), sql.Placeholder()))
            params.append(value)
    cond = sql.SQL(" AND ").join(parts)
    if full:
        # Replica identity FULL: identical rows may exist; change exactly one of them.
        cond = sql.SQL("ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)").format(table, cond)
    return cond, params


def _flush(conn: psycopg.Connection[Any], pending: _Pending) -> None:
    # Not executemany: its pipeline mode hung under concurrent threads with psycopg 3.3 here.
    # Inserts become multi-row VALUES (one round trip per 500 rows); updates and deletes run
    # as prepared statements, each checked to touch exactly one row.
    if not pending:
        return
    stmt = pending[0][0]
    text = stmt.as_string(conn)
    affected = 0
    with conn.cursor() as cur:
        if text.startswith("INSERT "):
            width = len(pending[0][1])
            step = max(1, min(500, 60_000 // max(1, width)))
            row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * width))
            head = sql.SQL(text.rsplit(" VALUES ", 1)[0])  # built from Identifiers above
            for i in range(0, len(pending), step):
                chunk = pending[i : i + step]
                many = sql.SQL("{} VALUES {}").format(head, sql.SQL(", ").join([row] * len(chunk)))
                cur.execute(many, [v for _, params in chunk for v in params])
                affected += cur.rowcount
        else:
            for _, params in pending:
                cur.execute(stmt, params, prepare=True)
                affected += cur.rowcount
    if affected != len(pending):
        raise Diverged(
            f"{len(pending)} change(s) to apply but {affected} row(s) matched on the target "
            f"for: {text[:200]}; the target differs from the source, so sync stopped and "
            "nothing of this round was applied",
            hint="run 'strangler verify' to locate the difference; re-copy if needed",
        )
    pending.clear()
