"""After the rows: keys, indexes, foreign keys, triggers, sequences, and the count check.

Each statement runs in its own transaction on a worker connection whose ``search_path`` is
the target schema alone (the definitions rely on it, see :mod:`strangler.pg.schema.catalog`), and is
journaled when it commits. A re-run skips journaled statements and, for the few that could
have committed just before a crash, asks the catalog whether their object already exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.connect import connect
from strangler.pg.schema.catalog import Catalog
from strangler.pg.schema.ddl import Statement, search_path

__all__ = ["count_rows", "existing_keys", "run_statements", "set_sequences"]

_INTEGERS = frozenset({20, 21, 23, 1700})  # int8, int2, int4, numeric


def existing_keys(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    """Statement keys (see :mod:`strangler.pg.schema.ddl`) whose objects exist in ``schema``."""
    out: set[str] = set()
    rows = conn.execute(
        """SELECT c.relname, con.conname, con.contype::text, con.convalidated
           FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
           WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s)""",
        (schema,),
    ).fetchall()
    for table, name, kind, valid in rows:
        prefix = {"f": "fk", "c": "check"}.get(kind, "constraint")
        out.add(f"{prefix}:{table}:{name}")
        if valid:
            out.add(f"validate:{table}:{name}")
    for table, name in conn.execute(
        """SELECT t.relname, i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid
           WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s)""",
        (schema,),
    ).fetchall():
        out.add(f"index:{table}:{name}")
    for table, name in conn.execute(
        """SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s)
             AND NOT t.tgisinternal""",
        (schema,),
    ).fetchall():
        out.add(f"trigger:{table}:{name}")
    return out


def run_statements(
    dsn: str,
    schema: str,
    statements: list[Statement],
    *,
    jobs: int,
    skip: set[str],
    on_done: Callable[[Statement], None],
    path: Sequence[str] = (),
) -> int:
    """Run ``statements`` not in ``skip`` with ``jobs`` connections; returns how many ran."""
    todo = [s for s in statements if s.key not in skip]
    if not todo:
        return 0
    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def run(stmt: Statement) -> Statement:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = connect(dsn, role="service target")
            conn.execute(search_path(schema, local=False, then=path))
            local.conn = conn
            with lock:
                opened.append(conn)
        conn.execute(stmt.query)
        return stmt

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as ex:
            futures = [ex.submit(run, s) for s in todo]
            try:
                for fut in futures:
                    on_done(fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        for conn in opened:
            conn.close()
    return len(todo)


def set_sequences(
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    catalog: Catalog,
    target_schema: str,
) -> dict[str, int | None]:
    """Set every carried sequence past both the copied rows and the monolith's sequence.

    ``setval(seq, max(id))`` (the runbook's step 5) fails on an empty table; here an empty
    table whose sequence was never used keeps its start value, uncalled.
    """
    out: dict[str, int | None] = {}
    for seq in catalog.sequences:
        row = source.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(catalog.schema, seq.name)
            )
        ).fetchone()
        candidates = [int(row[0])] if row and row[1] else []
        # Every moved column that draws from it: its owner, and defaults that name it
        # without owning it (a sequence several tables share).
        users = set(seq.used_by)
        if seq.owner_table and seq.owner_column:
            users.add((seq.owner_table, seq.owner_column))
        agg = "max" if seq.increment > 0 else "min"
        numeric = {
            (t.name, c.name) for t in catalog.tables for c in t.columns if c.type_oid in _INTEGERS
        }
        for table, column in sorted(users & numeric):
            top = target.execute(
                sql.SQL("SELECT {}({})::numeric FROM {}").format(
                    sql.SQL(agg),
                    sql.Identifier(column),
                    sql.Identifier(target_schema, table),
                )
            ).fetchone()
            if top and top[0] is not None:
                candidates.append(int(top[0]))
        name = sql.Identifier(target_schema, seq.name).as_string(target)
        if candidates:
            value = max(candidates) if seq.increment > 0 else min(candidates)
            target.execute("SELECT setval(%s::regclass, %s, true)", (name, value))
            out[seq.name] = value
        else:
            target.execute("SELECT setval(%s::regclass, %s, false)", (name, seq.start))
            out[seq.name] = None
    return out


def count_rows(
    conn: psycopg.Connection[Any],
    schema: str,
    tables: list[str],
    where: dict[str, Any] | None = None,
) -> dict[str, int]:
    """``count(*)`` per table (``ONLY``: not its inheritance children), in whatever
    transaction ``conn`` is in."""
    out = {}
    for table in tables:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}{}").format(
                sql.Identifier(schema, table), (where or {}).get(table, sql.SQL(""))
            )
        ).fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def count_rows_apart(dsn: str, schema: str, tables: list[str], *, jobs: int) -> dict[str, int]:
    """``count(*)`` per table, ``jobs`` tables at a time, each on its own connection."""

    def one(table: str) -> tuple[str, int]:
        with connect(dsn, role="service target") as conn:
            return table, count_rows(conn, schema, [table])[table]

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tables)))) as ex:
        return dict(ex.map(one, tables))
