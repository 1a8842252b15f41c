"""Pre-flight: "All Terraform applied successfully (terraform plan shows no changes)"."""

from __future__ import annotations

from pathlib import Path

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.infra.terraform import Terraform
from strangler.spec import Spec

__all__ = ["terraform_applied", "terraform_dir"]

NAME = "terraform applied"


def terraform_dir(spec: Spec, service: str) -> Path | None:
    """``preflight.terraform_dir``, else ``infra.repo/infra.terraform_dir``, else None."""
    svc = spec.service(service)
    if svc.preflight and svc.preflight.terraform_dir:
        return spec.resolve(svc.preflight.terraform_dir)
    if svc.infra and svc.infra.terraform_dir:
        return spec.resolve(svc.infra.repo) / svc.infra.terraform_dir
    return None


def terraform_applied(ctx: CheckContext) -> CheckResult:
    where = terraform_dir(ctx.spec, ctx.service)
    if where is None:
        return CheckResult(
            NAME, Verdict.SKIPPED, "no terraform directory in the spec (preflight.terraform_dir)"
        )
    tf = Terraform(where)
    tf.init()
    plan = tf.plan()
    evidence = {"dir": str(where), "summary": plan.summary, "terraform": tf.runner.name}
    if plan.changes:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"terraform plan in {where} shows changes: {plan.summary}; apply or revert them first",
            evidence,
        )
    return CheckResult(NAME, Verdict.PASS, f"terraform plan in {where} shows no changes", evidence)
