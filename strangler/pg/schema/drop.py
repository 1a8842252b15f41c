"""Dropping the service schema, and the proof that nothing wrote to it since the copy.

"Nothing wrote" is proven, not assumed (``strangler rollback SERVICE --schema``,
:mod:`strangler.steps.rollback_schema`). At the end of a copy strangler stores a watermark:
the target's transaction id after its last write, and the row count of every table. The
rollback drops the schema only if every table still has exactly that many rows and no row
version is newer than the watermark (``age(xmin) < age(watermark)``: inserts and updates make
new row versions; deletes change the count). A schema that was created but never copied into
must still be empty.

Rows a copy placed are strangler's even when the copy never finished (it crashed, or failed
after loading): the copy records each chunk's target transaction id before that transaction
writes (:mod:`strangler.pg.copy.rows`), and a row whose ``xmin`` is one of them was written by
the copy. So after a failed copy, whose hint says to roll back, the rollback works; a row any
other transaction wrote (or rewrote) still refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

__all__ = ["drop", "drop_statements", "schema_exists", "writes_since_copy"]


def writes_since_copy(
    conn: Any,
    schema: str,
    xid: str | None,
    counts: Mapping[str, int],
    copy_xacts: Sequence[str] = (),
) -> list[str]:
    """Tables of ``schema`` that changed since the copy's watermark (the target's transaction
    id ``xid`` after its last write, and each table's ``counts``).

    ``copy_xacts``: the target transactions the copy wrote its chunks in; a row written by
    any other is a change. Without them and without ``xid`` (no copy was made, or a journal
    from before they were recorded), any row is a change."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
        "AND c.relkind = 'r' ORDER BY 1",
        (schema,),
    ).fetchall()
    changed = []
    mine = sorted({int(x) % (1 << 32) for x in copy_xacts})
    for (table,) in rows:
        name = sql.Identifier(schema, table)
        if mine:
            count, foreign = conn.execute(
                sql.SQL(
                    "SELECT count(*), count(*) FILTER (WHERE NOT xmin::text::bigint = ANY(%s)) "
                    "FROM ONLY {}"
                ).format(name),
                (mine,),
            ).fetchone()
            if foreign:
                changed.append(
                    f"{table} has {foreign:,} row(s) written after the copy"
                    if xid is not None
                    else f"{table} has {foreign:,} row(s) that strangler's copy did not write"
                )
            elif xid is not None and table in counts and count != counts[table]:
                changed.append(f"{table} has {count:,} rows, the copy left {counts[table]:,}")
            continue
        if xid is None:
            found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name))
            if found.fetchone()[0]:
                changed.append(f"{table} holds rows, and no copy put them there")
            continue
        count, newer = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE age(xmin) < age(%s::text::xid)) "
                "FROM ONLY {}"
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


def schema_exists(conn: Any, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def drop(conn: Any, statements: list[sql.Composed]) -> None:
    """Run ``statements`` in one transaction."""
    with conn.transaction():
        for s in statements:
            conn.execute(s)
