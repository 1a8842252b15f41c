"""The canonical text of a row: identical on both sides whatever the server version or settings.

Two servers print the same value differently when their settings differ (``TimeZone``,
``DateStyle``, ``IntervalStyle``, ``extra_float_digits``, ``bytea_output``, ``lc_monetary``)
or when the column types differ only in presentation (``numeric(12,2)`` against ``numeric``,
``real`` against ``double precision``). Verification hashes text on each server, so the text
must not depend on any of that. Two layers make it so:

1. :data:`SESSION_SETTINGS` pins every output setting on both connections;
2. :func:`column_expr` renders the types whose text is still unstable explicitly: floats as
   the hex of their IEEE-754 bytes (``float8send``, exact on every version), numerics without
   trailing zeros of scale, bytea as hex.

A row's text is then ``ROW(c1, c2, …)::text`` over those column texts. The record output
quotes empty strings and strings with special characters, and prints NULL as nothing, so NULL,
the empty string and the text ``'NULL'`` stay three different row texts. Changed rows are
explained column by column with these texts.

The row *hash* (:func:`row_hash`) avoids printing where it can: printing a timestamp or a
jsonb value costs more than hashing it. On PostgreSQL 14+ (both sides) each value is hashed
by the hash function of its type, which reads the stored binary value and is equal for equal
values of every presentation (integers of any width, numeric of any scale, text-like types
compared byte-wise, dates and timestamps, uuid, jsonb, bytea, inet); floats are hashed as their
IEEE bytes (``-0`` and ``0`` stay different) and everything else as its canonical text (enums,
whose hash would read database-specific OIDs, json, arrays, intervals, money, composite and
user types). Common types are hashed column by column with a seed per position and XORed; the
others share one ``hash_record_extended(ROW(…), 0)`` (see :func:`row_hash`). These hash
functions are the ones hash partitioning relies on, so PostgreSQL keeps them stable across
major versions; like every hash here they assume both servers share byte order. When either
server is older than 14, the row hashes as ``hashtextextended(row text, 0)``.

Either hash is 64 bits: a changed row goes unnoticed only if its hash is unchanged, about
2^-64 for an accidental change (these are not cryptographic hashes: they prove a copy, not
resist an adversary who controls the data).

Server encoding is not normalised: both databases must share it (checked by the engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = [
    "NATIVE_HASH_VERSION",
    "SESSION_SETTINGS",
    "Column",
    "TableShape",
    "column_expr",
    "direct_columns",
    "hash_part",
    "pin_session",
    "read_shape",
    "row_hash",
    "row_text",
]

# Every setting that changes how a value prints; set identically on both sides.
SESSION_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
}


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str  # format_type() output: a type name PostgreSQL itself quoted
    base_type: str  # typname of the column's type (or of a domain's base type)
    collatable: bool


@dataclass(frozen=True)
class TableShape:
    """The columns of one table in attnum order, and its primary key (empty: none)."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def pin_session(conn: psycopg.Connection[Any]) -> None:
    """Fix every output setting on ``conn`` (see :data:`SESSION_SETTINGS`)."""
    for name, value in SESSION_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


_SHAPE_SQL = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname),
       coalesce(bt.typcategory, t.typcategory) = 'S' OR t.typcollation <> 0,
       coalesce(array_position(pk.conkey, a.attnum), 0)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def read_shape(conn: psycopg.Connection[Any], schema: str, table: str) -> TableShape | None:
    """The columns and primary key of a table (or of a view: no key), or None when it does
    not exist."""
    rows = conn.execute(_SHAPE_SQL, (schema, table)).fetchall()
    if not rows:
        return None
    columns = tuple(Column(str(r[0]), str(r[1]), str(r[2]), bool(r[3])) for r in rows)
    positions = sorted((int(r[4]), str(r[0])) for r in rows if int(r[4]) > 0)
    return TableShape(schema, table, columns, tuple(name for _, name in positions))


def column_expr(column: Column, *, trim_scale: bool = True) -> sql.Composable:
    """A text expression for ``column`` that prints a value the same way on every server.

    ``trim_scale`` uses the function of PostgreSQL 13+; older servers get a regular
    expression with the same effect (both sides must use the same one).
    """
    ident = sql.Identifier(column.name)
    kind = column.base_type
    if kind in ("float4", "float8"):
        # Exact on every version: the IEEE bytes, not a decimal rendering (real → double is exact).
        return sql.SQL("encode(float8send({}::float8), 'hex')").format(ident)
    if kind == "numeric":
        if trim_scale:
            return sql.SQL("trim_scale({}::numeric)::text").format(ident)
        # "1.50" → "1.5", "2.00" → "2"; NaN and Infinity have no point and stay as they are.
        return sql.SQL(
            r"regexp_replace(regexp_replace({}::numeric::text, '(\.[0-9]*[1-9])0+$', '\1'), "
            r"'\.0+$', '')"
        ).format(ident)
    if kind == "bytea":
        return sql.SQL("encode({}::bytea, 'hex')").format(ident)
    return sql.SQL("{}::text").format(ident)


def row_text(shape: TableShape, names: list[str], *, trim_scale: bool = True) -> sql.Composable:
    """``ROW(e1, e2, …)::text`` over the canonical texts of ``names`` (in that order)."""
    parts = [column_expr(shape.column(n), trim_scale=trim_scale) for n in names]
    return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(parts))


# Types hashed from their stored value (see the module docstring). Text-like ones get
# COLLATE "C" so that a non-deterministic collation cannot make different strings hash alike.
_NATIVE = frozenset(
    {"int2", "int4", "int8", "numeric", "bool", "date", "time", "timestamp", "timestamptz"}
    | {"uuid", "jsonb", "bytea", "inet", "cidr"}
)
_NATIVE_TEXT = frozenset({"text", "varchar", "bpchar"})
NATIVE_HASH_VERSION = 140000  # hash_record_extended


def hash_part(column: Column) -> sql.Composable:
    """The value that stands for ``column`` in :func:`row_hash`'s record (PostgreSQL 14+)."""
    ident = sql.Identifier(column.name)
    kind = column.base_type
    if kind in ("float4", "float8"):
        return sql.SQL("float8send({}::float8)").format(ident)
    # The cast is a no-op for a column of the type itself and looks through a domain; kind is
    # one of the fixed names above, never user text.
    if kind in _NATIVE:
        return sql.SQL("{}::{}").format(ident, sql.SQL(kind))
    if kind in _NATIVE_TEXT:
        return sql.SQL('{}::{} COLLATE "C"').format(ident, sql.SQL(kind))
    return column_expr(column)


# Types with a hash function callable from SQL on every version since 11 (the one their
# default hash operator class uses), hashed column by column: cheaper than packing them into
# a record. The others (timestamptz, date, bool, bytea, floats as bytes, the canonical texts)
# share one hash_record_extended. Names are fixed here, never user text.
_DIRECT = {
    "int2": "hashint2extended",
    "int4": "hashint4extended",
    "int8": "hashint8extended",
    "numeric": "hash_numeric_extended",
    "text": "hashtextextended",
    "varchar": "hashtextextended",
    "bpchar": "hashbpcharextended",
    "uuid": "uuid_hash_extended",
    "jsonb": "jsonb_hash_extended",
    "timestamp": "timestamp_hash_extended",
    "time": "time_hash_extended",
}


# Types whose hash functions agree on equal values (hashint8 on an int4 value is hashint4 of it;
# hashbpchar ignores the padding that char(n) to text drops).
_FAMILY = {
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
}


def direct_columns(a: TableShape, b: TableShape, names: list[str]) -> frozenset[str]:
    """The columns of ``names`` that :func:`row_hash` may hash with their own function: those
    whose types on the two sides hash alike. Any other column (an enum on one side and text on
    the other) goes into the record on both sides, as canonical text where needed."""

    def family(shape: TableShape, name: str) -> str | None:
        kind = shape.column(name).base_type
        return _FAMILY.get(kind, kind) if kind in _DIRECT else None

    return frozenset(n for n in names if family(a, n) is not None and family(a, n) == family(b, n))


def row_hash(
    shape: TableShape,
    names: list[str],
    *,
    native: bool = True,
    trim_scale: bool = True,
    direct: frozenset[str] | None = None,
) -> sql.Composable:
    """A 64-bit hash of the columns ``names`` of a row, equal on both sides for equal rows.

    ``native`` (both servers 14+) hashes stored values: column ``i`` of a type in
    :data:`_DIRECT` as ``f(value, i)`` (NULL as the constant ``i``), the rest together as
    ``hash_record_extended(ROW(…), 0)``, all combined with XOR. Both sides must hash the same
    columns directly: pass ``direct`` from :func:`direct_columns` (None: every column whose
    type allows it, for two sides with the same types). Seeds differ per position, so
    swapping two columns' values changes the hash; integer widths hash alike (``hashint8``
    agrees with ``hashint4`` on int4 values) and numeric hashes ignore scale. Without
    ``native``, the canonical row text is hashed.
    """
    if not native:
        return sql.SQL("hashtextextended({}, 0)").format(
            row_text(shape, names, trim_scale=trim_scale)
        )
    parts: list[sql.Composable] = []
    rest: list[sql.Composable] = []
    for seed, name in enumerate(names, start=1):
        column = shape.column(name)
        fn = _DIRECT.get(column.base_type)
        if fn is None or (direct is not None and name not in direct):
            rest.append(hash_part(column))
            continue
        kind = "text" if column.base_type == "varchar" else column.base_type
        value = sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(kind))
        if column.collatable:
            value = sql.SQL('{} COLLATE "C"').format(value)
        parts.append(
            sql.SQL("coalesce({}({}, {}), {})").format(
                sql.SQL(fn), value, sql.Literal(seed), sql.Literal(seed)
            )
        )
    if rest or not parts:
        parts.append(sql.SQL("hash_record_extended(ROW({}), 0)").format(sql.SQL(", ").join(rest)))
    return (
        sql.SQL(" # ").join(parts)
        if len(parts) == 1
        else sql.SQL("({})").format(sql.SQL(" # ").join(parts))
    )
