"""Verification by chunks through the queue (issue 17): any number of workers hash key
ranges on both sides; the coordinator compares, and cuts only the tables that differ down
to their rows with the single-process verifier.

Equal chunks are the common case and the expensive part (a hash of every row on both
servers), so they are what spreads over machines; a difference is rare and is located where
the report is made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.pg.connect import connect, describe_dsn
from strangler.throttle.brake import NO_BRAKE, Brake
from strangler.verify.canonical import TableShape, read_shape
from strangler.verify.chunks import INTEGER_TYPES
from strangler.verify.report import ChunkDiff, TableReport, VerifyReport
from strangler.verify.service import verify_tables
from strangler.work import queue
from strangler.work.loader import wait_drained
from strangler.work.queue import WorkChunk
from strangler.work.worker import WorkTarget, run_worker

__all__ = ["plan_verify_chunks", "verify_by_queue"]


def _extent(conn: psycopg.Connection[Any], shape: TableShape, key: str) -> tuple[Any, Any]:
    row = conn.execute(
        sql.SQL("SELECT min({k})::int8, max({k})::int8 FROM {t}").format(
            k=sql.Identifier(key), t=sql.Identifier(shape.schema, shape.table)
        )
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _estimate(conn: psycopg.Connection[Any], shape: TableShape) -> int:
    row = conn.execute(
        "SELECT greatest(c.reltuples, 0)::int8 FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (sql.Identifier(shape.schema, shape.table).as_string(conn),),
    ).fetchone()
    return int(row[0]) if row and row[0] else 0


def plan_verify_chunks(
    target: WorkTarget,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    tables: Sequence[str],
    chunk_rows: int,
) -> tuple[list[WorkChunk], list[str]]:
    """Ranges of each table's single integer key (one chunk for any other table), and the
    tables missing on a side or whose columns differ (left to the single-process verifier,
    which reports them)."""
    out: list[WorkChunk] = []
    missing: list[str] = []
    for table in tables:
        s_shape = read_shape(src, target.source_schema, table)
        t_shape = read_shape(tgt, target.target_schema, table)
        if (
            s_shape is None
            or t_shape is None
            or {c.name for c in s_shape.columns} != {c.name for c in t_shape.columns}
        ):
            missing.append(table)  # the single-process verifier names what does not match
            continue
        key = s_shape.key
        edges: list[int | None] = [None, None]
        if len(key) == 1 and s_shape.column(key[0]).base_type in INTEGER_TYPES:
            ends = [_extent(src, s_shape, key[0]), _extent(tgt, t_shape, key[0])]
            lows = [lo for lo, _ in ends if lo is not None]
            highs = [hi for _, hi in ends if hi is not None]
            rows = max(_estimate(src, s_shape), 1)
            parts = max(1, -(-rows // chunk_rows))
            if lows and parts > 1:
                low, high = min(lows), max(highs)
                width = max(1, -(-(high - low + 1) // parts))
                edges = [None, *range(low + width, high + 1, width), None]
        for i in range(len(edges) - 1):
            out.append(
                WorkChunk(
                    target.service,
                    "verify",
                    f"{table}/{i:05d}",
                    len(out),
                    table,
                    key[0] if edges != [None, None] else None,
                    edges[i],
                    edges[i + 1],
                )
            )
    return out, missing


def verify_by_queue(
    target: WorkTarget,
    tables: Sequence[str],
    *,
    mode: str = "rows",
    jobs: int = 2,
    chunk_rows: int = 250_000,
    brake: Brake = NO_BRAKE,
    worker: str = "verify",
    **tuning: Any,
) -> VerifyReport:
    """Verify ``tables`` by chunks hashed by this process's ``jobs`` threads and any
    ``strangler worker`` beside it; differing tables are then verified row by row here."""
    started = time.monotonic()
    report = VerifyReport(
        target.service, mode, describe_dsn(target.source_dsn), describe_dsn(target.target_dsn)
    )
    with (
        connect(target.source_dsn, role="monolith") as src,
        connect(target.target_dsn, role=f"{target.service} target") as tgt,
    ):
        chunks, missing = plan_verify_chunks(target, src, tgt, tables, chunk_rows)
        queue.enqueue(tgt, chunks, fresh=True)
        if jobs:
            run_worker(target, jobs=("verify",), worker=worker, brake=brake, threads=jobs)
        wait_drained(tgt, target, "verify")  # chunks still held by workers elsewhere
        results = queue.finished(tgt, target.service, "verify")
    by_table: dict[str, list[tuple[WorkChunk, dict[str, Any]]]] = {}
    planned = {c.chunk: c for c in chunks}
    for f in results:
        if f.chunk in planned and f.result is not None:
            by_table.setdefault(f.table, []).append((planned[f.chunk], f.result))
    again: list[str] = list(missing)
    for table in tables:
        if table in missing:
            continue
        parts = by_table.get(table, [])
        differing = [(c, r) for c, r in parts if r["source"] != r["target"]]
        if len(parts) != sum(1 for c in chunks if c.table == table):
            again.append(table)  # a chunk not hashed (cannot happen: the queue is empty)
            continue
        one = TableReport(
            f"{target.source_schema}.{table}",
            f"{target.target_schema}.{table}",
            mode,
            f"chunk checksums by workers ({len(parts)} chunks)"
            + ("" if mode == "checksum" else ", bisection where they differ"),
            source_rows=sum(int(r["source"][0]) for _, r in parts),
            target_rows=sum(int(r["target"][0]) for _, r in parts),
            chunks=len(parts),
        )
        if differing and mode != "checksum":
            again.append(table)
            continue
        for c, r in differing:
            one.differing_chunks.append(
                ChunkDiff(
                    None if c.lo is None else str(c.lo),
                    None if c.hi is None else str(c.hi),
                    int(r["source"][0]),
                    int(r["target"][0]),
                )
            )
        report.tables.append(one)
    if again:
        rest = verify_tables(
            target.service, target.source_dsn, target.source_schema, target.target_dsn,
            target.target_schema, again, mode=mode, **tuning,
        )  # fmt: skip
        report.tables += rest.tables
    order = {f"{target.source_schema}.{t}": i for i, t in enumerate(tables)}
    report.tables.sort(key=lambda t: order.get(t.source, 0))
    report.seconds = time.monotonic() - started
    return report
