"""``strangler worker SERVICE``: one process's share of a service's copy and verification
queue (issue 17), journaled as a ``worker`` event when it ends.

Not a phase step: the copy or verification that filled the queue is the step (it holds the
service's lock, owns the snapshot and moves the phase); any number of workers on any number
of machines help it, and exit when the queue is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from strangler.errors import BadInput, StranglerError, file_problem
from strangler.infra import k8s_job
from strangler.infra.k8s import Kube
from strangler.steps import bulk
from strangler.steps.records import Event
from strangler.steps.types import JournaledRef
from strangler.work.queue import Job
from strangler.work.worker import WorkerReport, default_worker_name, run_worker

__all__ = ["apply_worker_job", "work", "worker_job"]


def work(
    rb: JournaledRef,
    *,
    jobs: Sequence[Job] = ("copy", "verify"),
    worker: str | None = None,
    idle_timeout: float = 600.0,
    poll: float = 0.5,
    wait_for_queue: float = 0.0,
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
            wait_for_queue=wait_for_queue,
        )
    except StranglerError as exc:
        rb.journal.event(
            rb.name, Event.WORKER, status="failed", reason=exc.message, details={"worker": name}
        )
        raise
    rb.journal.event(rb.name, Event.WORKER, status="ok", details=report.to_dict())
    return report


def worker_job(rb: JournaledRef, *, parallelism: int | None = None) -> k8s_job.WorkerJob:
    """The ConfigMap and Indexed Job of ``copy.workers`` (``parallelism`` overrides it)."""
    workers = rb.service.copy_.workers
    if workers is None:
        raise BadInput(
            f"services.{rb.name}.copy.workers is not set, so strangler knows no image to run",
            hint="add copy: {engine: workers, workers: {image: …, namespace: …}} to the service",
        )
    if rb.spec.path is None:
        raise BadInput("the spec was not read from a file; the workers need one to mount")
    try:
        text = rb.spec.path.read_text(encoding="utf-8")
    except OSError as exc:
        raise file_problem(rb.spec.path, exc, "read the spec") from exc
    return k8s_job.worker_job(
        rb.name,
        text,
        image=workers.image,
        namespace=workers.namespace,
        parallelism=parallelism or workers.parallelism,
        backoff_limit=workers.backoff_limit,
        secret=workers.secret,
        requests=workers.requests,
        limits=workers.limits,
        service_account=workers.service_account,
        sqlite_state=rb.spec.state.startswith("sqlite:"),
    )


def apply_worker_job(rb: JournaledRef, job: k8s_job.WorkerJob) -> list[str]:
    """Create the objects through the Kubernetes API; journaled as a ``workers_job`` event."""
    workers = rb.service.copy_.workers
    assert workers is not None  # worker_job() refused a spec without it
    config = rb.spec.resolve(workers.kubeconfig) if workers.kubeconfig else None
    kube = Kube.connect(config, workers.context)
    try:
        done = k8s_job.apply(kube, job)
    finally:
        kube.close()
    rb.journal.event(
        rb.name,
        Event.WORKERS_JOB,
        status="ok",
        details={"namespace": job.namespace, "done": done, "job": job.job["metadata"]["name"]},
    )
    return done
