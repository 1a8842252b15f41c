"""``strangler decommission SERVICE``: the runbook's post-migration checklist, then its "Then:"
list, each step gated and journaled.

0. :func:`check` (``--check``, :mod:`strangler.steps.decommission_check`): put the write
   guard on the old tables if it is not there, gather every item of the checklist
   (:mod:`strangler.checks.decommission`), journal the verdicts, and mark the service
   ``stable`` when they all hold at 100 % traffic;
1. ``mark_stable`` (traffic_complete → stable): the evidence of ``--check`` holds;
2. ``remove_old_path`` (stable → old_path_removed): the old route removed from the router
   when one is configured, the old tables archived (``pg_dump -Fc`` + sha256) and moved to
   ``retired_<service>``;
3. ``decommission`` (old_path_removed → decommissioned), in a later run once
   ``drop_old_tables_after`` has passed: the retired tables dropped, the infrastructure repo
   tagged ``v1.0.0-<service>-decommissioned``.

``stable`` is not proof that the old tables may go today: each step's requirements
(:data:`strangler.steps.requirements.REQUIREMENTS`) are checked again inside the lock when it
acts. Before the archive and rename: the newest check passed, no write to the old tables
within ``write_window`` (measured now), nothing depends on them; before the drop: the grace
period, the archive's sha256 (computed now), and no write to the retired tables since.

:func:`decommission` goes as far as the gates allow and says what remains and when.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from strangler.checks.base import CheckResult, blocking
from strangler.checks.decommission import MetricWindowSource
from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.infra.gitrepo import InfraRepo, decommission_tag
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.pg.sync import cdc
from strangler.phases import Action, Phase
from strangler.spec import Spec
from strangler.steps import archives
from strangler.steps import compat as moved_views
from strangler.steps.decommission_check import DecommissionCheck, check, gather
from strangler.steps.preflight import waiting_or_raise
from strangler.steps.records import ArchiveRecord, GuardOff
from strangler.steps.requirements import grace_period_over, stated
from strangler.steps.runbook import Runbook
from strangler.steps.types import (
    Advanced,
    Operation,
    Outcome,
    RunOptions,
    ServiceRef,
    StepPlan,
    Waiting,
)
from strangler.steps.wiring import metric_source, router, sync_route
from strangler.traffic.base import Weights

__all__ = [
    "DecommissionCheck",
    "DecommissionReport",
    "RouteRemover",
    "check",
    "decommission",
    "gather",
    "metric_source_of",
    "plan",
    "route_remover",
]

RouteRemover = Callable[[], dict[str, Any]]


@dataclass
class DecommissionReport:
    service: str
    phase: str
    done: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[CheckResult] = field(default_factory=list)
    waiting: str | None = None
    until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "phase": self.phase,
            "done": self.done,
            "evidence": [r.to_dict() for r in self.evidence],
            "waiting": self.waiting,
        }


def metric_source_of(spec: Spec, service: str) -> MetricWindowSource | None:
    """The spec's ``traffic.metrics`` source when it keeps history; None for none, and for
    the router's own counters (kind ``router``), which the checks read from the walk's
    bakes in the journal instead (:func:`strangler.steps.facts.bake_figures`)."""
    svc = spec.service(service)
    if svc.traffic is None or svc.traffic.metrics is None:
        return None
    if svc.traffic.metrics.kind == "router":
        return None
    return metric_source(spec, service, None)


def route_remover(spec: Spec, service: str) -> RouteRemover | None:
    """Takes the monolith off the route: ``remove_monolith()`` where the router has one,
    else holds the monolith's weight at 0 and says so."""
    if spec.service(service).traffic is None:
        return None

    def remove() -> dict[str, Any]:
        found = router(spec, service)
        remove_monolith = getattr(found, "remove_monolith", None)
        if callable(remove_monolith):
            remove_monolith()
            return {"removed": True, "router": found.describe()}
        held = found.set_weights(Weights.from_pair(0, 100))
        return {
            "removed": False,
            "weights": str(held),
            "router": found.describe(),
            "why": f"the {found.kind} router has no remove operation; monolith held at 0",
        }

    return remove


def _server_major(dsn: str) -> int:
    with connect(dsn, role="monolith") as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) // 10000 if row else 0


def decommission(
    rb: Runbook,
    *,
    source: MetricWindowSource | None = None,
    remove_route: RouteRemover | None = None,
    dry_run: bool = False,
    force: bool = False,
    reason: str | None = None,
) -> DecommissionReport:
    spec, svc, name = rb.spec, rb.service, rb.name
    report = DecommissionReport(name, rb.phase.value)
    schema, tables = spec.source.schema_, list(svc.tables)
    retired = T.retired_schema(name)
    if rb.phase not in (Phase.TRAFFIC_COMPLETE, Phase.STABLE, Phase.OLD_PATH_REMOVED):
        rb.check(Action.MARK_STABLE)  # raises PhaseRefused naming what must come first

    if rb.phase is Phase.TRAFFIC_COMPLETE:
        ok, report.evidence = gather(rb, source, dry_run=dry_run)
        if dry_run:
            report.done.append({"step": "mark_stable", "would": "declare stable", "ok": ok})
            return report
        if not ok and not force:
            failed = ", ".join(r.name for r in blocking(report.evidence))
            raise CheckFailed(
                f"{name} is not ready to decommission: {failed}",
                hint=f"see 'strangler decommission {name} --check'",
            )
        with rb.step(Action.MARK_STABLE, force=force, reason=reason, resumable=True) as step:
            step.details["evidence"] = [r.to_dict() for r in report.evidence]
        report.done.append({"step": "mark_stable", "phase": rb.phase.value})

    if rb.phase is Phase.STABLE:
        archive_dir = spec.resolve(svc.decommission.archive_dir)
        if dry_run:
            report.done.append(
                {
                    "step": "remove_old_path",
                    "would": [
                        "remove the old route" if remove_route else "no router: route left alone",
                        f"pg_dump -Fc {', '.join(f'{schema}.{t}' for t in tables)} into "
                        f"{archive_dir}",
                        f"ALTER {'VIEW' if svc.strategy == 'move' else 'TABLE'} … SET SCHEMA "
                        f"{retired} for each",
                    ],
                }
            )
            return report
        with rb.step(Action.REMOVE_OLD_PATH, force=force, reason=reason, resumable=True) as step:
            step.details["route"] = (
                remove_route()
                if remove_route
                else {"removed": False, "why": "no router configured"}
            )
            step.details["reverse_sync"] = _end_reverse_sync(rb)
            if svc.strategy == "move":
                major = _server_major(spec.source.dsn)
                archive = moved_views.archive_views(rb, archive_dir, major)
                step.details["archive"] = archive
                step.details["retired_schema"] = moved_views.retire_views(rb)
            else:
                archive = _archive(rb, archive_dir)
                step.details["archive"] = archive
                with connect(spec.source.dsn, role="monolith") as conn:
                    step.details["retired_schema"] = T.retire_tables(conn, schema, tables, name)
                    # What a later drop compares with: a write to them after this is missing
                    # from the archive (requirements.retired_tables_untouched).
                    step.details["retired_counters"] = T.write_counters(conn, retired, tables)
            # Cleared with the outcome, in its transaction: cleared before it, a kill left
            # a resumed step without its archive's record (it dumped again over retired
            # tables, after removing the real archive as an earlier attempt's).
            step.on_ok += [
                lambda: rb.progress.clear(ArchiveRecord),
                lambda: rb.progress.clear(GuardOff),
            ]
        report.done.append(
            {"step": "remove_old_path", "archive": archive, "retired_schema": retired}
        )

    if rb.phase is Phase.OLD_PATH_REMOVED:
        renamed = rb.journal.last(name, str(Action.REMOVE_OLD_PATH), status="ok")
        info = (renamed.details.get("archive") if renamed else None) or {}
        if dry_run:
            report.done.append(
                {
                    "step": "decommission",
                    "would": f"DROP {'VIEW' if svc.strategy == 'move' else 'TABLE'} "
                    f"{', '.join(tables)} in {retired}",
                }
            )
            return report
        try:
            rb.check(Action.DECOMMISSION)
            grace_period_over(rb)
        except CheckFailed as wait:
            if not force:
                report.waiting = wait.message
                if renamed is not None:
                    report.until = renamed.at + svc.decommission.drop_old_tables_after
                report.phase = rb.phase.value
                return report
        with rb.step(Action.DECOMMISSION, force=force, reason=reason, resumable=True) as step:
            if svc.strategy == "move":
                step.details["dropped"] = moved_views.drop_views(rb)
            else:
                with connect(spec.source.dsn, role="monolith") as conn:
                    step.details["dropped"] = T.drop_tables(conn, retired, tables)
            step.details["archive"] = info
            if svc.infra and svc.infra.tag:
                repo = InfraRepo(spec.resolve(svc.infra.repo), author=rb.journal.operator)
                tag, message = decommission_tag(name)
                repo.tag(tag, message)
                step.details["tag"] = tag
        report.done.append({"step": "decommission", **step.details})
    report.phase = rb.phase.value
    return report


def _end_reverse_sync(rb: Runbook, timeout: float = 600.0) -> dict[str, Any] | None:
    """Reverse sync ends where the old path does: drained into the old tables first (the
    archive then holds every write the service made), then its slot, publication and stored
    position dropped. Left in place, the slot held the service server's WAL forever and no
    command could remove it (issue 15's fault campaign). Idempotent, for a resumed step."""
    if rb.service.strategy != "online":
        return None
    route = sync_route(rb.spec, rb.name, "reverse")
    if cdc.status(route).slot_exists:
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            cdc.run(route, stop=stop, until_caught_up=True)
        finally:
            timer.cancel()
        if stop.is_set():
            raise CheckFailed(
                f"reverse sync of {rb.name} did not catch up within {timeout:g}s; the old "
                "tables would miss the service's latest writes, so nothing was archived",
                hint=f"see 'strangler sync {rb.name} --status', then run the same command again",
            )
    return cdc.end(route)


def _archive(rb: Runbook, archive_dir: Path) -> dict[str, Any]:
    """Archive the old tables (guard triggers off first), or take the archive an
    interrupted attempt recorded when its file is still intact (steps/archives.py)."""
    kept = archives.recorded(rb)
    if kept is not None:
        return kept
    schema, tables = rb.spec.source.schema_, list(rb.service.tables)
    major = _server_major(rb.spec.source.dsn)
    # The guard's evidence is in the journal now; its triggers would tie the archive to this
    # database (restoring them elsewhere fails), so they go first.
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if T.guard_installed(conn, schema, tables):
            # Recorded first: a retry must know who took the guard off, and since when
            # nothing wrote (proofs_decommission.old_tables_quiet).
            now = rb.journal.clock().isoformat()
            rb.progress.save(GuardOff(now, T.write_counters(conn, schema, tables)))
        T.remove_guard(conn, schema, tables)
    return archives.make_archive(rb, archive_dir, "old-tables", major, schema, tables)


def plan(rb: ServiceRef, *, inspect: bool = False) -> list[StepPlan]:
    """The three decommission steps, each with its operations."""
    svc = rb.service
    d = svc.decommission
    schema, tables = rb.spec.source.schema_, list(svc.tables)
    retired = T.retired_schema(rb.name)
    router_kind = svc.traffic.router.kind if svc.traffic else None
    # strategy move: the old path is the compatibility views; the guard sits on the tables
    # and records the writes of every role but the service's
    what = "VIEW" if svc.strategy == "move" else "TABLE"
    guarded = svc.target.schema_ if svc.strategy == "move" else schema
    return [
        StepPlan(
            action=Action.MARK_STABLE.value,
            source=Phase.TRAFFIC_COMPLETE.value,
            target=Phase.STABLE.value,
            summary=f"gather the decommission evidence over {format_duration(d.stable_for)}",
            operations=(
                Operation(
                    "monolith", f"write guard on {guarded}.{', '.join(tables)}; count writes"
                ),
                Operation("journal", "the post-migration checklist, item by item"),
            ),
            requires=stated(Action.MARK_STABLE, svc),
        ),
        StepPlan(
            action=Action.REMOVE_OLD_PATH.value,
            source=Phase.STABLE.value,
            target=Phase.OLD_PATH_REMOVED.value,
            summary="remove the old route; archive and rename the old tables",
            operations=(
                Operation(
                    f"router {router_kind}" if router_kind else "router (none)",
                    "take the monolith off the route",
                ),
                Operation(
                    "monolith", f"pg_dump -Fc {', '.join(f'{schema}.{t}' for t in tables)} + sha256"
                ),
                Operation("monolith", f"ALTER {what} … SET SCHEMA {retired}"),
            ),
            requires=stated(Action.REMOVE_OLD_PATH, svc),
        ),
        StepPlan(
            action=Action.DECOMMISSION.value,
            source=Phase.OLD_PATH_REMOVED.value,
            target=Phase.DECOMMISSIONED.value,
            summary=f"drop the old tables after {format_duration(d.drop_old_tables_after)}",
            operations=(
                Operation("file", "check the archive against its sha256"),
                Operation("monolith", f"DROP {what} {', '.join(tables)} in {retired}"),
            ),
            requires=stated(Action.DECOMMISSION, svc),
        ),
    ]


def advance_stable(rb: Runbook, opts: RunOptions) -> Outcome:
    done = check(rb, metric_source_of(rb.spec, rb.name))
    if done.marked_stable:
        return Advanced(Action.MARK_STABLE.value, rb.phase.value, "evidence holds: stable", done)
    return waiting_or_raise(rb, "decommission check", blocking(done.results))


def advance_decommission(rb: Runbook, opts: RunOptions) -> Outcome:
    before = rb.phase
    report = decommission(
        rb,
        source=metric_source_of(rb.spec, rb.name),
        remove_route=route_remover(rb.spec, rb.name),
    )
    if report.waiting is not None and rb.phase is before:
        return Waiting("grace_period", report.waiting, until=report.until)
    steps = ", ".join(d["step"] for d in report.done) or "nothing"
    return Advanced(report.done[-1]["step"] if report.done else "", rb.phase.value, steps, report)
