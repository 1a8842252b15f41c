"""Every reference that crosses the service boundary, and what it will break.

Moving tables out of a monolith cuts every thread that ties them to what stays: foreign keys
in both directions, views, functions and triggers that read or write the moved tables, and
expressions of the moved tables that call the monolith's functions, and what the code the
service will run reads and writes (:mod:`strangler.pg.schema.boundary_code`). ``strangler plan``
shows them all; a reference strangler cannot carry, or code that would break on the service,
stops ``copy`` before anything changes.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from strangler.pg.own import OWN_SCHEMAS
from strangler.pg.schema.boundary_code import ExpressionCall, code_findings
from strangler.pg.schema.boundary_features import feature_findings
from strangler.pg.schema.boundary_types import Boundary, Reference
from strangler.pg.schema.catalog import Catalog

__all__ = ["Boundary", "Reference", "analyze"]


_FK_IN = """
SELECT n.nspname, c.relname, con.conname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) k(n)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n) AS cols,
       r.relname AS ref_table
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = con.confrelid
WHERE con.contype = 'f' AND con.confrelid = ANY(%(oids)s) AND NOT con.conrelid = ANY(%(oids)s)
  AND con.conparentid = 0
ORDER BY 1, 2, 3
"""

_VIEWS = """
SELECT DISTINCT n.nspname, v.relname, v.relkind::text, t.relname AS moved
FROM pg_depend d
JOIN pg_rewrite rw ON rw.oid = d.objid
JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = ANY(%(oids)s) AND NOT v.oid = ANY(%(oids)s)
ORDER BY 1, 2, 4
"""

_FUNCTIONS = """
SELECT p.oid, n.nspname, p.proname, p.prosrc, p.prorettype = 'trigger'::regtype AS is_trigger
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND NOT n.nspname = ANY(%(own)s)  -- strangler's own gate and guard functions
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                  AND e.objid = p.oid AND e.deptype = 'e')
ORDER BY 2, 3
"""

_TRIGGERS_USING = """
SELECT n.nspname, c.relname, t.tgname, t.tgfoid
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgfoid = ANY(%(fns)s) AND NOT t.tgrelid = ANY(%(oids)s)
ORDER BY 1, 2, 3
"""

# Functions the moved tables' own defaults, CHECKs and indexes call.
_EXPRESSION_CALLS = """
SELECT DISTINCT t.relname, n.nspname, p.proname,
       CASE d.classid WHEN 'pg_attrdef'::regclass THEN (
                          SELECT CASE WHEN a.attgenerated <> '' THEN 'generated column'
                                      ELSE 'default' END
                          FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid
                               AND a.attnum = ad.adnum WHERE ad.oid = d.objid)
                      WHEN 'pg_constraint'::regclass THEN 'constraint' ELSE 'index' END AS what,
       p.oid
FROM pg_depend d
JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_class t ON t.oid = CASE d.classid
    WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
    WHEN 'pg_constraint'::regclass THEN (SELECT conrelid FROM pg_constraint WHERE oid = d.objid)
    ELSE (SELECT indrelid FROM pg_index WHERE indexrelid = d.objid) END
WHERE d.refclassid = 'pg_proc'::regclass AND t.oid = ANY(%(oids)s)
  AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                  AND e.objid = p.oid AND e.deptype = 'e')
  -- a carried range type's constructors come along with it
  AND NOT EXISTS (SELECT 1 FROM pg_depend r WHERE r.classid = 'pg_proc'::regclass
                  AND r.objid = p.oid AND r.refclassid = 'pg_type'::regclass
                  AND r.deptype = 'i' AND r.refobjid = ANY(%(carried)s))
ORDER BY 1, 3
"""

# Sequences the moved tables draw from (defaults, ownership), and who else draws from them:
# a table that stays behind, or any table of another schema.
_SEQUENCE_USERS = """
WITH mine AS (
    SELECT d.refobjid AS seq FROM pg_attrdef ad
    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
         AND d.refclassid = 'pg_class'::regclass
    WHERE ad.adrelid = ANY(%(oids)s)
    UNION
    SELECT d.objid FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY(%(oids)s) AND d.deptype IN ('a', 'i')
    UNION
    SELECT c.oid FROM unnest(%(called_ns)s::text[], %(called)s::text[]) u(ns, name)
    JOIN pg_namespace n ON n.nspname = u.ns JOIN pg_class c ON c.relnamespace = n.oid
         AND c.relname = u.name
)
SELECT sn.nspname, s.relname,
       ARRAY(SELECT DISTINCT format('%%s(%%s)', t.relname, a.attname)
             FROM pg_attrdef ad
             JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid
             JOIN pg_class t ON t.oid = ad.adrelid
             JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
             WHERE ad.adrelid = ANY(%(oids)s) ORDER BY 1) AS users,
       ARRAY(SELECT DISTINCT format('%%s.%%s(%%s)', tn.nspname, t.relname, a.attname)
             FROM pg_attrdef ad
             JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid
             JOIN pg_class t ON t.oid = ad.adrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
             WHERE NOT ad.adrelid = ANY(%(oids)s) ORDER BY 1) AS others
FROM mine JOIN pg_class s ON s.oid = mine.seq AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
ORDER BY 1, 2
"""

_PUBLIC_READABLE = """
SELECT c.relname FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND a.grantee = 0 AND a.privilege_type = 'SELECT' AND NOT c.oid = ANY(%(oids)s)
ORDER BY 1
"""


def analyze(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    *,
    leaving: str,
    same_instance: bool,
    shared_sequences: str = "refuse",
    reaches_behind: str = "refuse",
) -> Boundary:
    """The boundary of ``catalog``'s tables in the monolith ``conn`` points at.

    ``leaving``: the spec's ``foreign_keys.leaving`` (``drop`` or ``keep``);
    ``shared_sequences``: the spec's ``sequences.shared`` (``refuse`` or ``copy``);
    ``reaches_behind``: the spec's ``code.reaches_behind`` (``refuse`` or ``accept``)."""
    out = Boundary()
    schema = catalog.schema
    oids = [t.oid for t in catalog.tables]
    moved = set(catalog.names)
    p = {"oids": oids, "schema": schema}
    keep = leaving == "keep"
    for table in catalog.tables:
        for fk in table.foreign_keys:
            if fk.inherited or (fk.ref_schema == schema and fk.ref_table in moved):
                continue
            cols = ", ".join(fk.columns)
            if keep:
                breaks = f"the service schema depends on {fk.ref_schema}.{fk.ref_table}"
            else:
                breaks = f"nothing checks {cols} against {fk.ref_table}; the service must"
            out.references.append(
                Reference(
                    "foreign key out",
                    f"{table.name}({cols})",
                    f"{fk.ref_schema}.{fk.ref_table}({', '.join(fk.ref_columns)})",
                    breaks,
                    "kept" if keep else "dropped",
                )
            )
    for nsp, rel, con, cols, ref in conn.execute(_FK_IN, p).fetchall():
        out.references.append(
            Reference(
                "foreign key in",
                f"{nsp}.{rel}({', '.join(cols)}) [{con}]",
                f"{ref} (moved)",
                f"checks the old {ref}: rows made by the service are unknown to it; "
                f"blocks dropping {ref}",
                "left alone",
            )
        )
    for nsp, rel, kind, table in conn.execute(_VIEWS, p).fetchall():
        what = "materialized view" if kind == "m" else "view"
        out.references.append(
            Reference(
                what,
                f"{nsp}.{rel}",
                f"{table} (moved)",
                f"reads the old {table}: stale after the write cutover, broken at decommission",
                "left alone",
            )
        )
    carried_triggers = {
        (trg.function_schema, trg.function) for t in catalog.tables for trg in t.triggers
    }
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(moved)) + r")\b")
    touching: dict[int, tuple[str, str, list[str]]] = {}
    own = {"own": list(OWN_SCHEMAS)}
    for oid, nsp, name, src, _is_trigger in conn.execute(_FUNCTIONS, own).fetchall():
        found = sorted(set(pattern.findall(src or "")))
        if (nsp, name) in carried_triggers:
            continue  # the moved tables' own triggers: their bodies are read below
        if found:
            touching[oid] = (nsp, name, found)
            out.references.append(
                Reference(
                    "function",
                    f"{nsp}.{name}()",
                    ", ".join(found),
                    "uses the old tables (its body names them): stale after the write cutover",
                    "left alone",
                )
            )
    if touching:
        for nsp, rel, tg, foid in conn.execute(
            _TRIGGERS_USING, {**p, "fns": list(touching)}
        ).fetchall():
            fn = touching[foid]
            out.references.append(
                Reference(
                    "trigger",
                    f"{nsp}.{rel} [{tg}]",
                    ", ".join(fn[2]),
                    f"runs {fn[0]}.{fn[1]}(): its writes to old tables never reach the service",
                    "left alone",
                )
            )
    carried = {**p, "carried": sorted(catalog.carried_type_oids)}
    type_functions = {f.name for f in catalog.type_functions}  # a range's subtype_diff
    in_place: list[ExpressionCall] = []
    for table, nsp, fn, what, fn_oid in conn.execute(_EXPRESSION_CALLS, carried).fetchall():
        if nsp == schema and fn in type_functions:
            continue
        if nsp != schema and same_instance:
            in_place.append((table, what, fn_oid))  # runs where it is: read what it reaches
        if nsp == schema or not same_instance:
            out.references.append(
                Reference(
                    "expression",
                    f"{table} {what}",
                    f"{nsp}.{fn}()",
                    f"the {what} calls a monolith function strangler does not move",
                    "cannot carry",
                )
            )
    out.references += code_findings(
        conn,
        catalog,
        same_instance=same_instance,
        accept=reaches_behind == "accept",
        expression_calls=in_place,
    )
    out.references += feature_findings(conn, catalog, same_instance=same_instance)
    out.references += _sequences(conn, catalog, p, shared_sequences)
    if catalog.foreign_types and not same_instance:
        out.warnings.append(
            "the target must already have these types: " + ", ".join(catalog.foreign_types)
        )
    readable = [r[0] for r in conn.execute(_PUBLIC_READABLE, p).fetchall()]
    if readable:
        out.warnings.append(
            "PUBLIC may read these monolith tables, so the service role can too "
            f"(revoke PUBLIC's read access for least privilege): {', '.join(readable)}"
        )
    return out


def _sequences(
    conn: psycopg.Connection[Any], catalog: Catalog, p: dict[str, Any], policy: str
) -> list[Reference]:
    """Sequences that tie the moved tables to what stays: one another table draws from too,
    and one that lives in another schema (strangler carries only the source schema's)."""
    called = {
        "called_ns": [c[0] for c in catalog.called_sequences],
        "called": [c[1] for c in catalog.called_sequences],
    }
    out = []
    for nsp, seq, used, others in conn.execute(_SEQUENCE_USERS, {**p, **called}).fetchall():
        users = ", ".join(used) or "a carried trigger function"
        if nsp != catalog.schema:
            out.append(
                Reference(
                    "sequence",
                    f"{nsp}.{seq}",
                    users,
                    f"lives in schema {nsp}, which strangler does not carry: the service "
                    "would keep drawing its ids from the monolith; fix: move the sequence "
                    f"into {catalog.schema} (ALTER SEQUENCE … SET SCHEMA) or give the column "
                    "its own",
                    "cannot carry",
                )
            )
        elif others:
            copy = policy == "copy"
            out.append(
                Reference(
                    "sequence",
                    f"{nsp}.{seq}",
                    ", ".join(others) + " (stays)",
                    "shared with tables that stay: "
                    + (
                        "the service gets its own copy, set past the monolith's value; from "
                        "the cutover on each side draws from its own copy, so a value can "
                        "appear on both sides (still unique within each table)"
                        if copy
                        else "say in the spec what happens to it: sequences: {shared: copy} "
                        "gives the service its own copy (values then unique per side only), "
                        "or move those tables too"
                    ),
                    "copied" if copy else "cannot carry",
                )
            )
    return out
