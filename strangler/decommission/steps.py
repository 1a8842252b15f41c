"""``strangler decommission SERVICE``: the runbook's "Then:" list, each step gated and journaled.

1. ``mark_stable`` (traffic_complete → stable): the evidence of ``--check`` holds;
2. ``remove_old_path`` (stable → old_path_removed): the old route removed from the router
   when one is configured, the old tables archived (``pg_dump -Fc`` + sha256) and moved to
   ``retired_<service>``;
3. ``decommission`` (old_path_removed → decommissioned), in a later run once
   ``drop_old_tables_after`` has passed: the archive re-checked against its sha256, the retired
   tables dropped, the infrastructure repo tagged ``v1.0.0-<service>-decommissioned``.

A run goes as far as the gates allow and says what remains and when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.checks.base import CheckContext, CheckResult, blocking
from strangler.decommission.evidence import (
    MetricWindowSource,
    decommission_evidence,
    grace_period_over,
)
from strangler.errors import CheckFailed
from strangler.infra.gitrepo import InfraRepo, decommission_tag
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.phases import Action, Phase
from strangler.runbook import Runbook

__all__ = ["DecommissionReport", "RouteRemover", "run_decommission"]

RouteRemover = Callable[[], dict[str, Any]]


@dataclass
class DecommissionReport:
    service: str
    phase: str
    done: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[CheckResult] = field(default_factory=list)
    waiting: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "phase": self.phase,
            "done": self.done,
            "evidence": [r.to_dict() for r in self.evidence],
            "waiting": self.waiting,
        }


def _server_major(dsn: str) -> int:
    with connect(dsn, role="monolith") as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) // 10000 if row else 0


def run_decommission(
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
        ctx = CheckContext(spec, name, rb.journal, cache={"dry_run": dry_run})
        ok, report.evidence = decommission_evidence(ctx, source, record=not dry_run)
        if dry_run:
            report.done.append({"step": "mark_stable", "would": "declare stable", "ok": ok})
            return report
        if not ok and not force:
            failed = ", ".join(r.name for r in blocking(report.evidence))
            raise CheckFailed(
                f"{name} is not ready to decommission: {failed}",
                hint=f"see 'strangler decommission {name} --check'",
            )
        with rb.step(Action.MARK_STABLE, force=force, reason=reason) as step:
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
                        f"ALTER TABLE … SET SCHEMA {retired} for each",
                    ],
                }
            )
            return report
        with rb.step(Action.REMOVE_OLD_PATH, force=force, reason=reason) as step:
            step.details["route"] = (
                remove_route()
                if remove_route
                else {"removed": False, "why": "no router configured"}
            )
            major = _server_major(spec.source.dsn)
            # The guard's evidence is in the journal now; its triggers would tie the archive
            # to this database (restoring them elsewhere fails), so they go first.
            with connect(spec.source.dsn, role="monolith") as conn:
                T.remove_guard(conn, schema, tables)
            stamp = rb.journal.clock().strftime("%Y%m%dT%H%M%SZ")
            archive = T.archive_tables(
                spec.source.dsn,
                major,
                schema,
                tables,
                archive_dir / f"{name}-old-tables-{stamp}.dump",
            )
            step.details["archive"] = archive.to_dict()
            with connect(spec.source.dsn, role="monolith") as conn:
                step.details["retired_schema"] = T.retire_tables(conn, schema, tables, name)
        report.done.append(
            {"step": "remove_old_path", "archive": archive.to_dict(), "retired_schema": retired}
        )

    if rb.phase is Phase.OLD_PATH_REMOVED:
        renamed = rb.journal.last(name, str(Action.REMOVE_OLD_PATH), status="ok")
        info = (renamed.details.get("archive") if renamed else None) or {}
        if dry_run:
            report.done.append(
                {"step": "decommission", "would": f"DROP TABLE {', '.join(tables)} in {retired}"}
            )
            return report
        try:
            rb.check(Action.DECOMMISSION)
            grace_period_over(rb)
        except CheckFailed as wait:
            if not force:
                report.waiting = wait.message
                report.phase = rb.phase.value
                return report
        with rb.step(Action.DECOMMISSION, force=force, reason=reason) as step:
            _verify_archive(info)
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


def _verify_archive(info: dict[str, Any]) -> None:
    """The archive must still be there, byte for byte, before anything is dropped."""
    path = Path(str(info.get("path", "")))
    if not info or not path.is_file():
        raise CheckFailed(
            f"the archive of the old tables ({path}) is missing; nothing dropped",
            hint="restore it from backup before dropping the tables",
        )
    actual = T.sha256_of(path)
    if actual != info.get("sha256"):
        raise CheckFailed(
            f"the archive {path} changed since it was written (sha256 {actual} ≠ "
            f"{info.get('sha256')}); nothing dropped"
        )
