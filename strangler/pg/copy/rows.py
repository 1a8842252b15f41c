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
  others are one chunk. The caller records the plan of chunks before the first row moves,
  and each finished chunk (``on_done``); a re-run after a kill -9 skips finished chunks,
  deletes what a broken chunk left behind and copies it again.
- **Whose rows**: each chunk's transaction id on the target is handed to ``on_xact`` before
  that transaction writes, so every row the copy placed can later be told from a row someone
  else wrote (its ``xmin``), even after a crash between the commit and the chunk's record:
  ``rollback --schema`` after a failed copy drops only what is provably strangler's.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import pq, sql

from strangler.errors import BadInput
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import Chunk, binary_safe
from strangler.pg.schema.catalog import Catalog, Table, read_catalog
from strangler.pg.schema.ddl import search_path

__all__ = [
    "ChunkClaim",
    "ChunkDone",
    "Connections",
    "CopyProgress",
    "Endpoints",
    "OnXact",
    "check_snapshot_id",
    "copy_claimed_chunk",
    "copy_tables",
    "load_rows",
    "snapshot_transaction",
]

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")
_BATCH = 1 << 18  # bytes handed to libpq per PQputCopyData


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


# Called with a chunk and the target transaction id (xid8, as text) that writes it, before
# that transaction writes anything; it must have recorded the pair when it returns.
OnXact = Callable[[Chunk, str], None]


def _xact(conn: psycopg.Connection[Any], chunk: Chunk, on_xact: OnXact | None) -> None:
    """Hand the open transaction's id to ``on_xact`` (assigning one: it is about to write)."""
    if on_xact is None:
        return
    row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
    on_xact(chunk, str(row[0]) if row else "")


@dataclass(frozen=True)
class ChunkDone:
    chunk: Chunk
    rows: int
    bytes: int
    format: str  # sql | binary | text
    # Seconds from the chunk's first statement to its commit: a table's copy time is the sum
    # of its chunks' (worker time, not wall time: chunks of one table may run side by side).
    seconds: float = 0.0


class CopyProgress(Protocol):
    """What a display needs; calls come from worker threads."""

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None: ...

    def advance(self, table: str, rows: int, nbytes: int) -> None: ...


class ChunkClaim(Protocol):
    """A queue's hold on one chunk (issue 17: ``strangler worker``), inside the target
    transaction that copies it, so "copy chunk + mark it done" commits as one."""

    def take(self, target: psycopg.Connection[Any]) -> None:
        """Right after the target's BEGIN: lock the chunk's queue row; raise to give it up."""
        ...

    def finish(self, target: psycopg.Connection[Any], done: ChunkDone) -> None:
        """Right before the target's COMMIT: mark the chunk done with its figures."""
        ...


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


Connections = _Connections  # one source and one target connection per thread (workers)


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
        conn.execute(sql.SQL("TRUNCATE ONLY {}").format(target))
    else:
        conn.execute(sql.SQL("DELETE FROM ONLY {}{}").format(target, chunk.where()))


def _copy_chunk(
    pool: _Connections,
    catalog: Catalog,
    chunk: Chunk,
    snapshot: str,
    redo: bool,
    binary: bool,
    progress: CopyProgress | None,
    on_xact: OnXact | None = None,
) -> ChunkDone:
    ends = pool.ends
    table = catalog.table(chunk.table)
    names = table.copy_columns()
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    # A table of no columns (or only generated ones) still has rows: no column list then.
    listed = sql.SQL(" ({})").format(cols) if names else sql.SQL("")
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
        began = time.monotonic()
        with _rollback_on_error(conn):
            snapshot_transaction(conn, snapshot, read_only=False)
            conn.execute(search_path(ends.target_schema, local=True))
            _xact(conn, chunk, on_xact)
            if redo:
                _clear(conn, dst, chunk)
            cur = conn.execute(
                sql.SQL("INSERT INTO {}{} OVERRIDING SYSTEM VALUE SELECT {} FROM ONLY {}{}").format(
                    dst, listed, select, src, chunk.where()
                )
            )
            rows = cur.rowcount
            conn.execute("COMMIT")
        if progress:
            progress.advance(table.name, rows, 0)
        return ChunkDone(chunk, rows, 0, "sql", time.monotonic() - began)
    fmt = "binary" if binary else "text"
    try:
        return _stream(
            pool, table, chunk, snapshot, redo, fmt, progress, src, dst, cols, on_xact=on_xact
        )
    except (psycopg.errors.DataError, psycopg.errors.DatatypeMismatch):
        if fmt != "binary":
            raise
        # The target read the binary stream differently (types differ between versions):
        # the same chunk again, as text, which every version parses alike.
        return _stream(
            pool, table, chunk, snapshot, True, "text", progress, src, dst, cols, on_xact=on_xact
        )


def _result(conn: psycopg.Connection[Any], expect: pq.ExecStatus) -> pq.abc.PGresult:
    res = conn.pgconn.get_result()
    if res is None or res.status != expect:
        if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(res, encoding=conn.info.encoding)
        raise psycopg.OperationalError(f"unexpected COPY state: {res and res.status}")
    return res


def _drain(conn: psycopg.Connection[Any]) -> pq.abc.PGresult | None:
    """Read results until libpq has none; the last error, if any, is raised."""
    last = None
    while (res := conn.pgconn.get_result()) is not None:
        if res.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(res, encoding=conn.info.encoding)
        last = res
    return last


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
    claim: ChunkClaim | None = None,
    on_xact: OnXact | None = None,
) -> ChunkDone:
    """COPY out of the source straight into COPY in on the target, through libpq.

    psycopg's ``Copy`` objects cost a Python generator round trip per row; talking to libpq
    directly (blocking ``PQgetCopyData``, batched ``PQputCopyData``) moves the same bytes
    about three times faster, which matters because the bytes pass through this process.
    ``cols`` may be empty (a table of no columns, or only generated ones): no list then.
    Rows are read from the table ``ONLY``: an inheritance child's rows are its own to copy.
    """
    began = time.monotonic()
    s, t = pool.source(), pool.target()
    options = sql.SQL(" (FORMAT BINARY)" if fmt == "binary" else "")
    listed = sql.SQL(" ({})").format(cols) if table.copy_columns() else sql.SQL("")
    if chunk.pk is None:
        out_sql = sql.SQL("COPY {}{} TO STDOUT{}").format(src, listed, options)
    else:
        out_sql = sql.SQL("COPY (SELECT {} FROM ONLY {}{}) TO STDOUT{}").format(
            cols, src, chunk.where(), options
        )
    in_sql = sql.SQL("COPY {}{} FROM STDIN{}").format(dst, listed, options)
    nbytes = pending = 0
    with _rollback_on_error(s, t):
        snapshot_transaction(s, snapshot, read_only=True)
        t.execute("BEGIN")
        if claim is not None:
            claim.take(t)
        _xact(t, chunk, on_xact)
        if redo:
            _clear(t, dst, chunk)
        sp, tp = s.pgconn, t.pgconn
        try:
            sp.send_query(out_sql.as_bytes(s))
            _result(s, pq.ExecStatus.COPY_OUT)
            tp.send_query(in_sql.as_bytes(t))
            _result(t, pq.ExecStatus.COPY_IN)
            batch = bytearray()
            while True:
                n, data = sp.get_copy_data(0)
                if n <= 0:
                    break
                batch += data
                if len(batch) >= _BATCH:
                    tp.put_copy_data(bytes(batch))
                    pending += len(batch)
                    batch.clear()
                    if pending >= 1 << 22:
                        nbytes += pending
                        if progress:
                            progress.advance(table.name, 0, pending)
                        pending = 0
            if n == -2:
                raise psycopg.OperationalError(sp.get_error_message())
            if batch:
                tp.put_copy_data(bytes(batch))
                pending += len(batch)
            _drain(s)
            tp.put_copy_end()
            done = _drain(t)
        except BaseException:
            # Leave both connections usable for the rollback: end the COPY on the target
            # with an error, and let the source finish its (read-only) output.
            if tp.transaction_status == pq.TransactionStatus.ACTIVE:
                with contextlib.suppress(psycopg.Error):
                    tp.put_copy_end(b"strangler: copy aborted")
                with contextlib.suppress(psycopg.Error):
                    _drain(t)
            if sp.transaction_status == pq.TransactionStatus.ACTIVE:
                s.cancel_safe()
                with contextlib.suppress(psycopg.Error):
                    while sp.get_copy_data(0)[0] > 0:
                        pass
                    _drain(s)
            raise
        rows = int(done.command_tuples or 0) if done is not None else 0
        if claim is not None:
            claim.finish(t, ChunkDone(chunk, rows, nbytes + pending, fmt, time.monotonic() - began))
        t.execute("COMMIT")
        s.execute("COMMIT")
    if progress:
        progress.advance(table.name, rows, pending)
    return ChunkDone(chunk, rows, nbytes + pending, fmt, time.monotonic() - began)


def copy_claimed_chunk(
    pool: _Connections,
    catalog: Catalog,
    chunk: Chunk,
    snapshot: str,
    *,
    binary: bool,
    redo: bool,
    claim: ChunkClaim,
    progress: CopyProgress | None = None,
) -> ChunkDone:
    """Copy one chunk inside the target transaction ``claim`` holds (a queue's worker).

    Always streams COPY between two connections, also on one instance (``pool``'s endpoints
    then name the same database twice): ``INSERT … SELECT`` would need the queue's row and
    the exported snapshot in one transaction, and the snapshot cannot see that row.
    """
    ends = pool.ends
    table = catalog.table(chunk.table)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.copy_columns()))
    src = sql.Identifier(ends.source_schema, table.name)
    dst = sql.Identifier(ends.target_schema, table.name)
    fmt = "binary" if binary else "text"
    try:
        return _stream(pool, table, chunk, snapshot, redo, fmt, progress, src, dst, cols, claim)
    except (psycopg.errors.DataError, psycopg.errors.DatatypeMismatch):
        if fmt != "binary":
            raise
        return _stream(pool, table, chunk, snapshot, True, "text", progress, src, dst, cols, claim)


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
    then: Mapping[str, Sequence[Sequence[Callable[[], object]]]] | None = None,
    between: Callable[[], None] | None = None,
    on_xact: OnXact | None = None,
) -> list[ChunkDone]:
    """Copy ``chunks`` with ``jobs`` workers in ``snapshot``; ``on_done`` runs in this thread.

    ``redo`` holds the ids of chunks a broken run may have half-written: they are cleared
    first, in the same transaction as their copy. ``then[table]`` is the table's follow-up
    work in waves (its indexes, then the constraints that attach them): a wave's tasks run on
    the same workers, ahead of the chunks still waiting, as soon as the table's last chunk
    (or the wave before) is done, so index builds overlap the load of the other tables and
    share the workers at the end, as pgcopydb's do. ``between`` runs in this thread before
    each chunk starts (issue 17: the throttle, which may wait or raise there). ``on_xact``
    (called from the workers) receives each chunk's target transaction id before that
    transaction writes.
    """
    waves = {t: deque(list(w) for w in ws if w) for t, ws in (then or {}).items()}
    pool = _Connections(ends)
    queue: deque[tuple[str | None, Callable[[], object]]] = deque()
    left = {t: len(parts) for t, parts in chunks.items()}
    in_wave: dict[str, int] = {}

    def next_wave(table: str) -> None:
        if not waves.get(table):
            return
        wave = waves[table].popleft()
        in_wave[table] = len(wave)
        for task in reversed(wave):
            queue.appendleft((table, task))

    for table in [t for t in waves if not left.get(t)]:
        next_wave(table)
    for c in sorted(
        (c for parts in chunks.values() for c in parts),
        key=lambda c: (-catalog.table(c.table).bytes // max(1, len(chunks[c.table])), c.id),
    ):
        queue.append(
            (None, functools.partial(
                _copy_chunk, pool, catalog, c, snapshot, c.id in redo,
                binary.get(c.table, False), progress, on_xact,
            ))
        )  # fmt: skip
    done: list[ChunkDone] = []
    running: dict[Future[object], str | None] = {}
    # What ``between`` raised: no chunk starts after it, the running ones finish and are
    # recorded (a stop between chunks keeps every finished chunk), then it is raised.
    stopped: BaseException | None = None
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="copy") as ex:
            while queue or running:
                while queue and len(running) < max(1, jobs) and stopped is None:
                    if between is not None and queue[0][0] is None:
                        try:
                            between()
                        except Exception as exc:
                            stopped = exc
                            queue.clear()
                            break
                    owner, task = queue.popleft()
                    running[ex.submit(task)] = owner
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    owner = running.pop(fut)
                    try:
                        result = fut.result()
                    except BaseException:
                        queue.clear()  # work not started stays undone; the journal says so
                        raise
                    if owner is not None:
                        in_wave[owner] -= 1
                        if not in_wave[owner]:
                            next_wave(owner)
                    elif isinstance(result, ChunkDone):
                        done.append(result)
                        on_done(result)
                        left[result.chunk.table] -= 1
                        if not left[result.chunk.table]:
                            next_wave(result.chunk.table)
    finally:
        pool.close()
    if stopped is not None:
        raise stopped
    return done


def copy_tables(ends: Endpoints, tables: Sequence[str], *, snapshot: str) -> dict[str, int]:
    """Rows of ``tables`` as of ``snapshot`` into tables that already exist, empty, on the
    target; one table after the other in the order given (parents first, when the target
    already has its foreign keys), nothing journaled.

    For callers that own the DDL themselves (online sync's own tests build both sides by
    hand); the extraction plans chunks and records them with :func:`load_rows` directly.
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
