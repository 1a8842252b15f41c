"""The user types and collations the moved columns need, read so they can be carried along.

A moved column whose type or collation lives in the monolith's own schema gets the service
schema's copy of it (issue 3): enums, domains, composite and range types (with their multirange
and the range's ``subtype_diff`` function when that is the monolith's too), and collations.
Like everything in :mod:`strangler.pg.schema.catalog`, definitions are read with the source
schema as the only ``search_path``, so names of objects in that schema come out unqualified
and resolve to the copies when the DDL runs with the target schema as the only ``search_path``.

Types elsewhere (another schema, an extension) are not created; they are listed as *foreign*,
so that a move to another instance can say the target must have them already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from strangler.errors import BadInput
from strangler.pg.schema.catalog_queries import COLLATIONS, TYPE, TYPE_FUNCTIONS

__all__ = ["CollationDef", "TypeDef", "TypeFunction", "read_collations", "read_types"]


@dataclass(frozen=True)
class TypeDef:
    name: str
    kind: str  # e (enum) d (domain) c (composite) r (range)
    # the type's OID and its array's on the source; a range adds its multirange and that's array
    oids: tuple[int, ...] = (0, 0)
    labels: tuple[str, ...] = ()
    base_sql: str | None = None  # a domain's base type, a range's subtype
    not_null: bool = False
    default: str | None = None
    collation: str | None = None  # a domain's or range's, where it differs from the base's
    checks: tuple[tuple[str, str, bool], ...] = ()  # (name, definition, validated)
    attributes: tuple[tuple[str, str], ...] = ()  # (name, type_sql)
    comment: str | None = None
    opclass: str | None = None  # a range's subtype operator class, unless the default
    # a range's subtype_diff: the function's name if it is the schema's own (carried along,
    # see Catalog.type_functions), else its name under the source search_path
    subtype_diff: str | None = None
    multirange: str | None = None  # a range's multirange type name


@dataclass(frozen=True)
class TypeFunction:
    """A function of the monolith's schema that a carried type names (a range's subtype_diff)."""

    name: str
    arguments: str
    result: str
    language: str
    body: str  # prosrc; empty for a SQL-standard body (RETURN … / BEGIN ATOMIC …)
    sql_body: str | None
    volatility: str  # i s v
    strict: bool
    parallel: str  # s (safe) r (restricted) u (unsafe)
    security_definer: bool


@dataclass(frozen=True)
class CollationDef:
    """A collation of the monolith's schema (CREATE COLLATION) that carried objects use."""

    name: str
    provider: str  # c (libc) | i (ICU) | b (builtin, PostgreSQL 17)
    deterministic: bool
    lc_collate: str | None  # libc
    lc_ctype: str | None
    locale: str | None  # ICU and builtin
    rules: str | None  # ICU tailoring rules (PostgreSQL 16)
    comment: str | None


def _deps(r: dict[str, Any]) -> set[int]:
    """The types a type is built from: element, base, attributes, subtype, a multirange's range."""
    out = {r["typelem"], r["typbasetype"], r["rngsubtype"], r["multirange_of"]}
    return {int(d) for d in out | {int(a[2]) for a in r["attrs"]} if d}


def read_types(
    cur: psycopg.Cursor[Any], schema: str, roots: set[int]
) -> tuple[list[TypeDef], list[TypeFunction], list[str]]:
    """The user types the columns need, in creation order; the functions they name; foreign ones.

    Walks arrays, domains, composites, ranges and multiranges down to built-in types.
    """
    rows: dict[int, dict[str, Any]] = {}
    todo = set(roots)
    while todo:
        cur.execute(TYPE, {"oids": list(todo)})
        todo = set()
        for r in cur.fetchall():
            rows[r["oid"]] = r
            todo |= {d for d in _deps(r) if d not in rows}
    wanted = {
        oid: r
        for oid, r in rows.items()
        if r["nspname"] == schema and r["kind"] in ("e", "d", "c", "r") and not r["from_extension"]
    }
    # Extensions' types are the extension check's to report (pg/schema/extensions.py).
    foreign = sorted(
        f"{r['nspname']}.{r['typname']}"
        for r in rows.values()
        if r["nspname"] not in ("pg_catalog", "information_schema")
        and r["category"] != "A"
        and r["nspname"] != schema
        and not r["from_extension"]
    )
    functions: set[int] = set()
    for r in wanted.values():
        _check_carriable(cur, r)
        if r["kind"] != "r":
            continue
        if r["subdiff_oid"] and r["subdiff_schema"] == schema:
            functions.add(int(r["subdiff_oid"]))
        elif r["subdiff_oid"] and r["subdiff_schema"] != "pg_catalog":
            foreign.append(f"{r['subdiff']}() (subtype_diff of {r['typname']})")
        if r["opclass"] and r["opclass_schema"] != "pg_catalog":
            foreign.append(f"{r['opclass']} (operator class of {r['typname']})")

    def deps_of(r: dict[str, Any]) -> set[int]:
        expanded = set()
        for d in _deps(r):
            expanded.add(d)
            elem = rows.get(d, {}).get("typelem")
            if elem:
                expanded.add(elem)
        return {d for d in expanded if d in wanted}

    ordered: list[TypeDef] = []
    placed: set[int] = set()
    while len(placed) < len(wanted):
        progress = False
        for oid, r in sorted(wanted.items(), key=lambda kv: kv[1]["typname"]):
            if oid in placed or not deps_of(r) <= placed:
                continue
            placed.add(oid)
            progress = True
            ordered.append(_typedef(r, schema))
        if not progress:  # pragma: no cover - PostgreSQL forbids cyclic type definitions
            raise BadInput("the moved tables' types depend on each other in a cycle")
    fns = [
        TypeFunction(
            r["proname"], r["arguments"], r["result"], r["lanname"], r["prosrc"], r["sql_body"],
            r["volatility"], r["proisstrict"], r["parallel"], r["prosecdef"],
        )
        for r in cur.execute(TYPE_FUNCTIONS, {"oids": sorted(functions)}).fetchall()
    ]  # fmt: skip
    return ordered, fns, sorted(foreign)


def _check_carriable(cur: psycopg.Cursor[Any], r: dict[str, Any]) -> None:
    if r["kind"] == "c":
        # a composite type of a table (relkind r) is the table itself, not a type to create
        kind = cur.execute("SELECT relkind FROM pg_class WHERE oid = %s", (r["typrelid"],))
        rk = kind.fetchone()
        if rk and rk["relkind"] != "c":
            raise BadInput(
                f"a moved column has the row type of table {r['typname']!r}; strangler cannot "
                "carry a table's row type as a column type"
            )
    if r["kind"] == "r" and r["canonical"]:
        raise BadInput(
            f"range type {r['typname']!r} has a canonical function; strangler cannot carry it "
            "(such a function is written in C against the type itself)",
            hint="create the range type in the service's schema yourself, or move a column of "
            "its subtype instead",
        )


def _typedef(r: dict[str, Any], schema: str) -> TypeDef:
    kind = r["kind"]
    oids: tuple[int, ...] = (int(r["oid"]), int(r["typarray"]))
    if kind == "r":
        oids += (int(r["multi_oid"]), int(r["multi_array"]))
    base = {"d": r["base_sql"], "r": r["subtype_sql"]}.get(kind)
    return TypeDef(
        name=r["typname"],
        kind=kind,
        oids=oids,
        labels=tuple(r["labels"]),
        base_sql=base,
        not_null=r["typnotnull"],
        default=r["def"],
        collation=r["range_coll"] if kind == "r" else r["coll"],
        checks=tuple((c[0], c[1], c[2] == "true") for c in r["checks"]),
        attributes=tuple((a[0], a[1]) for a in r["attrs"]),
        comment=r["comment"],
        opclass=r["opclass"],
        subtype_diff=(
            None
            if not r["subdiff_oid"]
            else r["subdiff_name"]
            if r["subdiff_schema"] == schema
            else r["subdiff"]
        ),
        multirange=r["multirange"],
    )


def read_collations(
    cur: psycopg.Cursor[Any], schema: str, oids: list[int], types: list[TypeDef]
) -> tuple[list[CollationDef], list[str]]:
    """The collations of ``schema`` that the tables ``oids`` and the carried ``types`` use;
    and, as foreign, those of other schemas (pg_catalog's are everywhere)."""
    type_oids = sorted({o for t in types for o in t.oids})
    out: list[CollationDef] = []
    foreign: list[str] = []
    for r in cur.execute(COLLATIONS, {"oids": oids, "types": type_oids}).fetchall():
        if r["from_extension"]:
            continue  # the extension check reports it
        if r["nspname"] != schema:
            foreign.append(f"{r['nspname']}.{r['collname']} (collation)")
            continue
        d = r["def"]
        out.append(
            CollationDef(
                name=r["collname"],
                provider=d["collprovider"],
                deterministic=d["collisdeterministic"],
                lc_collate=d.get("collcollate"),
                lc_ctype=d.get("collctype"),
                # colliculocale in PostgreSQL 15 and 16, colllocale from 17
                locale=d.get("colllocale", d.get("colliculocale")),
                rules=d.get("collicurules"),
                comment=r["comment"],
            )
        )
    return out, foreign
