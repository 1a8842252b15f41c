"""Move the rows: every table from one snapshot, in parallel chunks, resumably.

How (issue 3):

- One **exported snapshot** (``pg_export_snapshot()``) is imported by every worker
  (``SET TRANSACTION SNAPSHOT``), so all chunks of all tables see the monolith at one instant
  and foreign keys hold in the copy even while the monolith takes writes. The online-sync
  helper passes its own snapshot (the one its logical slot exported) instead.
- **Same instance**: ``INSERT … SELECT`` inside the server, nothing crosses the wire.
  **New instance**: ``COPY … TO STDOUT`` streamed into ``COPY … FROM STDIN`` through psycopg,
  block by block, no temporary file. Binary format where it is portable; text where binary
  embeds instance-specific type OIDs (arrays of user types, composites), and text again as a
  fallback if the target rejects a binary stream (server versions that differ).
- **Chunks**: a table with a single integer primary key is split into primary-key ranges
  (open-ended at both ends, so rows added later still land in the first or last chunk);
  others are one chunk. The plan of chunks is stored in the journal before the first row
  moves, and each finished chunk is journaled. A re-run after a kill -9 skips finished
  chunks, deletes what a broken chunk left behind and copies it again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from strangler.errors import BadInput
from strangler.pg.catalog import Catalog, Table, read_catalog
from strangler.pg.connect import connect
from strangler.pg.ddl import search_path

__all__ = [
    "Chunk",
    "ChunkDone",
    "ChunkStore",
    "CopyProgress",
    "Endpoints",
    "copy_tables",
    "load_rows",
    "plan_chunks",
    "snapshot_transaction",
]

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")
_INTEGER_TYPES = {"smallint", "integer", "bigint"}


@dataclass(frozen=True)
class Endpoints:
    """Where rows come from and go to. ``target_dsn`` None: the same instance (pattern 1)."""

    source_dsn: str
    source_schema: str
    target_dsn: str | None
    target_schema: str

    @property
    def same_instance(self) -> bool:
        return self.target_dsn is None


@dataclass(frozen=True)
class Chunk:
    """One unit of copying and of the journal: a primary-key range of a table, or all of it."""

    table: str
    index: int
    pk: str | None
    lo: int | None  # inclusive; None: unbounded
    hi: int | None  # exclusive; None: unbounded

    @property
    def key(self) -> str:
        return f"copy/chunk/{self.table}/{self.index:05d}"

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


@dataclass(frozen=True)
class ChunkDone:
    chunk: Chunk
    rows: int
    bytes: int
    format: str  # sql | binary | text


class CopyProgress(Protocol):
    """What a display needs; calls come from worker threads."""

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None: ...

    def advance(self, table: str, rows: int, nbytes: int) -> None: ...


class ChunkStore(Protocol):
    """Where finished chunks are recorded: the journal's progress store in production."""

    def get(self, service: str, key: str, default: Any = None) -> Any: ...

    def put(self, service: str, key: str, value: Any) -> None: ...

    def items(self, service: str, prefix: str = "") -> dict[str, Any]: ...


def check_snapshot_id(snapshot: str) -> str:
    if not _SNAPSHOT_ID.match(snapshot):
        raise BadInput(
            f"{snapshot!r} is not a PostgreSQL snapshot id (like 00000003-0000001B-1)",
            hint="pass the id pg_export_snapshot() or a replication slot returned",
        )
    return snapshot


def snapshot_transaction(conn: psycopg.Connection[Any], snapshot: str, *, read_only: bool) -> None:
    """Begin a REPEATABLE READ transaction that sees exactly ``snapshot``."""
    conn.execute(
        sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ{}").format(
            sql.SQL(" READ ONLY" if read_only else "")
        )
    )
    conn.execute(
        sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(check_snapshot_id(snapshot)))
    )


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


def chunks_from_journal(stored: dict[str, list[list[Any]]]) -> dict[str, list[Chunk]]:
    return {
        table: [Chunk(table, i, pk, lo, hi) for i, (pk, lo, hi) in enumerate(parts)]
        for table, parts in stored.items()
    }


def binary_safe(conn: psycopg.Connection[Any], catalog: Catalog) -> dict[str, bool]:
    """Whether each table's rows survive binary COPY between two instances.

    Binary arrays and composites carry element type OIDs, which differ between instances for
    user types; everything built in (and enums and domains over built-ins) is portable.
    """
    oids = sorted({c.type_oid for t in catalog.tables for c in t.columns})
    rows = conn.execute(
        """
        WITH RECURSIVE base(root, oid) AS (
            SELECT o, o FROM unnest(%s::oid[]) o
            UNION
            SELECT b.root, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
            FROM base b JOIN pg_type t ON t.oid = b.oid
            WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
        )
        SELECT b.root, bool_and(NOT (t.typtype IN ('c', 'r', 'm') AND t.oid >= 16384)
               AND NOT (t.typcategory = 'A' AND t.typelem >= 16384))
        FROM base b JOIN pg_type t ON t.oid = b.oid GROUP BY b.root
        """,
        (oids,),
    ).fetchall()
    ok = {int(r[0]): bool(r[1]) for r in rows}
    return {t.name: all(ok.get(c.type_oid, False) for c in t.columns) for t in catalog.tables}


class _Connections:
    """One source and one target connection per worker thread, closed together at the end."""

    def __init__(self, ends: Endpoints) -> None:
        self.ends = ends
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _open(self, dsn: str, role: str) -> psycopg.Connection[Any]:
        conn = connect(dsn, role=role)
        with self._lock:
            self._all.append(conn)
        return conn

    def source(self) -> psycopg.Connection[Any]:
        if getattr(self._local, "source", None) is None:
            self._local.source = self._open(self.ends.source_dsn, "monolith")
        conn: psycopg.Connection[Any] = self._local.source
        return conn

    def target(self) -> psycopg.Connection[Any]:
        if self.ends.target_dsn is None:
            return self.source()
        if getattr(self._local, "target", None) is None:
            self._local.target = self._open(self.ends.target_dsn, "service target")
        conn: psycopg.Connection[Any] = self._local.target
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()


@contextmanager
def _rollback_on_error(*conns: psycopg.Connection[Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for c in conns:
            if not c.closed and c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                c.execute("ROLLBACK")
        raise


def _clear(conn: psycopg.Connection[Any], target: sql.Composable, chunk: Chunk) -> None:
    """Remove what a broken run of ``chunk`` may have committed before it was journaled."""
    if chunk.pk is None:
        conn.execute(sql.SQL("TRUNCATE {}").format(target))
    else:
        conn.execute(sql.SQL("DELETE FROM {}{}").format(target, chunk.where()))


def _copy_chunk(
    pool: _Connections,
    catalog: Catalog,
    chunk: Chunk,
    snapshot: str,
    redo: bool,
    binary: bool,
    progress: CopyProgress | None,
) -> ChunkDone:
    ends = pool.ends
    table = catalog.table(chunk.table)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.copy_columns()))
    src = sql.Identifier(ends.source_schema, table.name)
    dst = sql.Identifier(ends.target_schema, table.name)
    if ends.same_instance:
        conn = pool.source()
        # The monolith's enum/domain/composite values must become the service schema's own
        # types: through text, cast to the type name resolved in the target schema.
        carried = catalog.carried_type_oids
        select = sql.SQL(", ").join(
            sql.SQL("{}::text::{}").format(sql.Identifier(c.name), sql.SQL(c.type_sql))
            if c.type_oid in carried
            else sql.Identifier(c.name)
            for c in table.columns
            if not c.generated
        )
        with _rollback_on_error(conn):
            snapshot_transaction(conn, snapshot, read_only=False)
            conn.execute(search_path(ends.target_schema, local=True))
            if redo:
                _clear(conn, dst, chunk)
            cur = conn.execute(
                sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}{}").format(
                    dst, cols, select, src, chunk.where()
                )
            )
            rows = cur.rowcount
            conn.execute("COMMIT")
        if progress:
            progress.advance(table.name, rows, 0)
        return ChunkDone(chunk, rows, 0, "sql")
    fmt = "binary" if binary else "text"
    try:
        return _stream(pool, table, chunk, snapshot, redo, fmt, progress, src, dst, cols)
    except (psycopg.errors.DataError, psycopg.errors.InvalidBinaryRepresentation):
        if fmt != "binary":
            raise
        # The target read the binary stream differently (types differ between versions):
        # the same chunk again, as text, which every version parses alike.
        return _stream(pool, table, chunk, snapshot, True, "text", progress, src, dst, cols)


def _stream(
    pool: _Connections,
    table: Table,
    chunk: Chunk,
    snapshot: str,
    redo: bool,
    fmt: str,
    progress: CopyProgress | None,
    src: sql.Composable,
    dst: sql.Composable,
    cols: sql.Composable,
) -> ChunkDone:
    s, t = pool.source(), pool.target()
    options = sql.SQL(" (FORMAT BINARY)" if fmt == "binary" else "")
    if chunk.pk is None:
        out_sql = sql.SQL("COPY {} ({}) TO STDOUT{}").format(src, cols, options)
    else:
        out_sql = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT{}").format(
            cols, src, chunk.where(), options
        )
    in_sql = sql.SQL("COPY {} ({}) FROM STDIN{}").format(dst, cols, options)
    nbytes = pending = 0
    with _rollback_on_error(s, t):
        snapshot_transaction(s, snapshot, read_only=True)
        t.execute("BEGIN")
        if redo:
            _clear(t, dst, chunk)
        with s.cursor() as sc, t.cursor() as tc:
            with sc.copy(out_sql) as reader, tc.copy(in_sql) as writer:
                for block in reader:
                    writer.write(block)
                    pending += len(block)
                    if pending >= 1 << 22:
                        nbytes += pending
                        if progress:
                            progress.advance(table.name, 0, pending)
                        pending = 0
            rows = tc.rowcount
        t.execute("COMMIT")
        s.execute("COMMIT")
    if progress:
        progress.advance(table.name, rows, pending)
    return ChunkDone(chunk, rows, nbytes + pending, fmt)


def load_rows(
    ends: Endpoints,
    catalog: Catalog,
    chunks: dict[str, list[Chunk]],
    *,
    snapshot: str,
    jobs: int,
    redo: set[str],
    binary: dict[str, bool],
    on_done: Callable[[ChunkDone], None],
    progress: CopyProgress | None = None,
) -> list[ChunkDone]:
    """Copy ``chunks`` with ``jobs`` workers in ``snapshot``; ``on_done`` runs in this thread.

    ``redo`` holds the keys of chunks a broken run may have half-written: they are cleared
    first, in the same transaction as their copy.
    """
    todo = sorted(
        (c for parts in chunks.values() for c in parts),
        key=lambda c: (-catalog.table(c.table).bytes // max(1, len(chunks[c.table])), c.key),
    )
    pool = _Connections(ends)
    done: list[ChunkDone] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="copy") as ex:
            futures: set[Future[ChunkDone]] = {
                ex.submit(
                    _copy_chunk,
                    pool,
                    catalog,
                    c,
                    snapshot,
                    c.key in redo,
                    binary.get(c.table, False),
                    progress,
                )
                for c in todo
            }
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        result = fut.result()
                    except BaseException:
                        for other in futures:  # chunks not started yet stay undone
                            other.cancel()
                        raise
                    done.append(result)
                    on_done(result)
    finally:
        pool.close()
    return done


def copy_tables(ends: Endpoints, tables: Sequence[str], *, snapshot: str) -> dict[str, int]:
    """Rows of ``tables`` as of ``snapshot`` into tables that already exist, empty, on the
    target; one table after the other in the order given (parents first, when the target
    already has its foreign keys), nothing journaled.

    For callers that own the DDL themselves (online sync's own tests build both sides by
    hand); the extraction plans chunks and journals them with :func:`load_rows` directly.
    """
    with connect(ends.source_dsn, role="monolith") as source:
        snapshot_transaction(source, snapshot, read_only=True)
        catalog = read_catalog(source, ends.source_schema, list(tables))
        binary = {} if ends.same_instance else binary_safe(source, catalog)
        source.execute("COMMIT")
    rows: dict[str, int] = {}
    for table in tables:
        done = load_rows(
            ends, catalog, {table: [Chunk(table, 0, None, None, None)]}, snapshot=snapshot,
            jobs=1, redo=set(), binary=binary, on_done=lambda _: None,
        )  # fmt: skip
        rows[table] = sum(d.rows for d in done)
    return rows
