"""The compatibility views of a move (``strategy: move``) at the end of the migration: watch
what still writes through them, then retire them, then (a later run) drop them.

* **Write guard**: the monolith writes through the views into the very tables the service
  writes, so "the old tables are no longer written" becomes "no role other than the
  service's writes the service's tables": a statement-level trigger on each moved table
  records, in ``strangler_guard.old_table_writes``, every INSERT, UPDATE, DELETE or TRUNCATE
  whose session role is not the service's. The service's own writes pass unrecorded.
  (Write counters, which the copy strategy also compares, count the service's writes too,
  so they prove nothing here.)
* **Dependents**: views over the compatibility views would break when they go; the
  monolith's views and foreign keys that reach the moved tables directly (bound by OID, they
  followed the move) are the monolith still using the service's data.
* **Retire**: ``ALTER VIEW … SET SCHEMA retired_<service>``: nothing reaches them under the
  old names, and they can be moved back. The serial sequences that stayed in the monolith's
  schema for its code join the service's schema and their columns again.
* **Drop**: the retired views, after ``drop_old_tables_after``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.copy.retire import GUARD_SCHEMA, add_guard_triggers, ensure_write_log
from strangler.pg.schema.move import VIEW_MARK, KeptSequence

__all__ = [
    "GUARD_FUNCTION",
    "compat_views",
    "dependents",
    "drop_views",
    "install_guard",
    "retire_views",
]

GUARD_FUNCTION = "record_write_unless"

_GUARD_FN = """
CREATE OR REPLACE FUNCTION {schema}.record_write_unless() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    -- TG_ARGV[0]: the service's role, whose writes are the new path's, not the old one's
    IF session_user::text <> TG_ARGV[0] THEN
        INSERT INTO {schema}.old_table_writes (table_schema, table_name, operation, by_role)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, session_user);
    END IF;
    RETURN NULL;
END
$fn$;
"""


def install_guard(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str], service_role: str
) -> None:
    """Record writes to ``schema``'s ``tables`` by any role but ``service_role`` (idempotent)."""
    with conn.transaction():
        ensure_write_log(conn)
        conn.execute(sql.SQL(_GUARD_FN).format(schema=sql.Identifier(GUARD_SCHEMA)))
        add_guard_triggers(conn, schema, tables, GUARD_FUNCTION, [service_role])


def compat_views(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """Which of ``tables`` are, in ``schema``, views a move made (their comment says so)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = to_regnamespace(%s) "
        "AND c.relkind = 'v' AND c.relname = ANY(%s) "
        "AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), %s)",
        (schema, list(tables), VIEW_MARK),
    ).fetchall()
    found = {r[0] for r in rows}
    return [t for t in tables if t in found]


_DEPENDENTS = """
WITH views AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(%(source)s) AND c.relname = ANY(%(tables)s)
      AND c.relkind = 'v'
), moved AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(%(target)s) AND c.relname = ANY(%(tables)s)
)
SELECT DISTINCT format('%%I.%%I (view) reads %%s', vn.nspname, v.relname,
       CASE WHEN o.oid IN (SELECT oid FROM views)
            THEN format('the compatibility view %%I', o.relname)
            ELSE format('%%I.%%I directly', ton.nspname, o.relname) END)
FROM pg_depend d
JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_class o ON o.oid = d.refobjid
JOIN pg_namespace ton ON ton.oid = o.relnamespace
WHERE (d.refobjid IN (SELECT oid FROM views) OR d.refobjid IN (SELECT oid FROM moved))
  AND v.oid NOT IN (SELECT oid FROM views) AND v.oid NOT IN (SELECT oid FROM moved)
UNION
SELECT format('%%I.%%I (foreign key %%I) references %%I.%%I', fn.nspname, f.relname,
              con.conname, %(target)s::text, o.relname)
FROM pg_constraint con
JOIN pg_class f ON f.oid = con.conrelid
JOIN pg_namespace fn ON fn.oid = f.relnamespace
JOIN pg_class o ON o.oid = con.confrelid
WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM moved)
  AND con.conrelid NOT IN (SELECT oid FROM moved) AND con.conparentid = 0
ORDER BY 1
"""


def dependents(
    conn: psycopg.Connection[Any], source: str, target: str, tables: Sequence[str]
) -> list[str]:
    """What the monolith still has on the moved tables: views over the compatibility views
    (they break when the views go), and views and foreign keys bound to the tables."""
    rows = conn.execute(
        _DEPENDENTS, {"source": source, "target": target, "tables": list(tables)}
    ).fetchall()
    return [r[0] for r in rows]


def retire_views(
    conn: psycopg.Connection[Any],
    source: str,
    target: str,
    tables: Sequence[str],
    kept: Sequence[KeptSequence],
    retired: str,
) -> list[str]:
    """Move the compatibility views to ``retired`` and the kept sequences home to ``target``
    (owned by their columns again), in one transaction. Returns the views retired."""
    with conn.transaction():
        views = compat_views(conn, source, tables)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(retired)))
        for view in views:
            conn.execute(
                sql.SQL("ALTER VIEW {} SET SCHEMA {}").format(
                    sql.Identifier(source, view), sql.Identifier(retired)
                )
            )
        for q in kept:
            here = conn.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", (source, q.name)
            ).fetchone()
            if not here or here[0] is None:
                continue  # already home (a retire resumed after a crash)
            conn.execute(
                sql.SQL("ALTER SEQUENCE {} SET SCHEMA {}").format(
                    sql.Identifier(source, q.name), sql.Identifier(target)
                )
            )
            conn.execute(
                sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                    sql.Identifier(target, q.name), sql.Identifier(target, q.table, q.column)
                )
            )
    return views


def drop_views(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """Drop the retired compatibility views (no CASCADE), then ``schema`` when it is empty."""
    with conn.transaction():
        views = compat_views(conn, schema, tables)
        if views:
            conn.execute(
                sql.SQL("DROP VIEW {}").format(
                    sql.SQL(", ").join(sql.Identifier(schema, v) for v in views)
                )
            )
        left = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(%s)", (schema,)
        ).fetchone()
        if left and left[0] == 0:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(schema)))
    return views
