"""Dropping the service schema, and the proof that nothing wrote to it since the copy.

"Nothing wrote" is proven, not assumed (``strangler rollback SERVICE --schema``,
:mod:`strangler.steps.rollback_schema`). At the end of a copy strangler stores a watermark:
the target's transaction id after its last write, and the row count of every table. The
rollback drops the schema only if every table still has exactly that many rows and no row
version is newer than the watermark (``age(xmin) < age(watermark)``: inserts and updates make
new row versions; deletes change the count). A schema that was created but never copied into
must still be empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

__all__ = ["drop", "drop_statements", "writes_since_copy"]


def writes_since_copy(
    conn: Any, schema: str, xid: str | None, counts: Mapping[str, int]
) -> list[str]:
    """Tables of ``schema`` that changed since the copy's watermark (the target's transaction
    id ``xid`` after its last write, and each table's ``counts``); with no ``xid`` (no copy
    was made) any row is a change."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
        "AND c.relkind = 'r' ORDER BY 1",
        (schema,),
    ).fetchall()
    changed = []
    for (table,) in rows:
        name = sql.Identifier(schema, table)
        if xid is None:
            found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name))
            if found.fetchone()[0]:
                changed.append(f"{table} holds rows, and no copy put them there")
            continue
        count, newer = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE age(xmin) < age(%s::text::xid)) FROM {}"
            ).format(name),
            (str(int(xid) % (1 << 32)),),
        ).fetchone()
        if newer:
            changed.append(f"{table} has {newer:,} row(s) written after the copy")
        elif table in counts and count != counts[table]:
            changed.append(f"{table} has {count:,} rows, the copy left {counts[table]:,}")
        elif table not in counts and count:
            changed.append(f"{table} holds rows the copy did not put there")
    return changed


def drop_statements(schema: str, role: str | None) -> list[sql.Composed]:
    """``DROP SCHEMA … CASCADE`` (and ``DROP ROLE`` for a role strangler made)."""
    out = [sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))]
    if role:
        out.append(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    return out


def drop(conn: Any, statements: list[sql.Composed]) -> None:
    """Run ``statements`` in one transaction."""
    with conn.transaction():
        for s in statements:
            conn.execute(s)
