"""The copy's side of the queue: put the planned chunks on it, work beside the workers, and
hand each finished chunk back to the step as :func:`strangler.pg.copy.rows.load_rows` would.

:func:`queue_loader` returns a :data:`strangler.pg.copy.extract.Loader`. The coordinator
(``strangler copy`` with ``copy.engine: workers``) keeps the exported snapshot open while the
queue drains; ``strangler worker`` processes anywhere import it per chunk. The coordinator
works too (``--jobs`` threads), so the copy finishes even with no worker started. When every
chunk is done, each table's index builds and constraints run here, as in ``load_rows``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from strangler.errors import CheckFailed
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import Chunk
from strangler.pg.copy.extract import Loader
from strangler.pg.copy.rows import ChunkDone, CopyProgress, Endpoints, OnXact
from strangler.pg.schema.catalog import Catalog
from strangler.throttle.brake import NO_BRAKE, Brake
from strangler.work import queue
from strangler.work.queue import Job, WorkChunk
from strangler.work.worker import WorkTarget, run_worker

__all__ = ["follow_up", "queue_loader", "wait_drained", "work_chunks"]


def work_chunks(
    service: str,
    catalog: Catalog,
    chunks: Mapping[str, list[Chunk]],
    snapshot: str | None,
    redo: set[str],
) -> list[WorkChunk]:
    """The queue rows of ``chunks``, biggest tables' chunks first (as load_rows orders)."""
    ordered = sorted(
        (c for parts in chunks.values() for c in parts),
        key=lambda c: (-catalog.table(c.table).bytes // max(1, len(chunks[c.table])), c.id),
    )
    return [
        WorkChunk(service, "copy", c.id, i, c.table, c.pk, c.lo, c.hi, snapshot, c.id in redo)
        for i, c in enumerate(ordered)
    ]


def queue_loader(
    target: WorkTarget,
    *,
    worker: str,
    brake: Brake = NO_BRAKE,
    poll: float = 0.5,
    idle_timeout: float = 600.0,
    local_threads: int | None = None,
) -> Loader:
    """A loader that drains the service's copy queue with ``jobs`` local threads (or
    ``local_threads``; 0: none, only workers) and any number of ``strangler worker``
    processes."""

    def load(
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
        # The queue's own rows say which chunk a worker's transaction wrote; ``on_xact``
        # (the journal's record of a threaded copy's transactions) is not called here.
        by_id = {c.id: c for parts in chunks.values() for c in parts}
        rows = work_chunks(target.service, catalog, chunks, snapshot, redo)
        with connect(target.target_dsn, role=f"{target.service} target") as conn:
            # A first plan replaces whatever an earlier copy left; a resumed one hands its
            # pending chunks the new snapshot (the journal already knows every done chunk).
            queue.enqueue(conn, rows, fresh=not redo)
            done: list[ChunkDone] = []
            seen: set[str] = set()
            errors: list[BaseException] = []
            finished = threading.Event()
            threads = jobs if local_threads is None else local_threads

            def work() -> None:
                try:
                    run_worker(
                        target, jobs=("copy",), worker=worker, brake=brake, threads=threads,
                        idle_timeout=idle_timeout, poll=poll,
                    )  # fmt: skip
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    finished.set()

            local = threading.Thread(target=work, name="copy-queue", daemon=True)
            if threads:
                local.start()
            moved = [time.monotonic()]

            def collect() -> None:
                """Hand every chunk finished since the last look to the step."""
                for f in queue.finished(conn, target.service, "copy"):
                    if f.chunk in seen or f.chunk not in by_id:
                        continue
                    seen.add(f.chunk)
                    moved[0] = time.monotonic()
                    result = ChunkDone(by_id[f.chunk], f.rows, f.bytes, f.format)
                    done.append(result)
                    on_done(result)
                    if progress:
                        progress.advance(f.table, f.rows, f.bytes)

            while True:
                stop_now = finished.wait(poll) and not errors
                collect()
                if errors:
                    local.join()
                    raise errors[0]
                if not threads:
                    stop_now = _drained(conn, target, time.monotonic() - moved[0], idle_timeout)
                if stop_now:
                    break
            if threads:
                local.join()
            collect()
            missing = sorted(set(by_id) - seen)
            if missing:
                counts = queue.counts(conn, target.service, "copy")
                raise CheckFailed(
                    f"the copy queue of {target.service} ended with {len(missing)} chunk(s) "
                    f"not done ({', '.join(missing[:5])}): " + "; ".join(counts.errors[:3]),
                    hint=f"run 'strangler copy {target.service}' again",
                )
        follow_up(then or {}, jobs)
        return done

    return load


def _drained(
    conn: Any, target: WorkTarget, quiet: float, idle_timeout: float, job: Job = "copy"
) -> bool:
    """Without local threads: True once no chunk is pending; raise on failures or when no
    worker finished a chunk for ``idle_timeout`` seconds."""
    now = queue.counts(conn, target.service, job)
    if now.failed:
        raise CheckFailed(
            f"{now.failed} {job} chunk(s) of {target.service} failed {queue.MAX_ATTEMPTS} "
            "times: " + "; ".join(now.errors[:3]),
            hint=f"fix the cause, then run 'strangler {job} {target.service}' again",
        )
    if now.pending == 0:
        return True
    if quiet > idle_timeout:
        raise CheckFailed(
            f"no worker finished a {job} chunk of {target.service} for {idle_timeout:g}s "
            f"({now.pending} pending) and copy.local_threads is 0",
            hint=f"start workers ('strangler worker {target.service}' or 'strangler k8s "
            f"{target.service}'), then run 'strangler {job} {target.service}' again",
        )
    return False


def wait_drained(
    conn: Any, target: WorkTarget, job: Job, *, idle_timeout: float = 600.0, poll: float = 0.5
) -> None:
    """Block until no chunk of ``job`` is pending (workers elsewhere do the work)."""
    last, moved = -1, time.monotonic()
    while True:
        done = queue.counts(conn, target.service, job).done
        if done != last:
            last, moved = done, time.monotonic()
        if _drained(conn, target, time.monotonic() - moved, idle_timeout, job):
            return
        time.sleep(poll)


def follow_up(then: Mapping[str, Sequence[Sequence[Callable[[], object]]]], jobs: int) -> None:
    """Each table's waves (indexes side by side, then the constraints on them)."""
    depth = max((len(w) for w in then.values()), default=0)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="keys") as pool:
        for level in range(depth):
            tasks = [t for waves in then.values() if len(waves) > level for t in waves[level]]
            for fut in [pool.submit(task) for task in tasks]:
                fut.result()
