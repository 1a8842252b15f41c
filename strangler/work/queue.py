"""The chunk queue: one table in the target database, in strangler's own schema.

Why the target: a worker copies a chunk and marks it done in ONE target transaction, so a
kill -9 at any moment either leaves both (the chunk is done) or neither (the server rolls the
transaction back and releases the row lock, and another worker takes the chunk). Nothing is
lost and nothing is copied twice, however many workers run on however many machines.

A claim is a row lock, not a state change: ``SELECT … FOR UPDATE SKIP LOCKED`` inside the
worker's transaction (the way queue-in-PostgreSQL libraries do it), so a dead worker's claim
vanishes with its connection, and no "in progress" flag is ever left behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

__all__ = [
    "QUEUE",
    "Job",
    "QueueCounts",
    "WorkChunk",
    "claim",
    "clear",
    "copied_xacts",
    "counts",
    "enqueue",
    "ensure_queue",
    "fail",
    "finish",
    "finished",
    "lock_chunk",
]

SCHEMA = "_strangler"  # the schema sync keeps its position in (strangler's own)
QUEUE = sql.Identifier(SCHEMA, "work_chunks")
Job = Literal["copy", "verify"]
MAX_ATTEMPTS = 3  # a chunk that fails this often (not killed: raised) stops the queue

_DDL = """
CREATE TABLE IF NOT EXISTS {q} (
    service text NOT NULL,
    job text NOT NULL CHECK (job IN ('copy', 'verify')),
    chunk text NOT NULL,                 -- '<table>/<index>', the journal's chunk id
    ord integer NOT NULL,                -- biggest first, as the copy schedules them
    tbl text NOT NULL,
    pk text, lo bigint, hi bigint,       -- the key range; pk NULL: the whole table
    snapshot text,                       -- the exported snapshot a copy chunk is read in
    redo boolean NOT NULL DEFAULT false, -- an earlier copy may have left rows in the range
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    rows bigint, bytes bigint, format text,
    worker text, seconds double precision, done_at timestamptz,
    result jsonb,                        -- verify: each side's rows and hash
    error text,
    PRIMARY KEY (service, job, chunk),
    -- done means figures: a chunk cannot be done without the rows it moved or hashed
    CHECK (state <> 'done' OR rows IS NOT NULL)
)
"""


@dataclass(frozen=True)
class WorkChunk:
    """One unit of work: a key range of a table (or all of it), and how to read it."""

    service: str
    job: Job
    chunk: str
    ord: int
    table: str
    pk: str | None = None
    lo: int | None = None
    hi: int | None = None
    snapshot: str | None = None
    redo: bool = False


@dataclass(frozen=True)
class Finished:
    chunk: str
    table: str
    rows: int
    bytes: int
    format: str
    snapshot: str | None
    worker: str
    seconds: float
    result: dict[str, Any] | None


@dataclass(frozen=True)
class QueueCounts:
    pending: int = 0
    done: int = 0
    failed: int = 0
    workers: int = 0  # distinct workers that finished a chunk
    errors: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.pending + self.done + self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "done": self.done,
            "failed": self.failed,
            "workers": self.workers,
            "errors": list(self.errors),
        }


def ensure_queue(conn: psycopg.Connection[Any]) -> None:
    """Create strangler's schema and the queue table once (idempotent)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL(_DDL).format(q=QUEUE))


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.work_chunks",))
    return row.fetchone() == (True,)


def enqueue(conn: psycopg.Connection[Any], chunks: Sequence[WorkChunk], *, fresh: bool) -> None:
    """Put ``chunks`` on the queue in one transaction.

    ``fresh``: a new plan; the service's earlier rows of the same job go first. Otherwise
    (a resumed coordinator) ``chunks`` are the ones its journal does not hold as done: they
    go back to pending with the new snapshot and their redo flag, whatever the queue says
    (a restarted online copy emptied the tables those chunks had filled)."""
    if not chunks:
        return
    service, job = chunks[0].service, chunks[0].job
    with conn.transaction():
        ensure_queue(conn)
        if fresh:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE service = %s AND job = %s").format(QUEUE),
                (service, job),
            )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (service, job, chunk, ord, tbl, pk, lo, hi, snapshot, redo)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (service, job, chunk) DO UPDATE"
                    " SET snapshot = EXCLUDED.snapshot, redo = EXCLUDED.redo,"
                    "     state = 'pending', attempts = 0, error = NULL"
                ).format(QUEUE),
                [
                    (
                        c.service,
                        c.job,
                        c.chunk,
                        c.ord,
                        c.table,
                        c.pk,
                        c.lo,
                        c.hi,
                        c.snapshot,
                        c.redo,
                    )
                    for c in chunks
                ],
            )


_COLUMNS = sql.SQL("service, job, chunk, ord, tbl, pk, lo, hi, snapshot, redo")


def _chunk(row: Sequence[Any]) -> WorkChunk:
    return WorkChunk(*row)


def claim(
    conn: psycopg.Connection[Any], service: str, job: Job, *, skip: Sequence[str] = ()
) -> WorkChunk | None:
    """Lock the next pending chunk for the rest of ``conn``'s open transaction (None: none
    is free). ``skip``: chunks this worker cannot take now (their snapshot is gone)."""
    if not exists(conn):
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT {} FROM {} WHERE service = %s AND job = %s AND state = 'pending'"
            " AND chunk <> ALL (%s) ORDER BY ord LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).format(_COLUMNS, QUEUE),
        (service, job, list(skip)),
    ).fetchone()
    return None if row is None else _chunk(row)


def candidates(
    conn: psycopg.Connection[Any], service: str, job: Job, *, skip: Sequence[str] = ()
) -> list[WorkChunk]:
    """Pending chunks in order, unlocked (a copy worker locks one inside its copy)."""
    if not exists(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM {} WHERE service = %s AND job = %s AND state = 'pending'"
            " AND chunk <> ALL (%s) ORDER BY ord LIMIT 50"
        ).format(_COLUMNS, QUEUE),
        (service, job, list(skip)),
    ).fetchall()
    return [_chunk(r) for r in rows]


def lock_chunk(conn: psycopg.Connection[Any], chunk: WorkChunk) -> bool:
    """Inside ``conn``'s open transaction: lock ``chunk`` if it is still pending and free."""
    row = conn.execute(
        sql.SQL(
            "SELECT 1 FROM {} WHERE service = %s AND job = %s AND chunk = %s"
            " AND state = 'pending' FOR UPDATE SKIP LOCKED"
        ).format(QUEUE),
        (chunk.service, chunk.job, chunk.chunk),
    ).fetchone()
    return row is not None


def finish(
    conn: psycopg.Connection[Any],
    chunk: WorkChunk,
    *,
    rows: int,
    nbytes: int = 0,
    fmt: str = "",
    worker: str,
    seconds: float,
    result: dict[str, Any] | None = None,
) -> None:
    """Mark ``chunk`` done, inside the transaction that did its work (and holds its lock)."""
    cur = conn.execute(
        sql.SQL(
            "UPDATE {} SET state = 'done', rows = %s, bytes = %s, format = %s, worker = %s,"
            " seconds = %s, done_at = now(), result = %s::jsonb, error = NULL"
            " WHERE service = %s AND job = %s AND chunk = %s AND state = 'pending'"
        ).format(QUEUE),
        (
            rows,
            nbytes,
            fmt,
            worker,
            seconds,
            None if result is None else json.dumps(result),
            chunk.service,
            chunk.job,
            chunk.chunk,
        ),
    )
    if cur.rowcount != 1:  # the lock makes this impossible; say so loudly if it ever is not
        raise psycopg.errors.SerializationFailure(f"chunk {chunk.chunk} was not pending")


def fail(conn: psycopg.Connection[Any], chunk: WorkChunk, error: str, worker: str) -> bool:
    """Count a failed attempt (its own transaction); True when the chunk is now ``failed``."""
    row = conn.execute(
        sql.SQL(
            "UPDATE {} SET attempts = attempts + 1, error = %s, worker = %s,"
            " state = CASE WHEN attempts + 1 >= %s THEN 'failed' ELSE state END"
            " WHERE service = %s AND job = %s AND chunk = %s AND state = 'pending'"
            " RETURNING state"
        ).format(QUEUE),
        (error[:2000], worker, MAX_ATTEMPTS, chunk.service, chunk.job, chunk.chunk),
    ).fetchone()
    return row is not None and row[0] == "failed"


def counts(conn: psycopg.Connection[Any], service: str, job: Job) -> QueueCounts:
    if not exists(conn):
        return QueueCounts()
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE state = 'pending'),"
            " count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),"
            " count(DISTINCT worker) FILTER (WHERE state = 'done'),"
            " coalesce(array_agg(chunk || ': ' || error) FILTER (WHERE state = 'failed'), '{{}}')"
            " FROM {} WHERE service = %s AND job = %s"
        ).format(QUEUE),
        (service, job),
    ).fetchone()
    if row is None:
        return QueueCounts()
    return QueueCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), tuple(row[4]))


def copied_xacts(conn: psycopg.Connection[Any], service: str) -> list[str]:
    """The target transactions the service's copy chunks were written in, as ids.

    A worker marks its chunk done in the transaction that copied the chunk's rows, so the
    done row's ``xmin`` is that transaction: the rows it carries are strangler's own, which
    ``rollback --schema`` must tell from anyone else's (issue 17: a worker's rows passed for
    foreign ones, since workers journal nothing)."""
    if not exists(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT xmin::text FROM {} WHERE service = %s AND job = 'copy'"
            " AND state = 'done' ORDER BY 1"
        ).format(QUEUE),
        (service,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def finished(conn: psycopg.Connection[Any], service: str, job: Job) -> list[Finished]:
    """Every done chunk of ``job`` with its figures."""
    if not exists(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT chunk, tbl, rows, coalesce(bytes, 0), coalesce(format, ''), snapshot,"
            " coalesce(worker, ''), coalesce(seconds, 0), result"
            " FROM {} WHERE service = %s AND job = %s AND state = 'done' ORDER BY ord"
        ).format(QUEUE),
        (service, job),
    ).fetchall()
    return [Finished(*r) for r in rows]


def clear(conn: psycopg.Connection[Any], service: str, job: Job | None = None) -> int:
    """Forget the service's queue (one job, or all); returns the rows removed."""
    if not exists(conn):
        return 0
    if job is None:
        cur = conn.execute(sql.SQL("DELETE FROM {} WHERE service = %s").format(QUEUE), (service,))
    else:
        cur = conn.execute(
            sql.SQL("DELETE FROM {} WHERE service = %s AND job = %s").format(QUEUE),
            (service, job),
        )
    return cur.rowcount
