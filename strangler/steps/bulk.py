"""The bulk engines and the throttle, wired from the spec (issue 17).

- :func:`brake` builds the monolith's brake for a step (the spec's ``throttle:``), whose
  every change of decision is journaled as a ``throttle`` event;
- :func:`loader` chooses how the copy's rows move (``copy.engine``): strangler's own threads
  (with the brake between chunks), the chunk queue drained by ``strangler worker``
  processes, or AWS DMS;
- :func:`reconcile_queue` tells the journal about chunks workers finished while no copy
  was watching, so a resumed copy neither redoes nor forgets them.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from strangler.errors import SnapshotAged
from strangler.pg.connect import connect
from strangler.pg.copy.extract import Loader
from strangler.pg.copy.rows import load_rows
from strangler.spec import Spec, ThrottleSpec
from strangler.steps.records import ChunkRecord, Event
from strangler.steps.types import JournaledRef, ServiceRef
from strangler.throttle.brake import NO_BRAKE, Brake, Decision, Limits, MonolithBrake
from strangler.throttle.control import read_pause
from strangler.verify.report import VerifyReport
from strangler.work import queue
from strangler.work.loader import queue_loader
from strangler.work.verify import verify_by_queue
from strangler.work.worker import WorkTarget, default_worker_name

__all__ = [
    "brake",
    "engine_summary",
    "limits",
    "loader",
    "reconcile_queue",
    "verify_by_workers",
    "work_target",
]


def engine_summary(rb: ServiceRef, builtin: str) -> str:
    """How the plan says rows move; for DMS the table mappings are written (and checked)
    here, so a table DMS cannot select exactly fails ``strangler plan``, before any row."""
    svc = rb.service
    if svc.copy_.engine == "workers":
        return (
            "chunks on a queue in the service's database, taken by 'strangler worker' "
            "processes, each copied and marked done in one transaction"
        )
    if svc.copy_.engine == "dms":
        from strangler.dms.rules import table_mappings

        table_mappings(rb.spec.source.schema_, list(svc.tables), svc.target.schema_)
        return "an AWS DMS full-load task (DO_NOTHING) with strangler's table mappings"
    return builtin


def work_target(spec: Spec, service: str) -> WorkTarget:
    svc = spec.service(service)
    return WorkTarget(
        service,
        spec.source.dsn,
        spec.source.schema_,
        spec.target_dsn(service),
        svc.target.schema_,
        tuple(svc.tables),
    )


def limits(spec: ThrottleSpec, *, for_sync: bool = False) -> Limits:
    """The spec's throttle section as the brake's plain values."""
    return Limits(
        replica_lag=spec.max_replica_lag.total_seconds() if spec.max_replica_lag else None,
        wal_rate=float(spec.max_wal_rate) if spec.max_wal_rate else None,
        slot_retained=spec.max_slot_retained_wal,
        active_backends=spec.max_active_backends,
        lock_waits=spec.max_lock_waits,
        xmin_age=spec.max_xmin_age,
        query_sql=spec.query.sql if spec.query else None,
        query_max=spec.query.max if spec.query else None,
        prometheus_url=spec.prometheus.url if spec.prometheus else None,
        prometheus_query=spec.prometheus.query if spec.prometheus else None,
        prometheus_max=spec.prometheus.max if spec.prometheus else None,
        prometheus_timeout=spec.prometheus.timeout if spec.prometheus else 5.0,
        check_every=spec.check_every.total_seconds(),
        max_pause=spec.max_pause.total_seconds() if spec.max_pause else None,
        ignore_slot_wal=for_sync,
    )


def brake(rb: JournaledRef, what: str, *, for_sync: bool = False) -> Brake:
    """The service's brake for ``what`` (copy, verify, sync, worker). Each change of
    decision becomes a ``throttle`` event. Without a ``throttle:`` section it only obeys
    ``strangler throttle --pause`` (read from the service's database every 5 s)."""
    spec = rb.service.throttle
    target_dsn = rb.spec.target_dsn(rb.name)

    def pause() -> Any:
        with connect(target_dsn, role=f"{rb.name} target") as conn:
            return read_pause(conn, rb.name)

    def journal(decision: Decision) -> None:
        rb.journal.event(
            rb.name,
            Event.THROTTLE,
            status=decision.action,
            reason="; ".join(decision.reasons) or None,
            details={"for": what, **decision.to_dict()},
        )

    return MonolithBrake(
        # Without a throttle: section the brake still obeys 'strangler throttle --pause'.
        limits(spec, for_sync=for_sync) if spec else Limits(watch_health=False),
        connect=lambda: connect(rb.spec.source.dsn, role="monolith"),
        read_pause=pause,
        on_change=journal,
    )


class _SnapshotAge:
    """``copy.max_snapshot_age``: past it the copy stops between two chunks, releasing its
    snapshot (and the monolith's xmin horizon); run again, it keeps every finished chunk and
    goes on under a new snapshot, as after any interruption. An online copy in catch-up mode
    does that by itself (steps/online_copy.py)."""

    def __init__(self, inner: Brake, limit: float, service: str) -> None:
        self.inner, self.limit, self.service = inner, limit, service
        self.started = time.monotonic()
        self.begun = 0  # chunks begun under this snapshot

    def between(self, what: str) -> None:
        age = time.monotonic() - self.started
        # At least one chunk per snapshot, however short the limit: each run makes progress.
        if age > self.limit and self.begun:
            raise SnapshotAged(
                f"the copy's snapshot is {age:.0f}s old, more than copy.max_snapshot_age "
                f"({self.limit:g}s): stopped before the next {what} so the monolith's vacuum "
                "can move on",
                hint=f"run 'strangler copy {self.service}' again: it keeps the finished chunks "
                "and copies the rest under a new snapshot",
            )
        self.inner.between(what)
        self.begun += 1


def loader(rb: JournaledRef, brake_: Brake) -> Loader | None:
    """How the copy's rows move (None: the default, strangler's threads without a brake)."""
    engine = rb.service.copy_.engine
    age = rb.service.copy_.max_snapshot_age
    if age is not None and rb.service.strategy in ("copy", "online"):
        brake_ = _SnapshotAge(brake_, age.total_seconds(), rb.name)
    if engine == "workers":
        return queue_loader(
            work_target(rb.spec, rb.name),
            worker=f"{default_worker_name()} (copy)",
            brake=brake_,
            local_threads=rb.service.copy_.local_threads,
        )
    if engine == "dms":
        from strangler.steps.dms import dms_loader  # boto3 only when a spec asks for DMS

        return dms_loader(rb)
    return functools.partial(load_rows, between=lambda: brake_.between("chunk"))


def reconcile_queue(rb: JournaledRef) -> int:
    """Record in the journal every copy chunk the queue holds as done and the journal does
    not (workers finished them after their coordinator stopped); returns how many."""
    from strangler.steps.records import CopyPlan, Progress

    progress = Progress(rb.journal, rb.name)
    if rb.service.copy_.engine != "workers" or progress.load(CopyPlan) is None:
        return 0  # a first copy: what the queue holds is an earlier copy's, replaced
    known = progress.chunks()
    with connect(rb.spec.target_dsn(rb.name), role=f"{rb.name} target") as conn:
        done = queue.finished(conn, rb.name, "copy")
    added = 0
    for f in done:
        if f.chunk not in known:
            progress.save_chunk(f.chunk, ChunkRecord(f.rows, f.bytes, f.format, f.snapshot))
            added += 1
    return added


def verify_by_workers(
    spec: Spec,
    service: str,
    tables: list[str],
    *,
    mode: str,
    jobs: int = 2,
    brake_: Brake = NO_BRAKE,
    **tuning: Any,
) -> VerifyReport:
    """Verification through the queue, with ``jobs`` threads here (``copy.engine: workers``)."""
    svc = spec.service(service)
    return verify_by_queue(
        work_target(spec, service),
        tables,
        mode=mode,
        jobs=jobs if svc.copy_.local_threads is None else svc.copy_.local_threads,
        chunk_rows=svc.copy_.chunk_rows,
        brake=brake_,
        worker=f"{default_worker_name()} (verify)",
        **tuning,
    )
