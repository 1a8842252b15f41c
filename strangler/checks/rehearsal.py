"""Pre-flight: "Rollback procedure documented and tested in dev".

"Tested" is read from evidence, not taken on trust: the journal of the rehearsal environment's
spec (``preflight.rehearsal_spec``, such as ``dev.yaml``) must show a rollback of this service
that completed (outcome ``ok``)."""

from __future__ import annotations

from pathlib import Path

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.journal import Entry, Journal
from strangler.spec import load_spec

__all__ = ["ROLLBACK_STEPS", "rollback_rehearsed"]

NAME = "rollback rehearsed"
ROLLBACK_STEPS = (
    "rollback_traffic",
    "rollback_writes",
    "rollback_schema",
    "rollback_k8s",
    "rollback_terraform",
)


def rollback_rehearsed(ctx: CheckContext) -> CheckResult:
    pre = ctx.svc.preflight
    if pre is None:
        return CheckResult(
            NAME,
            Verdict.SKIPPED,
            "no preflight: section; name the dev spec as preflight.rehearsal_spec",
        )
    if pre.rehearsal_spec is None:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            "no rehearsal evidence: name the dev spec whose journal shows a rollback "
            "(preflight.rehearsal_spec)",
        )
    path = ctx.spec.resolve(pre.rehearsal_spec)
    rehearsal = load_spec(path)
    url = rehearsal.state_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"the rehearsal spec {path} has no journal yet ({url}); rehearse a rollback there: "
            f"strangler rollback {ctx.service} --traffic -f {path}",
        )
    with Journal(url, operator=ctx.journal.operator, command="preflight") as journal:
        found: list[Entry] = [
            e
            for step in ROLLBACK_STEPS
            if (e := journal.last(ctx.service, step, status="ok")) is not None
            and e.kind == "outcome"
        ]
    if not found:
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"the rehearsal journal of {path} shows no completed rollback of {ctx.service}; "
            f"rehearse one: strangler rollback {ctx.service} --traffic -f {path}",
            {"spec": str(path)},
        )
    newest = max(found, key=lambda e: e.at)
    return CheckResult(
        NAME,
        Verdict.PASS,
        f"{newest.step} completed in {path.name} at {newest.at:%Y-%m-%d %H:%M} UTC by "
        f"{newest.operator}",
        {
            "spec": str(path),
            "step": newest.step,
            "at": newest.at.isoformat(),
            "operator": newest.operator,
        },
    )
