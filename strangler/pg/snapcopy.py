"""Copy the rows of tables that already exist on both sides, under an exported snapshot.

The initial load that :func:`strangler.pg.cdc.begin` needs when the copy must meet the slot
exactly. The full extraction (DDL, indexes, parallel ranges) is ``strangler.pg.copy``; this
is the small, exact part online sync relies on: one REPEATABLE READ transaction that imports
the slot's snapshot, and one text COPY stream per table into the emptied target table, all
committed together on the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.connect import connect

__all__ = ["copied_columns", "copy_under_snapshot"]


def copied_columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """The target's columns that take values (generated columns are computed, not copied)."""
    rows = conn.execute(
        """
        SELECT a.attname FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attgenerated = ''
        ORDER BY a.attnum
        """,
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def copy_under_snapshot(
    source_dsn: str,
    source_schema: str,
    target_dsn: str,
    target_schema: str,
    tables: Sequence[str],
    snapshot: str | None,
) -> dict[str, int]:
    """Empty the target tables and fill them from the source as of ``snapshot``."""
    counts: dict[str, int] = {}
    with (
        connect(source_dsn, role="monolith", autocommit=False) as src,
        connect(target_dsn, role="target", autocommit=False) as dst,
    ):
        src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if snapshot:
            src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        dst.execute("SET LOCAL session_replication_role = replica")
        dst.execute(
            sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(sql.Identifier(target_schema, t) for t in tables)
            )
        )
        for table in tables:
            cols = sql.SQL(", ").join(
                map(sql.Identifier, copied_columns(dst, target_schema, table))
            )
            out_sql = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
                cols, sql.Identifier(source_schema, table)
            )
            in_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(target_schema, table), cols
            )
            with src.cursor().copy(out_sql) as out, dst.cursor().copy(in_sql) as into:
                for chunk in out:
                    into.write(chunk)
            row = dst.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(target_schema, table))
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
        dst.commit()
        src.rollback()
    return counts
