"""Key ranges: how a table is cut into chunks, and the SQL that selects or numbers them.

Chunks are ranges of the leading primary-key column, ordered byte-wise (``COLLATE "C"`` on
text-like keys) so that no collation of either server decides where a chunk ends. Integer
keys are cut arithmetically (``(id - low) / width``) from the smallest and largest key of
both sides; any other key type is cut at quantiles of a sample of the source's keys, sent to
both sides as text and cast back to the key type. The same boundaries go to both servers, so
chunk ``n`` means the same rows on each.

Every chunk is numbered in one scan per side (``GROUP BY`` the chunk number), which is what
lets a full verification cost about one hash scan of each table.

Bisection cuts deeper: a range of a composite key whose rows all share the leading value
(a low-cardinality leading column: tenant, order of a line) is fixed to that value
(:attr:`KeyRange.prefix`) and cut on the next key column, and so on down the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from strangler.verify.canonical import Column, TableShape

__all__ = [
    "INTEGER_TYPES",
    "KeyRange",
    "Plan",
    "bucket_expr",
    "cut_column",
    "integer_plan",
    "key_ref",
    "quantile_bounds",
    "range_filter",
]

INTEGER_TYPES = frozenset({"int2", "int4", "int8"})


@dataclass(frozen=True)
class KeyRange:
    """Rows whose first key columns equal ``prefix`` and whose next key column ``c`` has
    ``low <= c < high`` (None is unbounded). Values are text, cast to the column's type.

    With an empty prefix (every top-level chunk) ``c`` is the leading key column.
    """

    low: str | None = None
    high: str | None = None
    prefix: tuple[str, ...] = ()


def _names(key: str | Sequence[str]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def cut_column(key: str | Sequence[str], rng: KeyRange) -> str | None:
    """The key column ``rng`` bounds (None: the prefix fixes every key column)."""
    names = _names(key)
    return names[len(rng.prefix)] if len(rng.prefix) < len(names) else None


@dataclass(frozen=True)
class Plan:
    """How to number chunks: arithmetic (integer keys) or a list of boundaries (any type)."""

    integer_low: int | None = None
    integer_width: int | None = None
    bounds: tuple[str, ...] = ()

    def chunk_range(self, number: int, within: KeyRange | None = None) -> KeyRange:
        """The key range of chunk ``number`` (as :func:`bucket_expr` numbers it) in ``within``."""
        outer = within or KeyRange()
        if self.integer_low is not None and self.integer_width is not None:
            start = self.integer_low + number * self.integer_width
            return replace(outer, low=str(start), high=str(start + self.integer_width))
        low = self.bounds[number - 1] if number >= 1 else outer.low
        high = self.bounds[number] if number < len(self.bounds) else outer.high
        return replace(outer, low=low, high=high)


def key_ref(column: Column) -> sql.Composable:
    """A key column, compared byte-wise when its type has a collation."""
    ident = sql.Identifier(column.name)
    return sql.SQL('{} COLLATE "C"').format(ident) if column.collatable else ident


def range_filter(shape: TableShape, key: str | Sequence[str], rng: KeyRange) -> sql.Composable:
    """``WHERE`` condition selecting ``rng`` of the key columns ``key`` (``true``: everything)."""
    names = _names(key)
    parts: list[sql.Composable] = []
    for name, value in zip(names, rng.prefix, strict=False):
        fixed = shape.column(name)
        parts.append(
            sql.SQL("{} = {}::{}").format(
                key_ref(fixed), sql.Literal(value), sql.SQL(fixed.type_sql)
            )
        )
    cut = cut_column(names, rng)
    if cut is None:
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")
    column = shape.column(cut)
    ref, typ = key_ref(column), sql.SQL(column.type_sql)
    if rng.low is not None:
        parts.append(sql.SQL("{} >= {}::{}").format(ref, sql.Literal(rng.low), typ))
    if rng.high is not None:
        parts.append(sql.SQL("{} < {}::{}").format(ref, sql.Literal(rng.high), typ))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def bucket_expr(shape: TableShape, lead: str, plan: Plan) -> sql.Composable:
    """The chunk number of a row of ``shape`` under ``plan`` (cut on column ``lead``)."""
    column = shape.column(lead)
    if plan.integer_low is not None and plan.integer_width is not None:
        return sql.SQL("(({}::int8 - {}) / {})").format(
            sql.Identifier(column.name),
            sql.Literal(plan.integer_low),
            sql.Literal(plan.integer_width),
        )
    if not plan.bounds:
        return sql.SQL("0")
    return sql.SQL("width_bucket({}, {}::text[]::{}[])").format(
        key_ref(column), sql.Literal(list(plan.bounds)), sql.SQL(column.type_sql)
    )


def integer_plan(sides: list[tuple[int | None, int | None]], rows: int, chunk_rows: int) -> Plan:
    """Equal-width ranges over the union of both sides' [min, max] of an integer key."""
    lows = [lo for lo, _ in sides if lo is not None]
    highs = [hi for _, hi in sides if hi is not None]
    if not lows:
        return Plan(integer_low=0, integer_width=1)
    low, high = min(lows), max(highs)
    chunks = max(1, rows // max(1, chunk_rows))
    width = max(1, -(-(high - low + 1) // chunks))
    return Plan(integer_low=low, integer_width=width)


def quantile_bounds(
    conn: psycopg.Connection[Any],
    shape: TableShape,
    key: str | Sequence[str],
    rng: KeyRange,
    parts: int,
    *,
    sample_percent: float | None = None,
) -> tuple[str, ...]:
    """Up to ``parts - 1`` distinct boundaries splitting ``rng`` evenly on the column it cuts.

    ``sample_percent`` reads a Bernoulli sample instead of every key (top-level planning of a
    big table); the boundaries need not be exact, only identical on both sides.
    """
    lead = cut_column(key, rng)
    if parts < 2 or lead is None:
        return ()
    column = shape.column(lead)
    fractions = [i / parts for i in range(1, parts)]
    sample = (
        sql.SQL("TABLESAMPLE BERNOULLI ({})").format(sql.Literal(sample_percent))
        if sample_percent is not None and sample_percent < 100
        else sql.SQL("")
    )
    query = sql.SQL(
        "SELECT (percentile_disc({}::float8[]) WITHIN GROUP (ORDER BY {}))::text[] "
        "FROM {}.{} {} WHERE {}"
    ).format(
        sql.Literal(fractions),
        key_ref(column),
        sql.Identifier(shape.schema),
        sql.Identifier(shape.table),
        sample,
        range_filter(shape, key, rng),
    )
    row = conn.execute(query).fetchone()
    values = [v for v in (row[0] if row and row[0] else []) if v is not None]
    # percentile_disc repeats a value that spans several quantiles; keep each boundary once,
    # and drop one equal to the range's own low end (it would make an empty chunk 0).
    out: list[str] = []
    for v in values:
        if v not in out and v != rng.low:
            out.append(v)
    return tuple(out)
