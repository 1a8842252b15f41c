"""``strangler worker SERVICE``: one process's share of a service's copy and verification
queue (issue 17), journaled as a ``worker`` event when it ends.

Not a phase step: the copy or verification that filled the queue is the step (it holds the
service's lock, owns the snapshot and moves the phase); any number of workers on any number
of machines help it, and exit when the queue is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from strangler.errors import StranglerError
from strangler.steps import bulk
from strangler.steps.records import Event
from strangler.steps.types import JournaledRef
from strangler.work.queue import Job
from strangler.work.worker import WorkerReport, default_worker_name, run_worker

__all__ = ["work"]


def work(
    rb: JournaledRef,
    *,
    jobs: Sequence[Job] = ("copy", "verify"),
    worker: str | None = None,
    idle_timeout: float = 600.0,
    poll: float = 0.5,
) -> WorkerReport:
    """Take ``jobs`` chunks of the service's queue until none is pending."""
    name = worker or default_worker_name()
    try:
        report = run_worker(
            bulk.work_target(rb.spec, rb.name),
            jobs=jobs,
            worker=name,
            brake=bulk.brake(rb, "worker"),
            idle_timeout=idle_timeout,
            poll=poll,
        )
    except StranglerError as exc:
        rb.journal.event(
            rb.name, Event.WORKER, status="failed", reason=exc.message, details={"worker": name}
        )
        raise
    rb.journal.event(rb.name, Event.WORKER, status="ok", details=report.to_dict())
    return report
