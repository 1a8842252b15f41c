"""DDL for what the moved columns' types need in the service's schema: collations, then types.

Collations come first (domains, ranges and columns use them); each range type's
``subtype_diff`` function, when the monolith's schema holds it, is created just before the
range. Deparsed texts (base types, defaults, checks, function bodies) are inserted as
:class:`psycopg.sql.SQL` for the reason :mod:`strangler.pg.schema.ddl` gives; names are identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from strangler.pg.schema.catalog import Catalog, CollationDef, TypeDef, TypeFunction
from strangler.pg.schema.statement import Query, Statement

__all__ = ["collate", "type_statements"]

_VOLATILITY = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}
_PARALLEL = {"s": "PARALLEL SAFE", "r": "PARALLEL RESTRICTED", "u": "PARALLEL UNSAFE"}


def collate(coll: str | None) -> sql.Composable:
    """`` COLLATE name`` for a collation read as text under the source search_path."""
    return sql.SQL("") if coll is None else sql.SQL(" COLLATE " + coll)


def type_statements(t: str, catalog: Catalog) -> list[Statement]:
    """Collations, then types (each range after its subtype_diff function), with comments."""
    out = [s for c in catalog.collations for s in _collation(t, c)]
    carried = {f.name: f for f in catalog.type_functions}
    created: set[str] = set()
    for ty in catalog.types:
        diff = ty.subtype_diff if ty.kind == "r" else None
        if diff in carried and diff not in created:
            out.append(_function(t, carried[diff]))
            created.add(diff)
        out += _type(t, ty, carried)
    return out


def _collation(t: str, c: CollationDef) -> list[Statement]:
    name = sql.Identifier(t, c.name)
    if c.provider == "c":
        provider, options = "libc", {"lc_collate": c.lc_collate, "lc_ctype": c.lc_ctype}
    else:
        provider = "icu" if c.provider == "i" else "builtin"
        options = {"locale": c.locale, "rules": c.rules}
    parts: list[sql.Composable] = [sql.SQL("provider = " + provider)]
    parts += [
        sql.SQL(k + " = {}").format(sql.Literal(v)) for k, v in options.items() if v is not None
    ]
    if not c.deterministic:
        parts.append(sql.SQL("deterministic = false"))
    body = sql.SQL(", ").join(parts)
    out = [Statement(f"collation:{c.name}", sql.SQL("CREATE COLLATION {} ({})").format(name, body))]
    if c.comment is not None:
        out.append(
            Statement(
                f"comment:collation:{c.name}",
                sql.SQL("COMMENT ON COLLATION {} IS {}").format(name, sql.Literal(c.comment)),
            )
        )
    return out


def _function(t: str, f: TypeFunction) -> Statement:
    body: Query = sql.SQL(" AS {}").format(sql.Literal(f.body))
    if f.sql_body:  # RETURN … or BEGIN ATOMIC … END, deparsed
        body = sql.SQL(" " + f.sql_body)
    return Statement(
        f"function:{f.name}",
        sql.SQL("CREATE FUNCTION {}({}) RETURNS {} LANGUAGE {} {}{} {}{}{}").format(
            sql.Identifier(t, f.name),
            sql.SQL(f.arguments),
            sql.SQL(f.result),
            sql.Identifier(f.language),
            sql.SQL(_VOLATILITY[f.volatility]),
            sql.SQL(" STRICT" if f.strict else ""),
            sql.SQL(_PARALLEL[f.parallel]),
            sql.SQL(" SECURITY DEFINER" if f.security_definer else ""),
            body,
        ),
    )


def _range(t: str, ty: TypeDef, carried: Mapping[str, TypeFunction]) -> Query:
    options: list[sql.Composable] = [sql.SQL("subtype = " + (ty.base_sql or ""))]
    for key, value in (("subtype_opclass", ty.opclass), ("collation", ty.collation)):
        if value is not None:
            options.append(sql.SQL(f"{key} = {value}"))
    diff = ty.subtype_diff
    if diff is not None and diff in carried:
        options.append(sql.SQL("subtype_diff = {}").format(sql.Identifier(t, diff)))
    elif diff is not None:
        options.append(sql.SQL("subtype_diff = " + diff))
    if ty.multirange is not None:
        options.append(
            sql.SQL("multirange_type_name = {}").format(sql.Identifier(t, ty.multirange))
        )
    return sql.SQL("CREATE TYPE {} AS RANGE ({})").format(
        sql.Identifier(t, ty.name), sql.SQL(", ").join(options)
    )


def _domain(name: sql.Identifier, ty: TypeDef) -> Query:
    parts: list[sql.Composable] = [
        sql.SQL("CREATE DOMAIN {} AS {}").format(name, sql.SQL(ty.base_sql or "")),
        collate(ty.collation),
    ]
    if ty.default is not None:
        parts.append(sql.SQL(" DEFAULT " + ty.default))
    if ty.not_null:
        parts.append(sql.SQL(" NOT NULL"))
    for cname, cdef, valid in ty.checks:
        if valid:
            parts.append(sql.SQL(" CONSTRAINT {} {}").format(sql.Identifier(cname), sql.SQL(cdef)))
    return sql.Composed(parts)


def _type(t: str, ty: TypeDef, carried: Mapping[str, TypeFunction]) -> list[Statement]:
    name = sql.Identifier(t, ty.name)
    if ty.kind == "e":
        labels = sql.SQL(", ").join(map(sql.Literal, ty.labels))
        stmt: Query = sql.SQL("CREATE TYPE {} AS ENUM ({})").format(name, labels)
    elif ty.kind == "c":
        attrs = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(typ)) for a, typ in ty.attributes
        )
        stmt = sql.SQL("CREATE TYPE {} AS ({})").format(name, attrs)
    elif ty.kind == "r":
        stmt = _range(t, ty, carried)
    else:
        stmt = _domain(name, ty)
    out = [Statement(f"type:{ty.name}", stmt)]
    for cname, cdef, valid in ty.checks if ty.kind == "d" else ():
        if not valid:  # the definition ends in NOT VALID
            out.append(
                Statement(
                    f"type:{ty.name}:{cname}",
                    sql.SQL("ALTER DOMAIN {} ADD CONSTRAINT {} {}").format(
                        name, sql.Identifier(cname), sql.SQL(cdef)
                    ),
                )
            )
    if ty.comment is not None:
        out.append(
            Statement(
                f"comment:type:{ty.name}",
                sql.SQL("COMMENT ON {} {} IS {}").format(
                    sql.SQL("DOMAIN" if ty.kind == "d" else "TYPE"), name, sql.Literal(ty.comment)
                ),
            )
        )
    return out
