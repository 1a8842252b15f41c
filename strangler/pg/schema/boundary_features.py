"""Boundary findings for the schema features that tie a moved table to more than its columns.

Each is a line of ``strangler plan`` (issue 12), found before anything changes:

- **table inheritance** (``INHERITS``): a tree moves whole (recreated with ``INHERITS``, each
  table copying its own rows) or not at all: a parent or child left behind cannot be carried;
- **row-level security**: policies are carried (after the load, like triggers); a monolith
  role that the policies would filter cannot copy (strangler's sessions run with
  ``row_security = off``, so such a read fails instead of losing rows silently);
- **large objects** a moved ``oid`` (or ``lo``) column refers to: shared in place on the same
  instance; not copied to another instance, so there they cannot be carried;
- **publications, subscriptions and event triggers** that involve the moved tables: reported,
  left alone (their subscribers and their writers keep meeting the old tables).
"""

from __future__ import annotations

from typing import Any

import psycopg

from strangler.pg.schema.boundary_types import Reference
from strangler.pg.schema.catalog import Catalog
from strangler.pg.schema.code import body_references, known_objects, read_bodies

__all__ = ["feature_findings"]

_RLS_ROLE = """
SELECT c.relname, c.relforcerowsecurity,
       r.rolsuper OR r.rolbypassrls AS bypass,
       pg_has_role(current_user, c.relowner, 'USAGE') AS owner, current_user::text
FROM pg_class c, pg_roles r
WHERE c.oid = ANY(%(oids)s) AND c.relrowsecurity AND r.rolname = current_user
ORDER BY 1
"""

_OID_COLUMNS = """
SELECT c.relname, a.attname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r'
  AND (a.atttypid = 'oid'::regtype OR t.typbasetype = 'oid'::regtype)
ORDER BY 1, 2
"""

_PUBLICATIONS = """
SELECT p.pubname, c.relname, 'publishes it' FROM pg_publication_rel pr
JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = ANY(%(oids)s) AND p.pubname NOT LIKE 'strangler\\_%%'
UNION ALL
SELECT p.pubname, '(every table)', 'publishes all tables' FROM pg_publication p
WHERE p.puballtables AND p.pubname NOT LIKE 'strangler\\_%%'
ORDER BY 1, 2
"""

_SCHEMA_PUBLICATIONS = """
SELECT p.pubname FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid
WHERE pn.pnnspid = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
  AND p.pubname NOT LIKE 'strangler\\_%%'
ORDER BY 1
"""

_SUBSCRIPTIONS = """
SELECT s.subname, c.relname FROM pg_subscription_rel sr
JOIN pg_subscription s ON s.oid = sr.srsubid JOIN pg_class c ON c.oid = sr.srrelid
WHERE sr.srrelid = ANY(%(oids)s)
ORDER BY 1, 2
"""

_EVENT_TRIGGERS = """
SELECT e.evtname, e.evtevent, e.evtfoid FROM pg_event_trigger e
WHERE e.evtenabled <> 'D' ORDER BY 1
"""


def feature_findings(
    conn: psycopg.Connection[Any], catalog: Catalog, *, same_instance: bool
) -> list[Reference]:
    p = {"oids": [t.oid for t in catalog.tables], "schema": catalog.schema}
    return (
        _inheritance(catalog)
        + _row_security(conn, catalog, p)
        + _large_objects(conn, catalog, same_instance)
        + _replication(conn, catalog, p, same_instance)
    )


def _inheritance(catalog: Catalog) -> list[Reference]:
    out = []
    moved = set(catalog.names)
    for t in catalog.tables:
        if t.foreign_parent:
            out.append(
                Reference("inheritance", t.name, t.foreign_parent,
                          f"{t.name} inherits from {t.foreign_parent}, a table of another "
                          "schema, which strangler does not carry; detach it first "
                          f"(ALTER TABLE {t.name} NO INHERIT …)", "cannot carry")
            )  # fmt: skip
            continue
        staying = [p for p in t.inherits if p not in moved]
        left = [c for c in t.children if c not in moved]  # another schema's: "schema.name"
        for parent in staying:
            out.append(
                Reference("inheritance", t.name, f"{catalog.schema}.{parent} (stays)",
                          f"{t.name} inherits from {parent}: an inheritance tree moves whole; "
                          f"list {parent} too, or detach it first (ALTER TABLE {t.name} NO "
                          f"INHERIT {parent})", "cannot carry")
            )  # fmt: skip
        for child in left:
            out.append(
                Reference("inheritance", t.name,
                          f"{child if '.' in child else catalog.schema + '.' + child} (stays)",
                          f"{child} inherits from {t.name}, so its rows are {t.name}'s too: "
                          "move it too, or detach it first", "cannot carry")
            )  # fmt: skip
        if t.inherits and not staying:
            out.append(
                Reference("inheritance", t.name, ", ".join(t.inherits),
                          f"recreated with INHERITS ({', '.join(t.inherits)}); each table of "
                          "the tree copies its own rows", "carried")
            )  # fmt: skip
    return out


def _row_security(
    conn: psycopg.Connection[Any], catalog: Catalog, p: dict[str, Any]
) -> list[Reference]:
    out = []
    for table, force, bypass, owner, role in conn.execute(_RLS_ROLE, p).fetchall():
        t = catalog.table(table)
        if not bypass and (force or not owner):
            why = "FORCE ROW LEVEL SECURITY applies to the owner too" if owner else "not its owner"
            out.append(
                Reference("row-level security", table, f"role {role}",
                          f"the monolith role {role} is subject to its policies ({why}): "
                          "the copy would see only the rows they let it see; connect as a "
                          "role with BYPASSRLS (or a superuser) for the monolith", "cannot carry")
            )  # fmt: skip
            continue
        out.append(
            Reference("row-level security", table, f"{len(t.policies)} polic(ies)",
                      "ENABLE" + (" and FORCE" if t.force_rls else "") + " ROW LEVEL SECURITY "
                      "and the policies are recreated after the load; strangler's own sessions "
                      "run with row_security = off, so none of its reads is filtered",
                      "carried")
        )  # fmt: skip
    return out


def _large_objects(
    conn: psycopg.Connection[Any], catalog: Catalog, same_instance: bool
) -> list[Reference]:
    from psycopg import sql

    out = []
    for table, column in conn.execute(
        _OID_COLUMNS, {"oids": [t.oid for t in catalog.tables]}
    ).fetchall():
        row = conn.execute(
            sql.SQL(
                "SELECT count(DISTINCT x.{c}) FROM ONLY {t} x "
                "JOIN pg_largeobject_metadata m ON m.oid = x.{c}"
            ).format(c=sql.Identifier(column), t=sql.Identifier(catalog.schema, table))
        ).fetchone()
        n = int(row[0]) if row else 0
        if not n:
            continue
        if same_instance:
            out.append(
                Reference("large objects", f"{table}({column})", f"{n:,} large object(s)",
                          "shared in place: the service's rows point at the same large objects "
                          "of this database, which either side can change or unlink",
                          "left alone")
            )  # fmt: skip
        else:
            out.append(
                Reference("large objects", f"{table}({column})", f"{n:,} large object(s)",
                          "strangler does not copy large objects: on the target these OIDs "
                          "would point at nothing; move their data into a bytea column first, "
                          "or copy the objects yourself keeping their OIDs (lo_from_bytea) "
                          "before the copy", "cannot carry")
            )  # fmt: skip
    return out


def _replication(
    conn: psycopg.Connection[Any], catalog: Catalog, p: dict[str, Any], same_instance: bool
) -> list[Reference]:
    out = []
    for pub, table, what in conn.execute(_PUBLICATIONS, p).fetchall():
        out.append(
            Reference("publication", f"publication {pub}", f"{table} (moved)" if what ==
                      "publishes it" else table,
                      f"{what}: its subscribers keep receiving the old tables' changes, so "
                      "they miss what the service writes after the write cutover", "left alone")
        )  # fmt: skip
    if conn.info.server_version >= 150000:
        for (pub,) in conn.execute(_SCHEMA_PUBLICATIONS, p).fetchall():
            out.append(
                Reference("publication", f"publication {pub}", f"schema {catalog.schema}",
                          "publishes the monolith's schema: its subscribers miss what the "
                          "service writes after the write cutover", "left alone")
            )  # fmt: skip
    for sub, table in conn.execute(_SUBSCRIPTIONS, p).fetchall():
        out.append(
            Reference("subscription", f"subscription {sub}", f"{table} (moved)",
                      "replicates into the old table from elsewhere: after the write cutover "
                      "those writes reach the monolith's table, not the service's", "left alone")
        )  # fmt: skip
    events = conn.execute(_EVENT_TRIGGERS).fetchall()
    if events:
        known = known_objects(conn)
        bodies = {b.oid: b for b in read_bodies(conn, [e[2] for e in events])}
        moved = set(catalog.names)
        for name, event, foid in events:
            fn = bodies.get(foid)
            names = sorted(
                {r.name for r in body_references(conn, fn, known, catalog.schema)
                 if r.schema == catalog.schema and r.name in moved}
            ) if fn else []  # fmt: skip
            breaks = f"fires on {event}"
            if same_instance:
                breaks += ", also on the DDL strangler runs to create the service schema"
            if names:
                breaks += f"; its function names {', '.join(names)}"
            out.append(
                Reference("event trigger", f"event trigger {name}",
                          fn.label if fn else "its function", breaks, "left alone")
            )  # fmt: skip
    return out
