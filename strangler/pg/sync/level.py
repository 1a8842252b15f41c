"""Bring a route's receiving tables level with its sending tables, all at once.

Used to rebuild a reverse sync whose slot the server invalidated (issue 15): the service's
writes since the slot was lost cannot be read any more, so the monolith's old tables are
made equal to the service's tables again by copying them whole, after a new slot was made.
The stream from that slot repeats changes the copy already holds; sync applies it by the
catch-up rules (:mod:`strangler.pg.sync.catchup`) up to a mark made after the copy, which
is exactly the case they were written for.

The receiving tables are rewritten in **one** transaction on their server, as replica
(``session_replication_role``): the write gate on them and the foreign keys from tables
that stay there do not fire (the rows come back equal to what the service holds, which is
what reverse sync would have made them), and a copy killed halfway leaves the old rows as
they were. The sending side is read in one REPEATABLE READ snapshot, so the tables agree
with each other as well.

Rows travel as text with the formats fixed on both sessions (ISO dates, full float
precision): the two servers may differ in version, settings or type details, and text is
the form every type round-trips through.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

__all__ = ["level_tables"]

# The same text on both sides whatever the servers' settings say.
_FORMATS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL TimeZone = 'UTC'",
)


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """Columns a row is written with: not dropped, not generated."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
        "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return [str(r[0]) for r in rows]


def level_tables(
    src: psycopg.Connection[Any],
    source_schema: str,
    dst: psycopg.Connection[Any],
    target_schema: str,
    tables: tuple[str, ...],
) -> dict[str, int]:
    """Replace every row of ``target_schema``'s ``tables`` by the rows of
    ``source_schema``'s, read in one snapshot; returns the rows written per table.

    Both connections must be outside a transaction; each is used for one transaction here."""
    written: dict[str, int] = {}
    with src.transaction(), dst.transaction():
        src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for statement in _FORMATS:
            src.execute(statement)
            dst.execute(statement)
        dst.execute("SET LOCAL session_replication_role = replica")
        for table in tables:
            theirs = _columns(dst, target_schema, table)
            cols = [c for c in _columns(src, source_schema, table) if c in theirs]
            names = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            dst.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(target_schema, table)))
            read = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
                names, sql.Identifier(source_schema, table)
            )
            write = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(target_schema, table), names
            )
            with src.cursor() as reader, dst.cursor() as writer:
                with reader.copy(read) as out, writer.copy(write) as into:
                    for block in out:
                        into.write(block)
                written[table] = writer.rowcount
    return written
