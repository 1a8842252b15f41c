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

The step (:mod:`strangler.steps.preflight`) journals the verdicts as one event; copy and
write cutover require a passing one younger than ``preflight.max_age``; a spec with no
``preflight:`` section does not gate them (``strangler plan`` says so).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from strangler.checks.attestations import attestation_check
from strangler.checks.aws import s3_access
from strangler.checks.base import Check, CheckContext, CheckResult, run_checks
from strangler.checks.database import role_connectivity
from strangler.checks.http import http_health
from strangler.checks.kubernetes import external_secret_synced, pods_ready, service_health
from strangler.checks.monitoring import monitoring_configured
from strangler.checks.rehearsal import rollback_rehearsed
from strangler.checks.terraform import terraform_applied

__all__ = ["preflight_checks", "run_preflight"]


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


def run_preflight(ctx: CheckContext) -> list[CheckResult]:
    """Every item of the checklist, one verdict each (nothing is journaled here)."""
    return run_checks(ctx, preflight_checks(ctx))
