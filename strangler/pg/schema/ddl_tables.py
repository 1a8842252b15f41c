"""What a table carries beyond its own columns: inheritance, NOT NULL names, row security.

Helpers of :mod:`strangler.pg.schema.ddl` (issue 12):

- a partition or an inheritance child (``INHERITS``) gets most columns from its parents: it
  lists only its own, and keeps a NOT NULL name or a default of its own on one it inherits
  (PostgreSQL 18 names NOT NULL constraints; an attached partition keeps its own names, as
  pg_dump keeps them);
- parents are created before their children;
- row-level security (ENABLE, FORCE, each policy) comes after the load, like triggers.
"""

from __future__ import annotations

from psycopg import sql

from strangler.pg.schema.catalog import Catalog, Column, Table
from strangler.pg.schema.statement import Statement

__all__ = [
    "inherited_defaults",
    "inherited_not_nulls",
    "parents_first",
    "row_security",
]


def _parent_columns(table: Table, catalog: Catalog) -> dict[str, tuple[str, Column]]:
    """The columns a partition or inheritance child gets from its parents (the first one that
    has each, with that parent's name), when those parents move too."""
    out: dict[str, tuple[str, Column]] = {}
    parents = [table.partition_of] if table.partition_of else list(table.inherits)
    moved = set(catalog.names)
    for name in parents:
        if name in moved:
            for c in catalog.table(name).columns:
                out.setdefault(c.name, (name, c))
    return out


def _not_null_name(table: str, col: Column) -> str:
    """The NOT NULL constraint's name: the catalog keeps only a name other than the one
    PostgreSQL 18 chooses (``<table>_<column>_not_null``)."""
    return col.not_null_name or f"{table}_{col.name}_not_null"


def inherited_not_nulls(table: Table, catalog: Catalog) -> list[sql.Composable]:
    """``CONSTRAINT name NOT NULL col`` for the columns a table inherits whose NOT NULL has
    another name than the parent's, which it would take otherwise (an attached partition keeps
    its own names, as pg_dump keeps them). Names exist from PostgreSQL 18 on; the catalog
    keeps an inherited column's name only where it differs from the parent's."""
    if catalog.server_version < 180000:
        return []
    parent = _parent_columns(table, catalog)
    return [
        sql.SQL("CONSTRAINT {} NOT NULL {}").format(
            sql.Identifier(c.not_null_name), sql.Identifier(c.name)
        )
        for c in table.columns
        if c.inherited and c.not_null and c.not_null_name and c.name in parent
        and parent[c.name][1].not_null and _not_null_name(*parent[c.name]) != c.not_null_name
    ]  # fmt: skip


def inherited_defaults(t: str, table: Table, catalog: Catalog) -> list[Statement]:
    """A default an inheritance child or partition set on a column it inherits."""
    parent = _parent_columns(table, catalog)
    return [
        Statement(
            f"default:{table.name}.{c.name}",
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT " + c.default).format(
                sql.Identifier(t, table.name), sql.Identifier(c.name)
            ),
            table.name,
        )
        for c in table.columns
        if c.inherited and c.name in parent and c.default is not None
        and not c.generated and c.default != parent[c.name][1].default
    ]  # fmt: skip


def parents_first(catalog: Catalog) -> list[Table]:
    """The tables in catalog order, but every inheritance parent before its children."""
    out: list[Table] = []
    placed: set[str] = set()
    moved = set(catalog.names)
    todo = list(catalog.tables)
    while todo:
        rest = []
        for table in todo:
            if all(p in placed or p not in moved for p in table.inherits):
                out.append(table)
                placed.add(table.name)
            else:
                rest.append(table)
        if len(rest) == len(todo):  # pragma: no cover - inheritance has no cycles
            out += rest
            break
        todo = rest
    return out


_POLICY_COMMAND = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def row_security(t: str, table: Table, existing_roles: frozenset[str]) -> list[Statement]:
    """Row-level security after the load (like triggers): ENABLE, FORCE and each policy whose
    roles the target has (prepare warns about the others)."""
    tn = sql.Identifier(t, table.name)
    out = []
    for on, what in ((table.rls, "ENABLE"), (table.force_rls, "FORCE")):
        if on:
            out.append(
                Statement(
                    f"rls:{table.name}:{what.lower()}",
                    sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(tn, sql.SQL(what)),
                    table.name,
                )
            )
    for pol in table.policies:
        if any(r != "PUBLIC" and r not in existing_roles for r in pol.roles):
            continue
        parts: list[sql.Composable] = [
            sql.SQL("CREATE POLICY {} ON {} AS {} FOR {} TO {}").format(
                sql.Identifier(pol.name),
                tn,
                sql.SQL("PERMISSIVE" if pol.permissive else "RESTRICTIVE"),
                sql.SQL(_POLICY_COMMAND[pol.command]),
                sql.SQL(", ").join(
                    sql.SQL("PUBLIC") if r == "PUBLIC" else sql.Identifier(r) for r in pol.roles
                ),
            )
        ]
        if pol.using is not None:
            parts.append(sql.SQL(" USING (" + pol.using + ")"))
        if pol.with_check is not None:
            parts.append(sql.SQL(" WITH CHECK (" + pol.with_check + ")"))
        out.append(Statement(f"policy:{table.name}:{pol.name}", sql.Composed(parts), table.name))
    return out
