"""``strangler preflight``: the runbook's pre-migration checklist, item by item, journaled.

Items and the check that answers each (in the runbook's order):

====================================  ===========================================
Terraform applied (plan: no changes)  :func:`~strangler.checks.terraform.terraform_applied`
pods Running and Ready                :func:`~strangler.checks.kubernetes.pods_ready`
health checks passing                 ``service_health`` (Kubernetes), ``http_health``
database connectivity                 :func:`~strangler.checks.database.role_connectivity`
secrets synced                        :func:`~strangler.checks.kubernetes.external_secret_synced`
S3 bucket access                      :func:`~strangler.checks.aws.s3_access`
rollback tested in dev                :func:`~strangler.checks.rehearsal.rollback_rehearsed`
monitoring/alerting configured        :func:`~strangler.checks.monitoring.monitoring_configured`
on-call alerted, change ticket        attestations (``strangler attest``)
====================================  ===========================================

The result is one journal event (step ``preflight``, status ``pass``/``fail``) carrying every
verdict. Copy and write cutover require a passing one younger than ``preflight.max_age``; a
spec with no ``preflight:`` section does not gate them (``strangler plan`` says so).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from strangler.checks.attestations import attestation_check
from strangler.checks.aws import s3_access
from strangler.checks.base import Check, CheckContext, CheckResult, blocking, run_checks
from strangler.checks.database import role_connectivity
from strangler.checks.http import http_health
from strangler.checks.kubernetes import external_secret_synced, pods_ready, service_health
from strangler.checks.monitoring import monitoring_configured
from strangler.checks.rehearsal import rollback_rehearsed
from strangler.checks.terraform import terraform_applied
from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.evidence import requires
from strangler.phases import Action

if TYPE_CHECKING:
    from strangler.runbook import Runbook

__all__ = ["STEP", "preflight_checks", "recent_preflight", "run_preflight"]

STEP = "preflight"


def preflight_checks(ctx: CheckContext) -> list[tuple[str, Check]]:
    pre = ctx.svc.preflight
    max_age = pre.max_age if pre else timedelta(hours=24)
    checks: list[tuple[str, Check]] = [
        ("terraform applied", terraform_applied),
        ("pods running and ready", pods_ready),
        ("service health (kubernetes)", service_health),
        ("service health (http)", http_health),
        ("database connectivity (service role)", role_connectivity),
        ("external secrets synced", external_secret_synced),
        ("s3 bucket access", s3_access),
        ("rollback rehearsed", rollback_rehearsed),
        ("monitoring configured", monitoring_configured),
    ]
    kinds = list(pre.attestations) if pre else ["oncall", "change_ticket"]
    for kind in kinds:
        checks.append((f"attested: {kind}", partial(attestation_check, kind=kind, max_age=max_age)))
    return checks


def run_preflight(ctx: CheckContext, *, record: bool = True) -> tuple[bool, list[CheckResult]]:
    """Run every item; journal the verdicts (unless ``record`` is False). ``(passed, results)``."""
    results = run_checks(ctx, preflight_checks(ctx))
    passed = not blocking(results)
    if record:
        ctx.journal.event(
            ctx.service,
            STEP,
            status="pass" if passed else "fail",
            details={"results": [r.to_dict() for r in results]},
        )
    return passed, results


@requires(Action.COPY, Action.CUTOVER_WRITES)
def recent_preflight(rb: Runbook) -> None:
    """A passing preflight younger than ``preflight.max_age`` (only when the spec has one)."""
    pre = rb.service.preflight
    if pre is None:
        return  # no preflight: section; the plan warns that nothing is gated
    last = rb.journal.last(rb.name, STEP)
    how = f"strangler preflight {rb.name}"
    if last is None:
        raise CheckFailed(f"{rb.name} has no preflight on record", hint=f"run '{how}'")
    age = rb.journal.clock() - last.at
    if last.status != "pass":
        failed = [
            r["name"]
            for r in last.details.get("results", [])
            if r.get("verdict") == "fail" and r.get("required", True)
        ]
        raise CheckFailed(
            f"the last preflight of {rb.name} ({format_duration(age)} ago) failed: "
            + ", ".join(failed),
            hint=f"fix those items and run '{how}' again",
        )
    if age > pre.max_age:
        raise CheckFailed(
            f"the last passing preflight of {rb.name} is {format_duration(age)} old; the spec "
            f"allows {format_duration(pre.max_age)} (preflight.max_age)",
            hint=f"run '{how}' again",
        )
