"""How a copy is cut into chunks, and which tables may travel as binary COPY.

A table with a single integer primary key is split into primary-key ranges, open-ended at both
ends so that rows added later still land in the first or last chunk; any other table is one
chunk. The step stores the plan (:meth:`Chunk.to_list`) before the first row moves, so a
resumed copy uses the same ranges (:func:`chunks_from_bounds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.schema.catalog import Catalog, Table

__all__ = ["Chunk", "binary_safe", "chunks_from_bounds", "plan_chunks"]

_INTEGER_TYPES = {"smallint", "integer", "bigint"}


@dataclass(frozen=True)
class Chunk:
    """One unit of copying and of resuming: a primary-key range of a table, or all of it."""

    table: str
    index: int
    pk: str | None
    lo: int | None  # inclusive; None: unbounded
    hi: int | None  # exclusive; None: unbounded

    @property
    def id(self) -> str:
        """A stable name, ``<table>/<index>``, under which its progress is recorded."""
        return f"{self.table}/{self.index:05d}"

    def to_list(self) -> list[Any]:
        return [self.pk, self.lo, self.hi]

    def where(self) -> sql.Composable:
        conds: list[sql.Composable] = []
        if self.pk is not None and self.lo is not None:
            conds.append(sql.SQL("{} >= {}").format(sql.Identifier(self.pk), sql.Literal(self.lo)))
        if self.pk is not None and self.hi is not None:
            conds.append(sql.SQL("{} < {}").format(sql.Identifier(self.pk), sql.Literal(self.hi)))
        if not conds:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)


def _int_pk(table: Table) -> str | None:
    pk = table.primary_key
    if pk is None or len(pk.columns) != 1:
        return None
    col = next(c for c in table.columns if c.name == pk.columns[0])
    return col.name if col.type_sql in _INTEGER_TYPES else None


def plan_chunks(
    conn: psycopg.Connection[Any], catalog: Catalog, chunk_rows: int
) -> dict[str, list[Chunk]]:
    """Split each table with rows into chunks; ``conn`` is inside the copy's snapshot."""
    out: dict[str, list[Chunk]] = {}
    for table in catalog.tables:
        if not table.has_data:
            continue
        pk = _int_pk(table)
        n = max(1, -(-table.estimated_rows // chunk_rows))
        if pk is None or n == 1:
            out[table.name] = [Chunk(table.name, 0, None, None, None)]
            continue
        row = conn.execute(
            sql.SQL("SELECT min({pk}), max({pk}) FROM {t}").format(
                pk=sql.Identifier(pk), t=sql.Identifier(catalog.schema, table.name)
            )
        ).fetchone()
        lo, hi = (row or (None, None))[0], (row or (None, None))[1]
        if lo is None or hi is None or hi - lo < n:
            out[table.name] = [Chunk(table.name, 0, None, None, None)]
            continue
        step = (hi - lo + 1) // n
        bounds = [lo + step * i for i in range(1, n)]
        edges: list[int | None] = [None, *bounds, None]
        out[table.name] = [
            Chunk(table.name, i, pk, edges[i], edges[i + 1]) for i in range(len(edges) - 1)
        ]
    return out


def chunks_from_bounds(stored: Mapping[str, list[list[Any]]]) -> dict[str, list[Chunk]]:
    """Chunks from the ``{table: [[pk, lo, hi], …]}`` form :meth:`Chunk.to_list` gives."""
    return {
        table: [Chunk(table, i, pk, lo, hi) for i, (pk, lo, hi) in enumerate(parts)]
        for table, parts in stored.items()
    }


def binary_safe(conn: psycopg.Connection[Any], catalog: Catalog) -> dict[str, bool]:
    """Whether each table's rows survive binary COPY between two instances.

    Binary arrays and composites carry element type OIDs, which differ between instances for
    user types; everything built in (and enums, domains, ranges and multiranges over
    built-ins, whose binary forms hold only their values) is portable. So the walk goes
    through domains, arrays, ranges and multiranges to what they are made of.
    """
    oids = sorted({c.type_oid for t in catalog.tables for c in t.columns})
    rows = conn.execute(
        """
        WITH RECURSIVE base(root, oid) AS (
            SELECT o, o FROM unnest(%s::oid[]) o
            UNION
            SELECT b.root, n.part FROM base b JOIN pg_type t ON t.oid = b.oid
            CROSS JOIN LATERAL (VALUES
                (CASE WHEN t.typtype = 'd' THEN t.typbasetype END),
                (CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem END),
                ((SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid)),
                ((SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = t.oid))
            ) n(part)
            WHERE n.part IS NOT NULL
        )
        SELECT b.root, bool_and(NOT (t.typtype = 'c' AND t.oid >= 16384)
               AND NOT (t.typcategory = 'A' AND t.typelem >= 16384))
        FROM base b JOIN pg_type t ON t.oid = b.oid GROUP BY b.root
        """,
        (oids,),
    ).fetchall()
    ok = {int(r[0]): bool(r[1]) for r in rows}
    return {t.name: all(ok.get(c.type_oid, False) for c in t.columns) for t in catalog.tables}
