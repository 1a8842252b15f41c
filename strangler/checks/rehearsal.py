"""Pre-flight: "Rollback procedure documented and tested in dev".

"Tested" is read from evidence, not taken on trust: the journal of the rehearsal environment's
spec (``preflight.rehearsal_spec``, such as ``dev.yaml``) must show a rollback of this service
that completed (outcome ``ok``). The step reads that journal
(:func:`strangler.steps.facts.rehearsal`); this check judges what it found."""

from __future__ import annotations

from strangler.checks.base import CheckContext, CheckResult, Verdict

__all__ = ["rollback_rehearsed"]

NAME = "rollback rehearsed"


def rollback_rehearsed(ctx: CheckContext) -> CheckResult:
    pre = ctx.svc.preflight
    if pre is None:
        return CheckResult(
            NAME,
            Verdict.SKIPPED,
            "no preflight: section; name the dev spec as preflight.rehearsal_spec",
        )
    found = ctx.history.rehearsal
    if pre.rehearsal_spec is None or found is None:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            "no rehearsal evidence: name the dev spec whose journal shows a rollback "
            "(preflight.rehearsal_spec)",
        )
    path = found.spec
    if found.error is not None:
        return CheckResult(NAME, Verdict.FAIL, found.error, {"spec": str(path)})
    if not found.journal_exists:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"the rehearsal spec {path} has no journal yet ({found.journal_url}); rehearse a "
            f"rollback there: strangler rollback {ctx.service} --traffic -f {path}",
        )
    if found.step is None or found.at is None:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"the rehearsal journal of {path} shows no completed rollback of {ctx.service}; "
            f"rehearse one: strangler rollback {ctx.service} --traffic -f {path}",
            {"spec": str(path)},
        )
    return CheckResult(
        NAME,
        Verdict.PASS,
        f"{found.step} completed in {path.name} at {found.at:%Y-%m-%d %H:%M} UTC by "
        f"{found.operator}",
        {
            "spec": str(path),
            "step": found.step,
            "at": found.at.isoformat(),
            "operator": found.operator,
        },
    )
