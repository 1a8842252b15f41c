"""Verify one table: chunk hashes computed by both servers at once, bisection to the rows.

0. With ``whole_first``, hash the whole table first, one plain aggregate per side: equal
   tables cost exactly the floor, one hash scan per side, but a table that differs then
   pays a second, chunked scan (the floor twice over, and more). Numbering chunks costs a
   hash-table lookup per row (about 150 ns on the benchmark machine), whatever the row; the
   row hash costs in proportion to the row (0.3 µs for order_items' 68 bytes, 1.3 µs for
   orders' 243). So by default (``whole_first=None``, without online sync) a table of wide
   rows, :data:`WIDE_ROW_BYTES` or more on average, is numbered in chunks at once: about 1.2x
   its floor whether it differs or not, instead of 1x when equal and 2.2x when not; a table
   of narrow rows, for which chunks would cost 1.5x, is hashed whole first. Under online sync
   some rows are always in flight: chunks at once (``whole_first=False``).
1. Number every row's chunk and hash its row, one ``GROUP BY`` scan per side, both
   sides in parallel: only ``(chunk, rows, sum of hashes)`` crosses the network.
2. A chunk whose count or hash differs is cut into ``fanout`` sub-ranges at quantiles of its
   keys and hashed again (an index range scan), until a differing range holds at most
   ``leaf_rows`` rows; then each side sends ``(key, hash)`` of that range and the rows are
   matched in Python: missing, extra, changed.
3. For changed rows, both sides send the canonical text of each column, and the differing
   columns are named.
4. With ``recheck``, differing rows are read again (after the sync has applied past the
   source's position, when a :class:`SyncWatermark` is given) and only persisting ones stay.

Row hashes (:func:`~strangler.verify.canonical.row_hash`, 64 bits) are summed as numeric, which
is exact: a multiset hash, so no order is needed and a duplicated row changes it; with the row
count next to it, a chunk compares equal only if its rows do or their hash sums collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from strangler.verify.canonical import TableShape, column_expr, direct_columns, row_hash
from strangler.verify.chunks import (
    INTEGER_TYPES,
    KeyRange,
    Plan,
    bucket_expr,
    cut_column,
    integer_plan,
    quantile_bounds,
    range_filter,
)
from strangler.verify.report import ChunkDiff, RowDiff, TableReport
from strangler.verify.rows import Hashes, KeyTuple, classify, group_hashes, key_order
from strangler.verify.watermark import SyncWatermark

__all__ = ["WIDE_ROW_BYTES", "Side", "TableVerifier"]

T = TypeVar("T")

# Planner settings for the one full scan per side (SET LOCAL: they end with its transaction).
# The planner guesses one chunk per key (millions of groups), so past a few million rows it
# sorts the whole table to disk for a GroupAggregate (2M orders: 170 MB of temp files, twice
# the time). The real hash table holds rows / chunk_rows groups (15k: 11 MB), so no sort and
# room for the hash table in memory. Parallel workers are left to the planner (none at 200k
# rows, two at 2M): forcing them cost 1.6x the CPU of a serial scan at 200k orders, with both
# sides already scanning at once on the same 2 cores (docs/benchmarks-verify.md).
_SCAN_SETTINGS = {"work_mem": "64MB", "enable_sort": "off"}

# Rows at least this wide on average (heap and TOAST bytes per row) are numbered in chunks in
# the first scan; narrower ones are hashed whole first (module docstring, step 0).
WIDE_ROW_BYTES = 100


@dataclass(frozen=True)
class Side:
    conn: psycopg.Connection[Any]
    shape: TableShape


class TableVerifier:
    """Compare ``source`` and ``target`` over the columns they share, keyed by the source's PK."""

    def __init__(
        self,
        source: Side,
        target: Side,
        *,
        mode: str = "rows",
        pool: ThreadPoolExecutor,
        trim_scale: bool = True,
        native_hash: bool = True,
        whole_first: bool | None = None,
        chunk_rows: int = 128,
        leaf_rows: int = 512,
        fanout: int = 16,
        recheck: int = 0,
        watermark: SyncWatermark | None = None,
        recheck_timeout: float = 60.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.src, self.tgt = source, target
        self.mode = mode
        self.pool = pool
        self.trim, self.native, self.whole_first = trim_scale, native_hash, whole_first
        self.chunk_rows, self.leaf_rows, self.fanout = chunk_rows, leaf_rows, fanout
        self.recheck, self.watermark = recheck, watermark
        self.recheck_timeout, self.backoff, self.sleep = recheck_timeout, backoff, sleep
        src_names = [c.name for c in source.shape.columns]
        tgt_names = {c.name for c in target.shape.columns}
        self.names = [n for n in src_names if n in tgt_names]
        self.key = source.shape.key
        self.direct = direct_columns(source.shape, target.shape, self.names)
        self.report = TableReport(
            source=source.shape.qualified,
            target=target.shape.qualified,
            mode=mode,
            method=self._method(),
            weaker=not self.key and mode != "counts",
        )
        for name in src_names:
            if name not in tgt_names:
                self.report.problems.append(f"column {name} is missing from the target")
        for c in target.shape.columns:
            if c.name not in src_names:
                self.report.problems.append(f"column {c.name} exists only in the target")
        for k in self.key:
            if k not in tgt_names:
                self.report.problems.append(f"key column {k} is missing from the target")

    def _method(self) -> str:
        if self.mode == "counts":
            return "row counts"
        if not self.key:
            return "whole-table multiset hash (no primary key: rows cannot be named)"
        what = "chunk checksums" if self.mode == "checksum" else "chunk checksums + bisection"
        return f"{what} by primary key ({', '.join(self.key)})"

    # ------------------------------------------------------------------------------- plumbing

    def _both(self, fn: Callable[[Side], T]) -> tuple[T, T]:
        """Run ``fn`` on the source and the target at the same time."""
        a = self.pool.submit(fn, self.src)
        b = self.pool.submit(fn, self.tgt)
        return a.result(), b.result()

    @staticmethod
    def _table(side: Side) -> sql.Composable:
        return sql.SQL("{}.{}").format(
            sql.Identifier(side.shape.schema), sql.Identifier(side.shape.table)
        )

    def _hash(self, side: Side) -> sql.Composable:
        return row_hash(
            side.shape, self.names, native=self.native, trim_scale=self.trim, direct=self.direct
        )

    def _key_texts(self, side: Side) -> list[sql.Composable]:
        out: list[sql.Composable] = []
        for name in self.key:
            col = side.shape.column(name)
            # numeric keys print without trailing zeros like any numeric; others as their text,
            # which casts back to the key type for lookups.
            expr = column_expr(col, trim_scale=self.trim) if col.base_type == "numeric" else None
            out.append(expr or sql.SQL("{}::text").format(sql.Identifier(name)))
        return out

    # ----------------------------------------------------------------------------------- run

    def run(self) -> TableReport:
        started = time.monotonic()
        if self.report.problems or self.mode == "counts":
            self._counts()
        elif not self.key:
            self._multiset()
        else:
            self._chunked()
        self.report.seconds = time.monotonic() - started
        return self.report

    def range_hashes(
        self, low: int | None, high: int | None
    ) -> tuple[tuple[int, str | None], tuple[int, str | None]]:
        """``(rows, sum of row hashes)`` on each side of one range of an integer key, or of
        the whole table when both ends are None: one chunk of a queue's verification (issue
        17), hashed like the first pass of :meth:`run`."""
        if low is None and high is None:
            return self._whole()
        rng = KeyRange(None if low is None else str(low), None if high is None else str(high))
        src, tgt = self._chunk_hashes(Plan(), rng)
        return src.get(0, (0, None)), tgt.get(0, (0, None))

    def _counts(self) -> None:
        def count(side: Side) -> int:
            row = side.conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self._table(side))
            ).fetchone()
            return int(row[0]) if row else 0

        self.report.source_rows, self.report.target_rows = self._both(count)

    def _whole(self) -> tuple[tuple[int, str | None], tuple[int, str | None]]:
        """``(rows, sum of row hashes)`` of the whole table on each side."""

        def scan(side: Side) -> tuple[int, str | None]:
            query = sql.SQL("SELECT count(*), sum({})::text FROM {}").format(
                self._hash(side), self._table(side)
            )
            row = side.conn.execute(query).fetchone()
            return (int(row[0]), row[1]) if row else (0, None)

        return self._both(scan)

    def _multiset(self) -> None:
        (sn, sh), (tn, th) = self._whole()
        self.report.source_rows, self.report.target_rows = sn, tn
        self.report.chunks = 1
        if sh != th:
            self.report.problems.append(
                f"whole-table multiset hash differs (source {sn:,} rows, target {tn:,}); "
                "without a primary key the differing rows cannot be named"
            )

    # ------------------------------------------------------------------------------ chunks

    def _plan(self) -> Plan:
        lead = self.src.shape.column(self.key[0])
        if lead.base_type in INTEGER_TYPES:

            def extent(side: Side) -> tuple[int | None, int | None]:
                query = sql.SQL("SELECT min({k})::int8, max({k})::int8 FROM {t}").format(
                    k=sql.Identifier(lead.name), t=self._table(side)
                )
                row = side.conn.execute(query).fetchone()
                return (row[0], row[1]) if row else (None, None)

            sides = list(self._both(extent))
            lows = [lo for lo, _ in sides if lo is not None]
            highs = [hi for _, hi in sides if hi is not None]
            span = (max(highs) - min(lows) + 1) if lows else 0
            return integer_plan(sides, span, self.chunk_rows)
        rows = self._estimate(self.src)
        parts = max(1, min(rows // self.chunk_rows, 100_000))
        percent = min(100.0, 100.0 * 50 * parts / rows) if rows else 100.0
        return Plan(
            bounds=quantile_bounds(
                self.src.conn,
                self.src.shape,
                self.key[0],
                KeyRange(),
                parts,
                sample_percent=percent,
            )
        )

    def _estimate(self, side: Side) -> int:
        row = side.conn.execute(
            "SELECT c.reltuples::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (side.shape.schema, side.shape.table),
        ).fetchone()
        if row and row[0] and row[0] > 0:
            return int(row[0])
        count = side.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table(side)))
        return int(count.fetchone()[0])  # type: ignore[index]

    def _chunk_hashes(self, plan: Plan, rng: KeyRange) -> tuple[dict[int, Any], dict[int, Any]]:
        def scan(side: Side) -> dict[int, tuple[int, str]]:
            query = sql.SQL(
                "SELECT b, count(*), sum(h)::text FROM "
                "(SELECT {b} AS b, {h} AS h FROM {t} WHERE {w}) s GROUP BY b"
            ).format(
                b=bucket_expr(side.shape, cut_column(self.key, rng) or self.key[0], plan),
                h=self._hash(side),
                t=self._table(side),
                w=range_filter(side.shape, self.key, rng),
            )
            if rng != KeyRange():
                return {int(r[0]): (int(r[1]), str(r[2])) for r in side.conn.execute(query)}
            # The whole-table scan: the planner cannot know there are few chunks (it guesses
            # one per key) and would not plan the hash table in memory. Tell it, for this
            # query only.
            with side.conn.transaction():
                for setting, value in _SCAN_SETTINGS.items():
                    side.conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
                return {int(r[0]): (int(r[1]), str(r[2])) for r in side.conn.execute(query)}

        return self._both(scan)

    def _row_bytes(self) -> float | None:
        """Heap and TOAST bytes per row of the source, as its statistics last counted them."""
        row = self.src.conn.execute(
            "SELECT pg_table_size(c.oid)::float8 / c.reltuples FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = %s AND c.reltuples > 0",
            (self.src.shape.schema, self.src.shape.table),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def _whole_first(self) -> bool:
        if self.whole_first is not None:
            return self.whole_first
        width = self._row_bytes()
        return width is None or width < WIDE_ROW_BYTES

    def _chunked(self) -> None:
        whole = self._whole_first()
        self.report.first_pass = "whole table" if whole else "chunks"
        if whole:
            source, target = self._whole()
            if source == target:
                self.report.source_rows = self.report.target_rows = source[0]
                self.report.chunks = 1
                return
        plan = self._plan()
        src, tgt = self._chunk_hashes(plan, KeyRange())
        self.report.source_rows = sum(n for n, _ in src.values())
        self.report.target_rows = sum(n for n, _ in tgt.values())
        self.report.chunks = len(set(src) | set(tgt))
        differing = sorted(b for b in set(src) | set(tgt) if src.get(b) != tgt.get(b))
        if self.mode == "checksum":
            for b in differing:
                rng = plan.chunk_range(b)
                self.report.differing_chunks.append(
                    ChunkDiff(rng.low, rng.high, src.get(b, (0, ""))[0], tgt.get(b, (0, ""))[0])
                )
            return
        leaves: list[KeyRange] = []
        for b in differing:
            count = max(src.get(b, (0, ""))[0], tgt.get(b, (0, ""))[0])
            leaves += self._bisect(plan.chunk_range(b), count, depth=0)
        src_rows, tgt_rows = self._both(lambda side: self._leaves(side, leaves))
        self.report.rows_fetched = sum(len(h) for h in (*src_rows.values(), *tgt_rows.values()))
        rows = classify(self.key, src_rows, tgt_rows)
        if rows and self.recheck:
            rows = self._recheck(rows)
        if self.recheck and self.watermark is not None:
            # Under live writes the first pass counted each side at its own moment; every
            # difference in count is a missing or extra row, located and rechecked above,
            # so the target's count as of the final comparison follows from those rows.
            self.report.target_rows = self.report.source_rows - _balance(rows)
        self.report.rows = self._with_columns(rows)

    def _bisect(self, rng: KeyRange, count: int, depth: int) -> list[KeyRange]:
        """The ranges, at most ``leaf_rows`` rows each where keys allow, that hold the
        differences of ``rng``."""
        if count <= self.leaf_rows or depth >= 12 or cut_column(self.key, rng) is None:
            return [rng]
        bounds = quantile_bounds(self.src.conn, self.src.shape, self.key, rng, self.fanout)
        if not bounds:
            bounds = quantile_bounds(self.tgt.conn, self.tgt.shape, self.key, rng, self.fanout)
        if not bounds:  # the rows share one or a few values of the column cut here
            return self._descend(rng, count, depth)
        plan = Plan(bounds=bounds)
        src, tgt = self._chunk_hashes(plan, rng)
        out: list[KeyRange] = []
        for b in sorted(set(src) | set(tgt)):
            if src.get(b) != tgt.get(b):
                sub = max(src.get(b, (0, ""))[0], tgt.get(b, (0, ""))[0])
                out += self._bisect(plan.chunk_range(b, rng), sub, depth + 1)
        return out

    def _descend(self, rng: KeyRange, count: int, depth: int) -> list[KeyRange]:
        """Cut a range no quantile cuts on the next key column, one range per value of this
        one (a composite key whose leading column has few values: tenant, order of a line).

        Each side's values come from that side, so the ranges cover both sides' rows and do
        not overlap; more than ``fanout`` values on a side (one heavy value among many rare
        ones) stay one leaf, as does the last key column.
        """
        cut = cut_column(self.key, rng)
        if cut is None or len(rng.prefix) + 1 >= len(self.key):
            return [rng]

        def values(side: Side) -> list[str]:
            col = side.shape.column(cut)
            text = (
                column_expr(col, trim_scale=self.trim)
                if col.base_type == "numeric"
                else sql.SQL("{}::text").format(sql.Identifier(cut))
            )
            query = sql.SQL("SELECT DISTINCT {v} FROM {t} WHERE {w} LIMIT {n}").format(
                v=text,
                t=self._table(side),
                w=range_filter(side.shape, self.key, rng),
                n=sql.Literal(self.fanout + 1),
            )
            return [str(r[0]) for r in side.conn.execute(query)]

        found = self._both(values)
        if any(len(v) > self.fanout for v in found):
            return [rng]
        out: list[KeyRange] = []
        for value in dict.fromkeys(found[0] + found[1]):
            out += self._bisect(KeyRange(prefix=(*rng.prefix, value)), count, depth + 1)
        return out

    # -------------------------------------------------------------------------------- rows

    def _leaves(self, side: Side, ranges: list[KeyRange]) -> Hashes:
        """``(key, hash)`` of every row in ``ranges``: one query per 100 ranges, not per range."""
        out: Hashes = {}
        for start in range(0, len(ranges), 100):
            batch = ranges[start : start + 100]
            query = sql.SQL("SELECT {k}, {h}::text FROM {t} WHERE {w}").format(
                k=sql.SQL(", ").join(self._key_texts(side)),
                h=self._hash(side),
                t=self._table(side),
                w=sql.SQL(" OR ").join(
                    sql.SQL("({})").format(range_filter(side.shape, self.key, r)) for r in batch
                ),
            )
            for key, hashes in group_hashes(side.conn.execute(query)).items():
                out.setdefault(key, []).extend(hashes)
        return out

    def _lookup(
        self, side: Side, keys: list[KeyTuple], select: Iterable[sql.Composable]
    ) -> list[tuple[Any, ...]]:
        """Rows of ``side`` whose key is one of ``keys``, selecting key texts then ``select``."""
        if not keys:
            return []
        cols = [side.shape.column(k) for k in self.key]
        aliases = [sql.Identifier(f"k{i}") for i in range(len(cols))]
        query = sql.SQL(
            "SELECT {k}, {sel} FROM {t} WHERE ({key}) IN "
            "(SELECT {casts} FROM unnest({arrays}) AS u({aliases}))"
        ).format(
            k=sql.SQL(", ").join(self._key_texts(side)),
            sel=sql.SQL(", ").join(select),
            t=self._table(side),
            key=sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
            casts=sql.SQL(", ").join(
                sql.SQL("{}::{}").format(a, sql.SQL(c.type_sql))
                for a, c in zip(aliases, cols, strict=True)
            ),
            arrays=sql.SQL(", ").join(
                sql.SQL("{}::text[]").format(sql.Placeholder()) for _ in cols
            ),
            aliases=sql.SQL(", ").join(aliases),
        )
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), 5000):
            batch = keys[start : start + 5000]
            params = [[k[i] for k in batch] for i in range(len(cols))]
            out += side.conn.execute(query, params).fetchall()
        return out

    def _recheck(self, rows: list[RowDiff]) -> list[RowDiff]:
        """Read differing rows again until they agree or ``recheck`` attempts are used up.

        Order matters under live writes: read the source, take its WAL position, wait until
        the sync has applied past it, then read the target. A row that differs then differs
        for real (or changed again on the source after we read it, and the next attempt sees).
        """
        first = len(rows)
        for attempt in range(self.recheck):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            keys = sorted({tuple(r.key.values()) for r in rows}, key=key_order)
            src = group_hashes(self._lookup(self.src, keys, [self._hash(self.src)]))
            if self.watermark is not None:
                lsn = self.watermark.source_position()
                if not self.watermark.wait_applied(lsn, self.recheck_timeout):
                    self.report.problems.append(
                        f"online sync had not applied the source up to {lsn} within "
                        f"{self.recheck_timeout:g}s; the differences below may be lag"
                    )
                    break
            tgt = group_hashes(self._lookup(self.tgt, keys, [self._hash(self.tgt)]))
            rows = classify(self.key, src, tgt)
            if not rows:
                break
        self.report.cleared_by_recheck = first - len(rows)
        return rows

    def _with_columns(self, rows: list[RowDiff]) -> list[RowDiff]:
        """Name the differing columns of each changed row."""
        changed = sorted({tuple(r.key.values()) for r in rows if r.kind == "changed"})
        if not changed:
            return rows
        n = len(self.key)

        def values(side: Side) -> dict[KeyTuple, tuple[Any, ...]]:
            exprs = [column_expr(side.shape.column(c), trim_scale=self.trim) for c in self.names]
            return {tuple(r[:n]): tuple(r[n:]) for r in self._lookup(side, changed, exprs)}

        src, tgt = self._both(values)
        out: list[RowDiff] = []
        for r in rows:
            key = tuple(r.key.values())
            if r.kind == "changed" and key in src and key in tgt:
                cols = tuple(
                    name
                    for name, a, b in zip(self.names, src[key], tgt[key], strict=True)
                    if a != b
                )
                r = RowDiff("changed", r.key, cols)
            out.append(r)
        return out


def _balance(rows: list[RowDiff]) -> int:
    """Rows only the source has minus rows only the target has."""
    return sum(r.kind == "missing" for r in rows) - sum(r.kind == "extra" for r in rows)
