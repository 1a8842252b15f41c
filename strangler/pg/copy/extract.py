"""Runbook patterns 1 and 2 as mechanism: the schema objects, then the rows, keys and counts.

Plain values in, figures out; what is remembered between runs comes in as values and leaves
through callbacks, so the step (:mod:`strangler.steps.copy`) decides what the journal keeps:

- :func:`create_schema_objects` runs the schema part of the DDL in one target transaction;
- :func:`copy_rows` copies the tables from one snapshot (exported here, or the one online
  sync's slot exported), builds keys, indexes, foreign keys and triggers, sets sequences and
  counts both sides, calling ``on_plan``/``on_chunk``/``on_statement`` as work finishes.

**Contract with online sync (issue 5)**: given ``snapshot``, every worker runs ``BEGIN
ISOLATION LEVEL REPEATABLE READ`` and ``SET TRANSACTION SNAPSHOT '<id>'``, so the copy is
exactly the state at the replication slot's consistent point. The caller keeps the
connection that exported the snapshot open until :func:`copy_rows` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import BadInput
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import Chunk, binary_safe, chunks_from_bounds, plan_chunks
from strangler.pg.copy.postload import (
    count_rows,
    count_rows_apart,
    existing_keys,
    run_statements,
    set_sequences,
)
from strangler.pg.copy.rows import (
    ChunkDone,
    CopyProgress,
    Endpoints,
    OnXact,
    load_rows,
    snapshot_transaction,
)
from strangler.pg.schema.catalog import Catalog
from strangler.pg.schema.ddl import Ddl, search_path
from strangler.pg.schema.prepare import Policy, Prepared, RoleRequest, prepare
from strangler.pg.schema.statement import Statement

__all__ = [
    "CopyFigures",
    "Loader",
    "Resume",
    "TableCount",
    "copy_rows",
    "create_schema_objects",
]


# How the rows of the planned chunks move (issue 17): the signature of :func:`load_rows`.
Loader = Callable[..., list[ChunkDone]]


@dataclass(frozen=True)
class Resume:
    """What an earlier, interrupted run of the same copy left behind."""

    plan: Mapping[str, list[list[Any]]] | None = None  # the chunk bounds it fixed
    chunk_rows: Mapping[str, int] = field(default_factory=dict)  # finished chunk id → rows
    statements: frozenset[str] = frozenset()  # DDL statement keys already run


@dataclass(frozen=True)
class TableCount:
    source_rows: int
    target_rows: int

    @property
    def equal(self) -> bool:
        return self.source_rows == self.target_rows


@dataclass
class CopyFigures:
    """What one run of :func:`copy_rows` did, and the counts that judge it."""

    snapshot: str
    resumed: bool
    tables: dict[str, TableCount]
    chunks: int
    chunks_copied: int
    chunks_skipped: int
    bytes: int
    formats: list[str]
    statements: int
    sequences: dict[str, int | None]
    warnings: list[str]
    seconds: dict[str, float]
    watermark_xid: str | None
    # Foreign keys left NOT VALID for the caller to validate, as (table, constraint): rows
    # read under several snapshots hold only once sync has caught up (issue 17).
    deferred: list[tuple[str, str]] = field(default_factory=list)

    @property
    def mismatched(self) -> dict[str, TableCount]:
        return {t: c for t, c in self.tables.items() if not c.equal}


# What the target server lacks (ICU, a provider, a type or function of another schema): the
# schema transaction rolls back, so nothing changed and the operator can fix and re-run.
_TARGET_LACKS = (
    psycopg.errors.FeatureNotSupported,
    psycopg.errors.UndefinedObject,
    psycopg.errors.UndefinedFunction,
)


def create_schema_objects(target: psycopg.Connection[Any], ddl: Ddl, schema: str) -> None:
    """The schema part of ``ddl`` (schema, types, tables, sequences, role) in one transaction."""
    with target.transaction():
        target.execute(search_path(schema, local=True, then=ddl.path))
        for stmt in ddl.schema:
            _run_schema_statement(target, stmt, schema)


def _run_schema_statement(target: psycopg.Connection[Any], stmt: Statement, schema: str) -> None:
    try:
        target.execute(stmt.query)
    except _TARGET_LACKS as exc:
        raise BadInput(
            f"the target cannot create {stmt.key} of schema {schema!r}: "
            f"{str(exc).splitlines()[0]}; nothing was changed",
            hint="give the target what the monolith's schema uses (e.g. a server built with "
            "ICU for an ICU collation, the types of other schemas), or leave the column out; "
            "'strangler copy --dry-run' prints the SQL",
        ) from exc


def _count_expected(
    source: psycopg.Connection[Any],
    catalog: Catalog,
    chunks: Mapping[str, list[Chunk]],
    done_before: Mapping[str, int],
) -> dict[str, int]:
    """Rows each table must have: counted in this run's snapshot, plus rows of chunks that an
    earlier (interrupted) run copied from its own snapshot."""
    expected: dict[str, int] = {}
    for table, parts in chunks.items():
        earlier = [c for c in parts if c.id in done_before]
        if not earlier:
            expected[table] = count_rows(source, catalog.schema, [table])[table]
            continue
        total = sum(int(done_before[c.id]) for c in earlier)
        for c in parts:
            if c.id not in done_before:
                total += count_rows(source, catalog.schema, [table], {table: c.where()})[table]
        expected[table] = total
    return expected


def _refuse_data(target: psycopg.Connection[Any], schema: str, catalog: Catalog) -> None:
    """A first copy must find the tables strangler created still empty."""
    for table in catalog.tables:
        if not table.has_data:
            continue
        row = target.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, table.name))
        ).fetchone()
        if row and row[0]:
            raise BadInput(
                f"target table {schema}.{table.name} already holds rows, and no copy of it is "
                "in the journal: something else wrote there",
                hint="find out who; delete those rows (or drop the schema yourself), then roll "
                "back the schema ('strangler rollback SERVICE --schema --reason …') and copy "
                "again",
            )


def copy_rows(
    ends: Endpoints,
    *,
    tables: list[str],
    role: RoleRequest | None,
    policy: Policy,
    jobs: int,
    snapshot: str | None,
    chunk_rows: int,
    resume: Resume,
    on_plan: Callable[[dict[str, list[list[Any]]]], None],
    on_chunk: Callable[[ChunkDone, str], None],
    on_statement: Callable[[str], None],
    on_snapshot: Callable[[str], None] = lambda _snapshot: None,
    progress: CopyProgress | None = None,
    loader: Loader | None = None,
    on_xact: OnXact | None = None,
    defer_validation: bool = False,
) -> CopyFigures:
    """Copy the rows of ``tables`` into the service schema and finish its keys and counts.

    ``snapshot``: read under this exported snapshot instead of exporting one. The schema
    objects must exist (:func:`create_schema_objects`). ``on_plan`` receives the chunk
    bounds of a first run before any row moves; ``on_chunk`` each finished chunk with the
    snapshot it was read in; ``on_statement`` each finished post-load statement's key;
    ``on_xact`` each chunk's target transaction id before it writes (see
    :mod:`strangler.pg.copy.rows`). ``loader`` moves the rows (default :func:`load_rows`,
    threads in this process; issue 17 adds a queue drained by ``strangler worker``
    processes, and AWS DMS). ``defer_validation``: leave foreign keys NOT VALID and list
    them in the figures (``deferred``), for a copy read under several snapshots.
    """
    target_dsn = ends.target_dsn or ends.source_dsn
    with (
        connect(ends.source_dsn, role="monolith") as source,
        connect(target_dsn, role="service target") as target,
    ):
        if snapshot is None:
            source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = source.execute("SELECT pg_export_snapshot()").fetchone()
            snap = str(row[0]) if row else ""
        else:
            snapshot_transaction(source, snapshot, read_only=True)
            snap = snapshot
        on_snapshot(snap)
        prepared = prepare(
            source,
            target,
            source_schema=ends.source_schema,
            tables=tables,
            target_schema=ends.target_schema,
            role=role,
            policy=policy,
            same_instance=ends.same_instance,
        )
        catalog = prepared.catalog
        resuming = resume.plan is not None
        if resume.plan is None:
            _refuse_data(target, ends.target_schema, catalog)
            chunks = plan_chunks(source, catalog, chunk_rows)
            on_plan({t: [c.to_list() for c in cs] for t, cs in chunks.items()})
        else:
            chunks = chunks_from_bounds(resume.plan)
        done_before = resume.chunk_rows
        redo = (
            {c.id for cs in chunks.values() for c in cs if c.id not in done_before}
            if resuming
            else set()
        )
        pending = {t: [c for c in cs if c.id not in done_before] for t, cs in chunks.items()}
        if progress:
            for table in catalog.tables:
                if table.has_data:
                    skipped = sum(
                        int(done_before[c.id]) for c in chunks[table.name] if c.id in done_before
                    )
                    progress.table_started(
                        table.name, table.estimated_rows, len(chunks[table.name])
                    )
                    if skipped:
                        progress.advance(table.name, skipped, 0)
        binary = {} if ends.same_instance else binary_safe(source, catalog)
        figures = _load_and_finish(
            ends, source, target, prepared, chunks, pending, done_before, snap, jobs, redo,
            binary, resume.statements, resuming, on_chunk, on_statement, progress,
            loader or load_rows, on_xact, defer_validation,
        )  # fmt: skip
        figures.resumed = resuming
        return figures


def _load_and_finish(
    ends: Endpoints,
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    prepared: Prepared,
    chunks: Mapping[str, list[Chunk]],
    pending: Mapping[str, list[Chunk]],
    done_before: Mapping[str, int],
    snap: str,
    jobs: int,
    redo: set[str],
    binary: dict[str, bool],
    statements_done: frozenset[str],
    resuming: bool,
    on_chunk: Callable[[ChunkDone, str], None],
    on_statement: Callable[[str], None],
    progress: CopyProgress | None,
    loader: Loader,
    on_xact: OnXact | None = None,
    defer_validation: bool = False,
) -> CopyFigures:
    catalog = prepared.catalog
    target_dsn = ends.target_dsn or ends.source_dsn
    clock = time.monotonic()
    seconds: dict[str, float] = {}
    skip = set(statements_done)
    if resuming:  # what a killed run made but did not live to record
        skip |= existing_keys(target, ends.target_schema)
    ran: list[str] = []

    def ddl_done(stmt: Statement) -> None:
        on_statement(stmt.key)
        skip.add(stmt.key)
        ran.append(stmt.key)

    def run(stmts: list[Statement]) -> Callable[[], object]:
        return lambda: run_statements(
            target_dsn, ends.target_schema, stmts, jobs=1, skip=set(skip), on_done=ddl_done,
            path=prepared.ddl.path,
        )  # fmt: skip

    def keys_of(table: str) -> list[list[Callable[[], object]]]:
        """Each index on its own (they build side by side), then the constraints."""
        stmts = [s for s in prepared.ddl.keys if s.table == table]
        indexes = [s for s in stmts if s.key.startswith("index:")]
        rest = [s for s in stmts if not s.key.startswith("index:")]
        return [[run([s]) for s in indexes], [run(rest)] if rest else []]

    # A leaf table's keys and indexes are built as soon as its rows are in; those of a
    # partitioned parent wait for all partitions (the keys phase below).
    early = {t.name: keys_of(t.name) for t in catalog.tables if t.has_data}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count") as counter:
        # The runbook's source counts, in the snapshot, run beside the load on the
        # connection that holds the snapshot (the load has connections of its own).
        counting = counter.submit(_count_expected, source, catalog, chunks, done_before)
        loaded = loader(
            ends, catalog, {t: cs for t, cs in pending.items() if cs}, snapshot=snap,
            jobs=jobs, redo=redo, binary=binary, on_done=lambda d: on_chunk(d, snap),
            progress=progress, then=early, on_xact=on_xact,
        )  # fmt: skip
        seconds["load"] = round(time.monotonic() - clock, 3)
        expected = counting.result()
    # Everything else reads the live monolith; the snapshot is not needed any longer.
    source.execute("COMMIT")

    deferred: list[tuple[str, str]] = []
    for phase, stmts in prepared.ddl.phases()[1:]:
        if phase == "validate" and defer_validation:
            deferred = [
                (str(s.table), s.key.removeprefix(f"validate:{s.table}:"))
                for s in stmts
                if s.key not in skip
            ]
            continue
        clock = time.monotonic()
        parallel = jobs if phase in ("keys", "validate", "analyze") else 1
        # Keys: the indexes first (side by side), then what attaches or needs them.
        waves = (
            [[s for s in stmts if s.key.startswith("index:")],
             [s for s in stmts if not s.key.startswith("index:")]]
            if phase == "keys"
            else [stmts]
        )  # fmt: skip
        for wave in waves:
            run_statements(
                target_dsn, ends.target_schema, wave, jobs=parallel, skip=skip, on_done=ddl_done,
                path=prepared.ddl.path,
            )  # fmt: skip
        seconds[phase] = round(time.monotonic() - clock, 3)
    clock = time.monotonic()
    sequences = set_sequences(source, target, catalog, ends.target_schema)
    actual = count_rows_apart(target_dsn, ends.target_schema, list(expected), jobs=jobs)
    seconds["sequences_and_counts"] = round(time.monotonic() - clock, 3)
    watermark = target.execute("SELECT pg_current_xact_id()::text").fetchone()
    return CopyFigures(
        snapshot=snap,
        resumed=False,
        tables={t: TableCount(expected[t], actual[t]) for t in expected},
        chunks=sum(len(cs) for cs in chunks.values()),
        chunks_copied=len(loaded),
        chunks_skipped=len(done_before),
        bytes=sum(d.bytes for d in loaded),
        formats=sorted({d.format for d in loaded}),
        statements=len(ran),
        sequences=sequences,
        warnings=list(prepared.warnings),
        seconds=seconds,
        watermark_xid=str(watermark[0]) if watermark else None,
        deferred=deferred,
    )
