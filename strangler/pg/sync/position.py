"""Where sync stands: the applied position, stored in the target beside the rows it covers.

The position means "every transaction that committed before this LSN is applied"; it is
written in the same target transaction as the rows of a round, so a crash can never separate
the two. A mark (:func:`emit_mark`) is how "caught up to now" is proven.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.own import GATE_SCHEMA
from strangler.pg.sync.pgoutput import format_lsn, parse_lsn

__all__ = [
    "POSITION_SCHEMA",
    "POSITION_TABLE",
    "catch_up_until",
    "delete_position",
    "emit_mark",
    "end_catch_up",
    "ensure_position",
    "ensure_position_table",
    "read_position",
    "set_catch_up",
    "start_position",
]

POSITION_SCHEMA = GATE_SCHEMA
POSITION_TABLE = "sync_position"
# Where a copy made under several snapshots ends (issue 17, steps/online_copy.py): the stream
# is applied in catch-up mode (pg/sync/catchup.py) up to this LSN. Its own table, so that the
# position table every sync has keeps its shape.
CATCH_UP_TABLE = "sync_catch_up"


def emit_mark(conn: psycopg.Connection[Any]) -> int:
    """Write a mark into the stream and flush it; returns its LSN.

    A position must sit on a transaction's end: the monolith's flush pointer can stop in the
    middle of a commit record (we lost five rows that way under ``synchronous_commit = off``),
    so "caught up to X" is proven by applying a transaction of our own, committed
    synchronously after everything X covers. ``pg_logical_emit_message`` is that transaction;
    it touches no table.
    """
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = on")
        row = conn.execute(
            "SELECT pg_logical_emit_message(true, 'strangler', 'mark')::text"
        ).fetchone()
    return parse_lsn(str(row[0])) if row else 0


def ensure_position(conn: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """Create the position table (once) and the slot's row at ``lsn`` (if it has none)."""
    ensure_position_table(conn)
    start_position(conn, slot, lsn)


def ensure_position_table(conn: psycopg.Connection[Any]) -> None:
    """The position table, created once (ahead of a switch's window, so the window only
    inserts a row)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(POSITION_SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " slot text PRIMARY KEY,"
            " lsn pg_lsn NOT NULL,"  # every transaction committed before this is applied
            " xid bigint, commit_time timestamptz, applied_at timestamptz NOT NULL DEFAULT now(),"
            " rows bigint NOT NULL DEFAULT 0, transactions bigint NOT NULL DEFAULT 0)"
        ).format(sql.Identifier(POSITION_SCHEMA, POSITION_TABLE))
    )


def start_position(conn: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """The slot's row at ``lsn``, unless it has one (the table exists: :func:`ensure_position`)."""
    conn.execute(
        sql.SQL("INSERT INTO {} (slot, lsn) VALUES (%s, %s::pg_lsn) ON CONFLICT DO NOTHING").format(
            sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)
        ),
        (slot, format_lsn(lsn)),
    )


def read_position(conn: psycopg.Connection[Any], slot: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            sql.SQL(
                "SELECT lsn::text, xid, commit_time, applied_at, rows, transactions FROM {} "
                "WHERE slot = %s"
            ).format(sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)),
            (slot,),
        ).fetchone()
        if _position_table_exists(conn)
        else None
    )
    if row is None:
        return None
    return {
        "lsn": parse_lsn(row[0]),
        "xid": row[1],
        "commit_time": row[2],
        "applied_at": row[3],
        "rows": row[4],
        "transactions": row[5],
    }


def _position_table_exists(conn: psycopg.Connection[Any]) -> bool:
    name = f"{POSITION_SCHEMA}.{POSITION_TABLE}"
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def delete_position(conn: psycopg.Connection[Any], slot: str) -> None:
    for table in (POSITION_TABLE, CATCH_UP_TABLE):
        if _table_exists(conn, table):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE slot = %s").format(
                    sql.Identifier(POSITION_SCHEMA, table)
                ),
                (slot,),
            )


def _table_exists(conn: psycopg.Connection[Any], table: str) -> bool:
    name = sql.Identifier(POSITION_SCHEMA, table).as_string(conn)
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def set_catch_up(
    conn: psycopg.Connection[Any],
    slot: str,
    lsn: int,
    validate: Sequence[tuple[str, str]] = (),
) -> None:
    """Apply ``slot``'s stream in catch-up mode up to ``lsn`` (every chunk of the copy was
    read before it), then validate the ``validate`` constraints, (table, name) of the target
    schema (pg/sync/catchup.py)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(POSITION_SCHEMA)))
    table = sql.Identifier(POSITION_SCHEMA, CATCH_UP_TABLE)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (slot text PRIMARY KEY, until pg_lsn NOT NULL,"
            " validate jsonb NOT NULL DEFAULT '[]')"
        ).format(table)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (slot, until, validate) VALUES (%s, %s::pg_lsn, %s::jsonb)"
            " ON CONFLICT (slot) DO UPDATE SET until = EXCLUDED.until, validate = EXCLUDED.validate"
        ).format(table),
        (slot, format_lsn(lsn), json.dumps([list(v) for v in validate])),
    )


def end_catch_up(conn: psycopg.Connection[Any], slot: str) -> None:
    """Catch-up is over for ``slot`` (its constraints validated)."""
    if _table_exists(conn, CATCH_UP_TABLE):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE slot = %s").format(
                sql.Identifier(POSITION_SCHEMA, CATCH_UP_TABLE)
            ),
            (slot,),
        )


def catch_up_until(
    conn: psycopg.Connection[Any], slot: str
) -> tuple[int, list[tuple[str, str]]] | None:
    """Where ``slot``'s catch-up mode ends and what to validate then (None: the slot's copy
    was made under one snapshot, or its catch-up is over)."""
    if not _table_exists(conn, CATCH_UP_TABLE):
        return None
    row = conn.execute(
        sql.SQL("SELECT until::text, validate FROM {} WHERE slot = %s").format(
            sql.Identifier(POSITION_SCHEMA, CATCH_UP_TABLE)
        ),
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return parse_lsn(str(row[0])), [(str(t), str(c)) for t, c in row[1]]
