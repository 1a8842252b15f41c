"""Catch-up mode: the stream's first changes after a copy made under several snapshots.

An online copy under ``copy.max_snapshot_age`` (issue 17) does not read its rows in the
slot's snapshot: the slot is made first, at position L0, holding no snapshot, and the copy
reads each chunk under a snapshot of its own, each taken after L0 and none older than the
limit, so the monolith's xmin horizon is never pinned for hours. Every chunk then holds its
rows as of *its* read, and the stream from L0 repeats changes some chunks already hold and
carries changes older than what other chunks show. Sync applies that part of the stream, up
to an LSN after every chunk's read (``until``), by these rules, change by change in commit
order, after the whole copy is in:

- INSERT: insert, or overwrite the row a later read already copied (an upsert);
- UPDATE: where the row is, set the columns the change carries (a TOAST value left
  unchanged is not sent, and keeps the copied one); a changed key moves the old row, or,
  when a later read already copied the new key, the old row goes and the new one is set;
- DELETE: delete the row where it is.

A row that an UPDATE or DELETE does not find was deleted (or moved away) before its chunk
was read, after this change: that deletion is later in the stream, so nothing is lost by
skipping it. Why the target then equals the source once sync passes ``until``: for any key,
the last change applied is the source's last change before that point (every change after
L0 is in the stream, in order, after every chunk was written), and a key no change touched
after L0 holds what its chunk read, which is the source's value. Beyond ``until`` the strict
rules apply again (a missing row is a divergence that stops sync).

Like Debezium's incremental snapshots, this needs a key to find rows by: every moved table
must have a primary key or a replica identity index (``plan`` and ``copy`` refuse otherwise).
Unlike them, the copy does not interleave with the stream: it completes first, the stream
waits in the slot.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import CheckFailed
from strangler.pg.sync.pgoutput import UNCHANGED, Delete, Insert, Relation, Update, Value

__all__ = ["apply_catching_up", "refuse_keyless"]


def refuse_keyless(
    conn: psycopg.Connection[Any], schema: str, tables: list[str], *, what: str, otherwise: str
) -> None:
    """Refuse, naming them, the tables of ``tables`` with REPLICA IDENTITY FULL: catch-up
    finds rows by key, and their changes carry none. ``what`` catches up (the sentence's
    subject); ``otherwise`` is the way around it besides giving the table a key."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relreplident = 'f' ORDER BY 1",
        (schema, tables),
    ).fetchall()
    if rows:
        names = ", ".join(f"{schema}.{r[0]}" for r in rows)
        raise CheckFailed(
            f"{names}: REPLICA IDENTITY FULL, so no key to find a row by: {what} catches up "
            "the stream by key. Nothing was changed.",
            hint="give the table a primary key (or REPLICA IDENTITY USING INDEX on a unique "
            f"index), {otherwise}",
        )


def apply_catching_up(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    rel: Relation,
    msg: Insert | Update | Delete,
) -> None:
    """Apply one change by the catch-up rules (module docstring)."""
    if isinstance(msg, Insert):
        _upsert(conn, table, rel, msg.new)
        return
    if isinstance(msg, Delete):
        where, params = _where_key(rel, msg.old)
        conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(table, where), params)
        return
    if msg.old is not None and msg.old_is_key:  # the key changed
        new_where, new_params = _where_key(rel, msg.new)
        there = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(table, new_where),
            new_params,
        ).fetchone()
        old_where, old_params = _where_key(rel, msg.old)
        if there == (True,):
            # A later read copied the row under its new key: the old one is a leftover.
            conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(table, old_where), old_params)
        else:
            _update(conn, table, rel, msg.new, old_where, old_params)
            return
    where, params = _where_key(rel, msg.new)
    _update(conn, table, rel, msg.new, where, params)


def _update(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    rel: Relation,
    new: tuple[Value, ...],
    where: sql.Composable,
    where_params: list[Value],
) -> None:
    sets = [(c, v) for c, v in zip(rel.column_names, new, strict=True) if v is not UNCHANGED]
    if not sets:
        return
    conn.execute(
        sql.SQL("UPDATE {} SET {} WHERE {}").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c, _ in sets
            ),
            where,
        ),
        [v for _, v in sets] + where_params,
    )


def _upsert(
    conn: psycopg.Connection[Any], table: sql.Identifier, rel: Relation, new: tuple[Value, ...]
) -> None:
    cols = rel.column_names
    keys = [c.name for c in rel.columns if c.key]
    rest = [c for c in cols if c not in keys]
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in rest
            )
        )
        if rest
        else sql.SQL("DO NOTHING")
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({}) ON CONFLICT ({}) {}"
        ).format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            sql.SQL(", ").join(map(sql.Identifier, keys)),
            action,
        ),
        list(new),
    )


def _where_key(rel: Relation, values: tuple[Value, ...]) -> tuple[sql.Composable, list[Value]]:
    parts: list[sql.Composable] = []
    params: list[Value] = []
    for col, value in zip(rel.columns, values, strict=True):
        if not col.key:
            continue
        parts.append(sql.SQL("{} = {}").format(sql.Identifier(col.name), sql.Placeholder()))
        params.append(value)
    return sql.SQL(" AND ").join(parts), params
