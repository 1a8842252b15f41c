"""The write gate: one trigger function per side that lets writes through or refuses them.

Installing the statement-level triggers locks the tables, so it happens ahead of time; closing
or opening the gate is ``CREATE OR REPLACE FUNCTION`` (no table lock, effective for the next
statement). Refused writes fail with SQLSTATE 25006 and a message naming the migration. Sync
apply sessions run with ``session_replication_role = replica``, so the gate never stops them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from strangler.pg.own import GATE_SCHEMA
from strangler.pg.sync.slot import lock_waits_named

__all__ = [
    "GATE_SCHEMA",
    "GateState",
    "Side",
    "close_gate",
    "gate_is_open",
    "gate_state",
    "install_gate",
    "open_gate",
    "remove_gate",
    "with_partitions",
]

Side = Literal["monolith", "service"]
_SCHEMA = GATE_SCHEMA
_TRIGGER = "strangler_write_gate"


def _function(service: str, side: Side) -> sql.Identifier:
    return sql.Identifier(_SCHEMA, f"writes_{service}_{side}")


_OPEN_BODY = "BEGIN RETURN NULL; END"


def _define(conn: psycopg.Connection[Any], service: str, side: Side, refuse: str | None) -> None:
    if refuse is None:
        body = _OPEN_BODY
    else:
        body = (
            sql.SQL(
                "BEGIN RAISE EXCEPTION USING ERRCODE = '25006', MESSAGE = format({}, "
                "TG_TABLE_SCHEMA, TG_TABLE_NAME); END"
            )
            .format(sql.Literal(refuse))
            .as_string(conn)
        )
    conn.execute(
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            _function(service, side), sql.Literal(body)
        )
    )


def _refusal(service: str, side: Side) -> str:
    if side == "monolith":
        return (
            "strangler: writes to %I.%I are refused: " + service + "'s writes were cut over to "
            "its own schema (strangler cutover " + service + "); to go back run "
            "'strangler rollback " + service + " --writes'"
        )
    return (
        "strangler: writes to %I.%I are refused: the monolith still owns " + service + "'s "
        "writes until 'strangler cutover " + service + "'"
    )


def install_gate(
    conn: psycopg.Connection[Any],
    service: str,
    side: Side,
    schema: str,
    tables: Sequence[str],
    *,
    closed: bool,
    lock_timeout: float = 10.0,
) -> None:
    """Create the gate function and triggers (idempotent); ``closed`` refuses writes now.

    Creating a trigger waits for every transaction using the table; past ``lock_timeout``
    the sessions in the way are named instead of waiting without end.
    """
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(_SCHEMA)))
    _define(conn, service, side, _refusal(service, side) if closed else None)
    for table in with_partitions(conn, schema, tables):
        exists = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            (sql.Identifier(schema, table).as_string(conn), _TRIGGER),
        ).fetchone()
        if exists:
            continue
        what = (
            f"could not install the write gate on {schema}.{table} within {lock_timeout:g}s: "
            "these sessions hold the table"
        )
        with lock_waits_named(conn, lock_timeout, what):
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
                ).format(
                    sql.Identifier(_TRIGGER),
                    sql.Identifier(schema, table),
                    _function(service, side),
                )
            )


def gate_is_open(conn: psycopg.Connection[Any], service: str, side: Side) -> bool:
    """Whether ``side``'s gate lets the application's writes through (False: closed, or not
    installed at all)."""
    row = conn.execute(
        "SELECT prosrc FROM pg_proc WHERE oid = to_regproc(%s)",
        (_function(service, side).as_string(conn),),
    ).fetchone()
    return row is not None and row[0] == _OPEN_BODY


def with_partitions(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """``tables`` and every partition under them (at any depth), in ``schema``.

    A statement trigger on a partitioned table fires only for statements naming that table;
    an ``INSERT INTO events_2024`` would pass a gate installed on ``events`` alone.
    """
    rows = conn.execute(
        "SELECT c.relname FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace "
        "CROSS JOIN LATERAL pg_partition_tree(r.oid) t JOIN pg_class c ON c.oid = t.relid "
        "WHERE n.nspname = %s AND r.relname = ANY(%s) AND t.level > 0 ORDER BY t.level, 1",
        (schema, list(tables)),
    ).fetchall()
    return list(tables) + [r[0] for r in rows if r[0] not in tables]


def close_gate(conn: psycopg.Connection[Any], service: str, side: Side) -> None:
    _define(conn, service, side, _refusal(service, side))


def open_gate(conn: psycopg.Connection[Any], service: str, side: Side) -> None:
    _define(conn, service, side, None)


def remove_gate(
    conn: psycopg.Connection[Any], service: str, side: Side, schema: str, tables: Sequence[str]
) -> None:
    for table in with_partitions(conn, schema, tables):
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(_TRIGGER), sql.Identifier(schema, table)
            )
        )
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_function(service, side)))


@dataclass(frozen=True)
class GateState:
    """Where a side's gate stands now: the tables without its trigger, and whether its
    function refuses writes."""

    missing: list[str]
    closed: bool


def gate_state(
    conn: psycopg.Connection[Any], service: str, side: Side, schema: str, tables: Sequence[str]
) -> GateState:
    """Read the gate of ``side`` on ``schema``'s ``tables`` from the catalog (changes nothing)."""
    missing = []
    for table in tables:
        found = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (sql.Identifier(schema, table).as_string(conn), _TRIGGER),
        ).fetchone()
        if found is None:
            missing.append(table)
    row = conn.execute(
        "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND p.proname = %s AND p.pronargs = 0",
        (_SCHEMA, f"writes_{service}_{side}"),
    ).fetchone()
    return GateState(missing, row is not None and "RAISE EXCEPTION" in str(row[0]))
