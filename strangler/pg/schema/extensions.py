"""The extensions the moved tables need, and what the target has of them.

A column of type ``citext``, an index ``USING gin (name gin_trgm_ops)``, a default calling
``uuid_generate_v4()``: each is an object of an extension, found through ``pg_depend`` from the
moved tables' columns, indexes, constraints, defaults and triggers (and the types carried with
them) to an extension member. ``strangler plan`` lists them with where each lives on the target
or, when it is missing there, the exact ``CREATE EXTENSION`` to run; the copy creates them when
the spec allows it and the target role may, or refuses before the schema (and so before any
row) exists.

Where extension objects are referred to: the catalog is read with the source schema first on
``search_path`` and then every schema that holds an extension (:func:`extension_schemas`), so
an extension object comes out unqualified wherever it lives, even in the monolith's own schema;
the DDL runs with the target schema first and then the schemas where those extensions live
*on the target* (:attr:`ExtensionPlan.schema`), so each reference points to where the
extension lives there (see :mod:`strangler.pg.schema.catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["ExtensionNeed", "ExtensionPlan", "extension_schemas", "needed", "on_target"]


@dataclass(frozen=True)
class ExtensionNeed:
    """An extension the moved tables use on the monolith, and what of it they use."""

    name: str
    version: str
    schema: str  # where it lives on the monolith
    uses: tuple[str, ...]  # "column orders.name: type citext", …


@dataclass(frozen=True)
class ExtensionPlan:
    """One needed extension, seen from the target."""

    need: ExtensionNeed
    schema: str  # where it lives (or will live) on the target
    installed: str | None  # the target's version; None: missing
    available: bool  # the target server ships it (pg_available_extensions)
    may_create: bool  # the target role may run the CREATE EXTENSION
    create_sql: str  # the exact statement, for the plan and for an operator to run

    @property
    def missing(self) -> bool:
        return self.installed is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "extension": self.need.name,
            "monolith": f"{self.need.version} in schema {self.need.schema}",
            "target": (
                f"{self.installed} in schema {self.schema}"
                if self.installed
                else ("missing; run: " if self.available else "missing and not installable "
                      "(the server does not ship it); install its package, then: ")
                + self.create_sql
            ),
            "uses": list(self.need.uses),
        }  # fmt: skip


def extension_schemas(conn: psycopg.Connection[Any]) -> list[str]:
    """Every schema (but pg_catalog) holding an extension on ``conn``'s database."""
    rows = conn.execute(
        "SELECT DISTINCT n.nspname FROM pg_extension e JOIN pg_namespace n "
        "ON n.oid = e.extnamespace WHERE n.nspname <> 'pg_catalog' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


# Objects of the moved tables, what they depend on, and the extension that object belongs to
# (an array type through its element type).
_NEEDED = """
WITH objs(classid, objid) AS (
    SELECT 'pg_class'::regclass, unnest(%(oids)s::oid[])
    UNION SELECT 'pg_class'::regclass, indexrelid FROM pg_index WHERE indrelid = ANY(%(oids)s)
    UNION SELECT 'pg_constraint'::regclass, oid FROM pg_constraint WHERE conrelid = ANY(%(oids)s)
    UNION SELECT 'pg_attrdef'::regclass, oid FROM pg_attrdef WHERE adrelid = ANY(%(oids)s)
    UNION SELECT 'pg_trigger'::regclass, oid FROM pg_trigger WHERE tgrelid = ANY(%(oids)s)
    UNION SELECT 'pg_type'::regclass, unnest(%(types)s::oid[])
), refs AS (
    SELECT DISTINCT d.classid, d.objid, d.objsubid, d.refclassid,
           CASE WHEN d.refclassid = 'pg_type'::regclass THEN coalesce(
                (SELECT t.typelem FROM pg_type t WHERE t.oid = d.refobjid
                 AND t.typcategory = 'A' AND t.typelem <> 0), d.refobjid)
                ELSE d.refobjid END AS member
    FROM pg_depend d JOIN objs o ON o.classid = d.classid AND o.objid = d.objid
    WHERE d.deptype IN ('n', 'a')
)
SELECT e.extname, e.extversion, n.nspname,
       pg_describe_object(r.classid, r.objid, r.objsubid) || ': ' ||
       pg_describe_object(r.refclassid, r.member, 0) AS use
FROM refs r
JOIN pg_depend x ON x.classid = r.refclassid AND x.objid = r.member AND x.deptype = 'e'
     AND x.refclassid = 'pg_extension'::regclass
JOIN pg_extension e ON e.oid = x.refobjid
JOIN pg_namespace n ON n.oid = e.extnamespace
ORDER BY 1, 4
"""


def needed(
    conn: psycopg.Connection[Any], oids: Sequence[int], type_oids: Sequence[int]
) -> list[ExtensionNeed]:
    """The extensions the tables ``oids`` (and the carried types ``type_oids``) use."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    for name, version, schema, use in conn.execute(
        _NEEDED, {"oids": list(oids), "types": list(type_oids)}
    ).fetchall():
        found.setdefault(name, (version, schema, []))[2].append(use)
    return [ExtensionNeed(n, v, s, tuple(uses)) for n, (v, s, uses) in sorted(found.items())]


def on_target(
    conn: psycopg.Connection[Any], needs: Sequence[ExtensionNeed], service_schema: str
) -> list[ExtensionPlan]:
    """What the target has of each needed extension, and how to create a missing one there:
    in the schema of the same name as on the monolith when the target has it, else in
    ``public`` when it exists, else in the service's schema."""
    if not needs:
        return []
    have = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT e.extname, e.extversion, n.nspname FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace"
        ).fetchall()
    }
    schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    row = conn.execute(
        "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE') "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    superuser, may_create_in_db = (bool(row[0]), bool(row[1])) if row else (False, False)
    out = []
    for need in needs:
        avail = conn.execute(
            "SELECT v.trusted FROM pg_available_extensions a "
            "JOIN pg_available_extension_versions v ON v.name = a.name "
            "AND v.version = a.default_version WHERE a.name = %s",
            (need.name,),
        ).fetchone()
        if need.name in have:
            version, schema = have[need.name]
        else:
            version = None
            schema = (
                need.schema
                if need.schema in schemas
                else "public"
                if "public" in schemas
                else service_schema
            )
        create = sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
            sql.Identifier(need.name), sql.Identifier(schema)
        )
        out.append(
            ExtensionPlan(
                need=need,
                schema=schema,
                installed=version,
                available=avail is not None,
                may_create=avail is not None
                and (superuser or (bool(avail[0]) and may_create_in_db)),
                create_sql=create.as_string(conn) + ";",
            )
        )
    return out
