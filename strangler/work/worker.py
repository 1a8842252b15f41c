"""``strangler worker SERVICE``: take chunks from the queue until it is empty.

A copy chunk: the pending chunks are listed without a lock, then the worker tries them in
order: inside the copy's target transaction it locks the chunk's row (``FOR UPDATE SKIP
LOCKED``: taken by someone else means try the next), streams the range from the source under
the chunk's snapshot, marks the row done and commits. A verification chunk: the next free
row is locked, each side hashes the range, the row gets both results, commit. A worker that
dies leaves its transaction to the server, which rolls it back: the chunk is pending again.

A worker exits when no chunk of its jobs is pending any more (chunks other workers hold
still count: they may die). Chunks whose snapshot is gone (the copy that exported it
stopped) are skipped; when nothing else is left the worker waits ``idle_timeout`` for a new
``strangler copy`` to hand out a live snapshot, then gives up saying so.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.errors import CheckFailed, ChunkTaken
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import Chunk, binary_safe
from strangler.pg.copy.rows import ChunkDone, Connections, Endpoints, copy_claimed_chunk
from strangler.pg.schema.catalog import Catalog, read_catalog
from strangler.throttle.brake import NO_BRAKE, Brake
from strangler.verify.canonical import NATIVE_HASH_VERSION, pin_session, read_shape
from strangler.verify.table import Side, TableVerifier
from strangler.work import queue
from strangler.work.queue import Job, WorkChunk

__all__ = ["WorkTarget", "WorkerReport", "default_worker_name", "run_worker"]


@dataclass(frozen=True)
class WorkTarget:
    """Where one service's chunks are read and written (``target_dsn`` is always given: the
    monolith's own DSN when the service lives on the same instance)."""

    service: str
    source_dsn: str
    source_schema: str
    target_dsn: str
    target_schema: str
    tables: tuple[str, ...]

    @property
    def endpoints(self) -> Endpoints:
        # Two connections even on one instance: the queue's row and the snapshot's rows must
        # be in different transactions (see copy_claimed_chunk).
        return Endpoints(self.source_dsn, self.source_schema, self.target_dsn, self.target_schema)


@dataclass
class WorkerReport:
    worker: str
    chunks: dict[str, int] = field(default_factory=lambda: {"copy": 0, "verify": 0})
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped_dead_snapshots: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, job: Job, rows: int, nbytes: int) -> None:
        with self._lock:
            self.chunks[job] += 1
            self.rows += rows
            self.bytes += nbytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "chunks": dict(self.chunks),
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "skipped_dead_snapshots": self.skipped_dead_snapshots,
            "failures": list(self.failures),
        }


def default_worker_name() -> str:
    """``$JOB_COMPLETION_INDEX`` of an Indexed Job's pod, else host and pid."""
    index = os.environ.get("JOB_COMPLETION_INDEX")
    host = socket.gethostname()
    return f"{host}#{index}" if index is not None else f"{host}:{os.getpid()}"


class _Claim:
    """The queue's side of one copy chunk, inside its target transaction."""

    def __init__(self, chunk: WorkChunk, worker: str) -> None:
        self.chunk, self.worker = chunk, worker
        self.started = time.monotonic()

    def take(self, target: psycopg.Connection[Any]) -> None:
        if not queue.lock_chunk(target, self.chunk):
            raise ChunkTaken(f"chunk {self.chunk.chunk} is taken or done")

    def finish(self, target: psycopg.Connection[Any], done: ChunkDone) -> None:
        queue.finish(
            target,
            self.chunk,
            rows=done.rows,
            nbytes=done.bytes,
            fmt=done.format,
            worker=self.worker,
            seconds=time.monotonic() - self.started,
        )


def _chunk_of(work: WorkChunk) -> Chunk:
    return Chunk(work.table, int(work.chunk.rsplit("/", 1)[1]), work.pk, work.lo, work.hi)


@contextlib.contextmanager
def _own_snapshot(dsn: str) -> Iterator[str]:
    """A snapshot exported for one chunk (a chunk queued without one)."""
    with connect(dsn, role="monolith") as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield str(row[0])
        conn.execute("COMMIT")


def _snapshot_gone(exc: psycopg.Error) -> bool:
    """``SET TRANSACTION SNAPSHOT`` of a snapshot whose exporting transaction ended."""
    gone = (psycopg.errors.UndefinedObject, psycopg.errors.InvalidParameterValue)
    return isinstance(exc, gone) and "snapshot" in str(exc)


class _Loop:
    """One thread of a worker: its own connections, the shared report and stop flag."""

    def __init__(
        self,
        target: WorkTarget,
        name: str,
        report: WorkerReport,
        brake: Brake,
        stop: threading.Event,
        idle_timeout: float,
        poll: float,
        on_chunk: Callable[[Job, WorkChunk, int], None],
    ) -> None:
        self.target, self.name, self.report, self.brake = target, name, report, brake
        self.stop, self.idle_timeout, self.poll, self.on_chunk = stop, idle_timeout, poll, on_chunk
        self.dead: set[str] = set()
        self.wait_for_queue = 0.0
        self.started = time.monotonic()
        self.app = f"strangler worker {name}"[:63]  # how a DBA sees it in pg_stat_activity

    def _wait_or_finish(self, scout: psycopg.Connection[Any], job: Job, idle: float) -> bool:
        """After finding nothing to take: True when the job is finished; else wait a poll."""
        now = queue.counts(scout, self.target.service, job)
        if now.failed:
            raise CheckFailed(
                f"{now.failed} {job} chunk(s) of {self.target.service} failed "
                f"{queue.MAX_ATTEMPTS} times: " + "; ".join(now.errors[:3]),
                hint="fix the cause, then run 'strangler copy' (or verify) again: it puts "
                "failed chunks back on the queue",
            )
        if now.total == 0 and time.monotonic() - self.started < self.wait_for_queue:
            self.stop.wait(self.poll)  # started before the copy filled the queue
            return False
        if now.pending == 0:
            return True
        if idle > self.idle_timeout:
            raise CheckFailed(
                f"{now.pending} {job} chunk(s) of {self.target.service} stayed out of reach "
                f"for {self.idle_timeout:g}s: their snapshot is gone (the 'strangler copy' "
                "that exported it stopped) or other workers hold them",
                hint=f"run 'strangler copy {self.target.service}' again: it hands the "
                "chunks left a new snapshot, and workers take them",
            )
        self.stop.wait(self.poll)
        return False

    # ------------------------------------------------------------------------- copy

    def copy(self) -> None:
        t = self.target
        pool = Connections(t.endpoints)
        with (
            connect(t.target_dsn, role=f"{t.service} target", application_name=self.app) as scout,
            connect(t.source_dsn, role="monolith", application_name=self.app) as source,
        ):
            catalog: Catalog | None = None
            binary: dict[str, bool] = {}
            idle_since = time.monotonic()
            try:
                while not self.stop.is_set():
                    found = queue.candidates(scout, t.service, "copy", skip=sorted(self.dead))
                    if not found:
                        if self._wait_or_finish(scout, "copy", time.monotonic() - idle_since):
                            return
                        continue
                    if catalog is None:
                        catalog = read_catalog(source, t.source_schema, list(t.tables))
                        binary = binary_safe(source, catalog)
                    self.brake.between("chunk")
                    if self._copy_one(pool, scout, catalog, binary, found):
                        idle_since = time.monotonic()
                    else:
                        self.stop.wait(self.poll)
            finally:
                pool.close()

    def _copy_one(
        self,
        pool: Connections,
        scout: psycopg.Connection[Any],
        catalog: Catalog,
        binary: dict[str, bool],
        found: Sequence[WorkChunk],
    ) -> bool:
        """Try the candidates in order; True when one was copied."""
        for work in found:
            claim = _Claim(work, self.name)
            try:
                if work.snapshot is None:
                    with _own_snapshot(self.target.source_dsn) as snap:
                        done = copy_claimed_chunk(
                            pool, catalog, _chunk_of(work), snap,
                            binary=binary.get(work.table, False), redo=work.redo, claim=claim,
                        )  # fmt: skip
                else:
                    done = copy_claimed_chunk(
                        pool, catalog, _chunk_of(work), work.snapshot,
                        binary=binary.get(work.table, False), redo=work.redo, claim=claim,
                    )  # fmt: skip
            except ChunkTaken:
                continue
            except psycopg.OperationalError:
                raise  # a lost server: this worker stops; its chunk goes back by itself
            except psycopg.Error as exc:
                if _snapshot_gone(exc):
                    self.dead.add(work.chunk)
                    self.report.skipped_dead_snapshots += 1
                    continue
                if queue.fail(scout, work, str(exc).strip(), self.name):
                    self.report.failures.append(f"{work.chunk}: {str(exc).strip()}")
                continue
            self.report.add("copy", done.rows, done.bytes)
            self.on_chunk("copy", work, done.rows)
            return True
        return False

    # ----------------------------------------------------------------------- verify

    def verify(self) -> None:
        t = self.target
        with (
            connect(t.target_dsn, role=f"{t.service} target", application_name=self.app) as tgt,
            connect(t.source_dsn, role="monolith", application_name=self.app) as src,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-chunk") as pool,
        ):
            for conn in (src, tgt):
                pin_session(conn)
            oldest = min(src.info.server_version, tgt.info.server_version)
            verifiers: dict[str, TableVerifier] = {}
            idle_since = time.monotonic()
            while not self.stop.is_set():
                self.brake.between("chunk")
                started = time.monotonic()
                with tgt.transaction():
                    work = queue.claim(tgt, t.service, "verify")
                    if work is not None:
                        verifier = verifiers.get(work.table)
                        if verifier is None:
                            verifier = verifiers[work.table] = self._verifier(
                                src, tgt, pool, work.table, oldest
                            )
                        (sn, sh), (tn, th) = verifier.range_hashes(work.lo, work.hi)
                        queue.finish(
                            tgt,
                            work,
                            rows=max(sn, tn),
                            worker=self.name,
                            seconds=time.monotonic() - started,
                            result={"source": [sn, sh], "target": [tn, th]},
                        )
                if work is None:
                    if self._wait_or_finish(tgt, "verify", time.monotonic() - idle_since):
                        return
                    continue
                idle_since = time.monotonic()
                self.report.add("verify", max(sn, tn), 0)
                self.on_chunk("verify", work, max(sn, tn))

    def _verifier(
        self,
        src: psycopg.Connection[Any],
        tgt: psycopg.Connection[Any],
        pool: ThreadPoolExecutor,
        table: str,
        oldest: int,
    ) -> TableVerifier:
        t = self.target
        s_shape = read_shape(src, t.source_schema, table)
        t_shape = read_shape(tgt, t.target_schema, table)
        if s_shape is None or t_shape is None:
            raise CheckFailed(
                f"table {table} is missing on the " + ("monolith" if s_shape is None else "target"),
                hint=f"'strangler verify {t.service}' names what is missing",
            )
        return TableVerifier(
            Side(src, s_shape),
            Side(tgt, t_shape),
            pool=pool,
            trim_scale=oldest >= 130000,
            native_hash=oldest >= NATIVE_HASH_VERSION,
        )


def run_worker(
    target: WorkTarget,
    *,
    jobs: Sequence[Job] = ("copy", "verify"),
    worker: str | None = None,
    brake: Brake = NO_BRAKE,
    threads: int = 1,
    idle_timeout: float = 600.0,
    poll: float = 0.5,
    stop: threading.Event | None = None,
    on_chunk: Callable[[Job, WorkChunk, int], None] = lambda _j, _w, _n: None,
    wait_for_queue: float = 0.0,
) -> WorkerReport:
    """Work ``jobs`` of ``target.service`` in order until each has no pending chunk.

    ``threads``: loops side by side, each with its own connections (the copy's coordinator
    runs its ``--jobs`` this way); a failure in one stops the others and is raised.
    ``wait_for_queue``: seconds to wait for a job's queue to be filled at all (a pod that
    starts before ``strangler copy`` planned the chunks).
    """
    name = worker or default_worker_name()
    report = WorkerReport(name)
    stop = stop or threading.Event()
    started = time.monotonic()
    for job in jobs:
        errors: list[BaseException] = []

        def run(index: int, job: Job = job, errors: list[BaseException] = errors) -> None:
            loop = _Loop(
                target, name if threads == 1 else f"{name}/{index}", report, brake, stop,
                idle_timeout, poll, on_chunk,
            )  # fmt: skip
            loop.wait_for_queue = wait_for_queue if job == jobs[0] else 0.0
            try:
                loop.copy() if job == "copy" else loop.verify()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        if stop.is_set():
            break
    report.seconds = time.monotonic() - started
    return report
