"""``Action.VERIFY``: prove the copy, journal the verdict, and move the phase on a pass.

Verification is evidence: it may run whenever there is a copy. It moves the phase only out
of ``copied``/``syncing``, and only when it compared rows (``rows`` or ``checksum``) and
found none different. Every result is a ``verify`` event in the journal (the event comes
after the step, so ``strangler status`` shows the verdict); :func:`strangler.steps.
requirements.fresh_verification` reads it before writes or traffic move. A mistake in the
request (a table the service does not move, an unknown mode) is refused before anything is
journaled: it is not evidence, and neither is a server it cannot reach (a wrong password).
A verification made obsolete by a later change to the copy (a schema rollback, a re-copy) is
history, not evidence: requirements and ``strangler status`` say so.
"""

from __future__ import annotations

from typing import Any

from strangler.errors import BadInput, CheckFailed, StranglerError
from strangler.pg.connect import connect
from strangler.pg.sync import cdc
from strangler.pg.sync.position import read_position
from strangler.pg.sync.slot import slot_status
from strangler.phases import Action, Phase
from strangler.spec import Spec
from strangler.steps import bulk, sync
from strangler.steps.records import Event
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan
from strangler.steps.wiring import sync_route
from strangler.throttle.brake import NO_BRAKE, Brake
from strangler.verify.report import VerifyReport
from strangler.verify.service import MODES, verify_tables
from strangler.verify.watermark import SyncWatermark

__all__ = ["AUTO", "plan", "sync_watermark", "verify", "verify_service"]


class _Auto:
    """Marker: choose the watermark from the service's state (:func:`sync_watermark`)."""


AUTO = _Auto()


def sync_watermark(spec: Spec, service: str) -> SyncWatermark | None:
    """The watermark to recheck with: an online service whose forward sync has a slot and a
    stored position (before cutover); None otherwise, or when neither side can be read."""
    if spec.service(service).strategy != "online":
        return None
    route = sync_route(spec, service, "forward")
    try:
        with route.connect_source() as src:
            if not slot_status(src, route.slot).exists:
                return None
        with route.connect_target() as dst:
            if read_position(dst, route.slot) is None:
                return None
    except StranglerError:
        return None
    return cdc.Watermark(route)


def _tables(spec: Spec, service: str, tables: list[str] | None, mode: str) -> list[str]:
    svc = spec.service(service)
    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    chosen = tables or list(svc.tables)
    unknown = [t for t in chosen if t not in svc.tables]
    if unknown:
        raise BadInput(
            f"{service} does not move table(s) {', '.join(unknown)}; "
            f"it moves {', '.join(svc.tables)}",
            hint="pass --table with one of the service's tables, or none for all",
        )
    return chosen


def _reachable(spec: Spec, service: str) -> None:
    """Both servers answer with the spec's credentials, before the step is journaled: a
    wrong password or a server that is down is a mistake to fix (exit 3), not a verification
    that failed. (One that drops mid-way ends the step ``failed``, which is no verdict
    either: only ``verify`` events are, see :func:`strangler.steps.facts.last_verification`.)"""
    with connect(spec.source.dsn, role="monolith"):
        pass
    with connect(spec.target_dsn(service), role="service target"):
        pass


def verify_service(
    spec: Spec,
    service: str,
    *,
    tables: list[str] | None = None,
    mode: str = "rows",
    recheck: int = 0,
    watermark: SyncWatermark | None = None,
    brake: Brake = NO_BRAKE,
    **tuning: Any,
) -> VerifyReport:
    """Compare each table of ``service`` in the monolith with its copy. Changes nothing.

    ``strategy: move``: each of the service's tables with the monolith's compatibility view
    of it, the table as the source (its primary key names the rows), on the one instance.
    With ``copy.engine: workers`` the chunks go through the queue (``brake`` between them)."""
    chosen = _tables(spec, service, tables, mode)
    svc = spec.service(service)
    if svc.strategy == "move":
        return verify_tables(
            service,
            spec.source.dsn,
            svc.target.schema_,
            spec.source.dsn,
            spec.source.schema_,
            chosen,
            mode=mode,
            recheck=recheck,
            **tuning,
        )
    if svc.copy_.engine == "workers" and mode != "counts" and watermark is None:
        # issue 17: chunks hashed by `strangler worker` processes through the queue
        return bulk.verify_by_workers(spec, service, chosen, mode=mode, brake_=brake, **tuning)
    return verify_tables(
        service,
        spec.source.dsn,
        spec.source.schema_,
        spec.target_dsn(service),
        svc.target.schema_,
        chosen,
        mode=mode,
        recheck=recheck,
        watermark=watermark,
        **tuning,
    )


def verify(
    rb: Runbook,
    *,
    tables: list[str] | None = None,
    mode: str = "rows",
    recheck: int = 0,
    watermark: SyncWatermark | _Auto | None = AUTO,
    force: bool = False,
    reason: str | None = None,
    **tuning: Any,
) -> VerifyReport:
    """Verify inside the runbook's VERIFY step and journal the result as a ``verify`` event.

    A failed verification is a result, not a crash: the step ends ``ok`` without moving the
    phase, and the event after it says ``failed`` with the counts and the first differing
    keys. Resumable: a verification killed halfway changed nothing, so it simply runs again.
    """
    _tables(rb.spec, rb.name, tables, mode)
    _reachable(rb.spec, rb.name)
    mark = sync_watermark(rb.spec, rb.name) if isinstance(watermark, _Auto) else watermark
    with rb.step(Action.VERIFY, force=force, reason=reason, resumable=True) as step:
        report = verify_service(
            rb.spec, rb.name, tables=tables, mode=mode, recheck=recheck, watermark=mark,
            brake=bulk.brake(rb, "verify"), **tuning,
        )  # fmt: skip
        step.details.update(status=report.status, mode=report.mode)
        step.advance = report.passed and report.mode != "counts"
        verdict = (report.status, report.summary())
        step.on_ok.append(
            lambda: rb.journal.event(rb.name, Event.VERIFY, status=verdict[0], details=verdict[1])
        )
    return report


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    online = svc.strategy == "online"
    if svc.strategy == "move":
        ops = [
            Operation(
                "monolith instance",
                f"hash {svc.target.schema_}.{t} (the table) and {rb.spec.source.schema_}.{t} "
                "(the monolith's view of it); cut ranges that differ down to rows",
            )
            for t in svc.tables
        ]
    else:
        ops = [
            Operation(
                "monolith and service, at once",
                f"hash {rb.spec.source.schema_}.{t} and {svc.target.schema_}.{t} by key range; "
                "cut ranges that differ down to rows",
            )
            for t in svc.tables
        ]
    return StepPlan(
        action=Action.VERIFY.value,
        source=(Phase.SYNCING if online else Phase.COPIED).value,
        target=Phase.VERIFIED.value,
        summary="prove the copy: counts, chunked checksums, the exact rows that differ",
        operations=tuple(ops),
    )


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    if rb.service.strategy == "online":
        drained = sync.drain(rb, opts.drain_timeout)
        opts.say(f"{rb.name}: sync drained ({drained.rows:,} rows applied)")
    report = verify(rb, recheck=opts.recheck)
    if not report.passed:
        raise CheckFailed(
            f"{rb.name}: the verification found differences "
            f"({sum(len(t.rows) for t in report.tables)} row(s))",
            hint=f"'strangler verify {rb.name}' names them; repair the copy, then "
            f"'strangler run {rb.name}' again",
        )
    return Advanced(Action.VERIFY.value, rb.phase.value, "verified: no difference", report)
