"""Apply a folded round to one table with a handful of set-based statements.

The folded rows go to a temporary staging table in one ``COPY`` (text format: pgoutput hands
us every value as its type's text output, which is exactly what ``COPY`` parses), then at most
four statements move them: ``DELETE … USING``, ``UPDATE … FROM`` (twice: complete rows, and
rows keeping TOASTed values the stream left out) and ``INSERT … SELECT``. Deletes run first
and inserts last, so the rows in the table at any moment are a subset of the final ones and no
unique constraint can trip on a state the source never had; an ``UPDATE`` that swaps unique
values between rows still can, and the caller then replays the round's changes one by one.

Each statement must touch exactly the rows the fold expects: a key missing on the target
raises :class:`Diverged` and the whole round rolls back.

The staging table's columns take the target's types (domains resolved to their base type, so
that a NULL in a deleted row's non-key column breaks no domain's NOT NULL); values are cast
into the target's own column types by assignment, with the domain's checks, as an ``INSERT``
of the row would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import Diverged
from strangler.pg.sync.fold import Folded, Row
from strangler.pg.sync.pgoutput import UNCHANGED

__all__ = ["Diverged", "Stage", "stage_for"]

# Base types of the target's columns, domains unwrapped (typmod from the innermost domain
# that sets one), in column order.
_STAGE_TYPES = """
WITH RECURSIVE cols AS (
    SELECT a.attnum, a.attname, a.atttypid AS typ, a.atttypmod AS typmod, 0 AS depth
    FROM pg_attribute a
    WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = ''
  UNION ALL
    SELECT c.attnum, c.attname, t.typbasetype,
           CASE WHEN c.typmod = -1 THEN t.typtypmod ELSE c.typmod END, c.depth + 1
    FROM cols c JOIN pg_type t ON t.oid = c.typ
    WHERE t.typtype = 'd'
)
SELECT c.attname, format_type(c.typ, c.typmod)
FROM cols c JOIN pg_type t ON t.oid = c.typ
WHERE t.typtype <> 'd'
ORDER BY c.attnum
"""

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: object) -> str:
    if value is None or value is UNCHANGED:
        return "\\N"
    assert isinstance(value, str)
    return value.translate(_ESCAPES)


@dataclass(frozen=True)
class Stage:
    """The staging table of one target table, for one column order of the stream."""

    table: sql.Identifier  # the target table
    label: str
    name: sql.Identifier  # pg_temp.<stage>
    columns: tuple[str, ...]  # the stream's column order; stage column i+1 is ``c{i+1}``
    key: tuple[int, ...]

    def _c(self, i: int) -> sql.Identifier:
        return sql.Identifier(f"c{i + 1}")

    def _match(self) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("t.{} = s.{}").format(sql.Identifier(self.columns[i]), self._c(i))
            for i in self.key
        )

    def apply(self, conn: psycopg.Connection[Any], folded: Folded) -> None:
        """Stage and move the folded rows; raises Diverged when the target misses a key."""
        groups = (("D", folded.deletes), ("U", folded.updates), ("M", folded.masked))
        if not folded.inserts and not any(rows for _, rows in groups):
            # Nothing folded (the change that needs order came first in its round): no COPY,
            # whose one empty line would read as a row missing every column.
            return
        with conn.cursor() as cur:
            lines: list[str] = []
            for op, rows in (*groups, ("I", folded.inserts)):
                for row in rows:
                    keep = (
                        "{" + ",".join("t" if v is UNCHANGED else "f" for v in row) + "}"
                        if op == "M"
                        else "\\N"
                    )
                    lines.append("\t".join([op, keep, *map(_field, row)]))
            names = sql.SQL(", ").join(
                [sql.Identifier("op"), sql.Identifier("keep")]
                + [self._c(i) for i in range(len(self.columns))]
            )
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(self.name, names)) as copy:
                copy.write("\n".join(lines) + "\n")
            for op, rows in groups:
                if rows:
                    cur.execute(self._statement(op, rows))
                    self._check(cur.rowcount, len(rows), "DELETE" if op == "D" else "UPDATE")
            if folded.inserts:
                cur.execute(self._insert())
                self._check(cur.rowcount, len(folded.inserts), "INSERT")

    def _statement(self, op: str, rows: Sequence[Row]) -> sql.Composed:
        if op == "D":
            return sql.SQL("DELETE FROM {} t USING {} s WHERE s.op = 'D' AND {}").format(
                self.table, self.name, self._match()
            )
        # Keys stay as they are; a masked column keeps the target's value where the row's
        # mask says so (only columns some row keeps get the CASE).
        kept = {i for row in rows for i, v in enumerate(row) if v is UNCHANGED} if op == "M" else ()
        sets = [
            sql.SQL("{} = CASE WHEN s.keep[{}] THEN t.{} ELSE s.{} END").format(
                sql.Identifier(c), sql.Literal(i + 1), sql.Identifier(c), self._c(i)
            )
            if i in kept
            else sql.SQL("{} = s.{}").format(sql.Identifier(c), self._c(i))
            for i, c in enumerate(self.columns)
            if i not in self.key
        ]
        if not sets:  # a table of key columns only: nothing to update, but rows must exist
            sets = [
                sql.SQL("{} = t.{}").format(
                    sql.Identifier(self.columns[self.key[0]]),
                    sql.Identifier(self.columns[self.key[0]]),
                )
            ]
        return sql.SQL("UPDATE {} t SET {} FROM {} s WHERE s.op = {} AND {}").format(
            self.table, sql.SQL(", ").join(sets), self.name, sql.Literal(op), self._match()
        )

    def _insert(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} WHERE op = 'I'"
        ).format(
            self.table,
            sql.SQL(", ").join(map(sql.Identifier, self.columns)),
            sql.SQL(", ").join(self._c(i) for i in range(len(self.columns))),
            self.name,
        )

    def _check(self, affected: int, expected: int, what: str) -> None:
        if affected != expected:
            raise Diverged(
                f"{what} on {self.label} touched {affected} row(s) where the stream changes "
                f"{expected}: the target differs from the source, so sync stopped and nothing "
                "of this round was applied",
                hint="run 'strangler verify' to locate the difference; re-copy if needed",
            )


def stage_for(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    label: str,
    columns: Sequence[str],
    key: Sequence[int],
    number: int,
) -> Stage:
    """Create (in the current transaction) the staging table for ``columns`` of ``table``.

    ``ON COMMIT DELETE ROWS``: a round's rows never outlive it. The caller forgets the stage
    when a round rolls back, since the rollback takes the table with it.
    """
    types = dict(conn.execute(_STAGE_TYPES, (table.as_string(conn),)).fetchall())
    name = sql.Identifier("pg_temp", f"strangler_stage_{number}")
    defs = [sql.SQL('op "char"'), sql.SQL("keep boolean[]")] + [
        sql.SQL("{} {}").format(sql.Identifier(f"c{i + 1}"), sql.SQL(types[c]))
        for i, c in enumerate(columns)
    ]
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DELETE ROWS").format(
            name, sql.SQL(", ").join(defs)
        )
    )
    return Stage(table, label, name, tuple(columns), tuple(key))
