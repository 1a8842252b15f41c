"""Things only a person can vouch for: on-call alerted, change ticket created, no P1/P2
incident. ``strangler attest SERVICE oncall --note "paged #sre, INC-1234"`` records who said
so, when, and their note (:mod:`strangler.steps.preflight` journals it); a check accepts an
attestation younger than its maximum age (or made after a given moment)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.errors import BadInput

__all__ = ["KNOWN", "attestation_check", "check_attestation"]

KNOWN = {
    "oncall": "on-call rotation alerted about the migration window",
    "change_ticket": "change management ticket created",
    "no_incident": "no P1/P2 incident attributed to the new service",
}
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_attestation(kind: str, note: str) -> None:
    """Raise BadInput unless ``kind`` is a valid name and ``note`` says something."""
    if not _KIND.match(kind):
        raise BadInput(
            f"{kind!r} is not an attestation name",
            hint=f"use one of {', '.join(sorted(KNOWN))} or a lower_case name",
        )
    if not note.strip():
        raise BadInput("an attestation needs --note saying what was done (ticket id, channel, …)")


def attestation_check(
    ctx: CheckContext,
    kind: str,
    *,
    max_age: timedelta | None = None,
    after: datetime | None = None,
) -> CheckResult:
    """``attested`` when a fresh enough attestation exists, else ``fail`` naming the command."""
    name = f"attested: {kind}"
    entry = ctx.history.attestations.get(kind)
    how = f"strangler attest {ctx.service} {kind} --note '…'"
    if entry is None:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"nobody has attested {KNOWN.get(kind, kind)}; run: {how}",
            awaits=how,
        )
    evidence = {"by": entry.by, "at": entry.at.isoformat(), "note": entry.note}
    if max_age is not None and ctx.now() - entry.at > max_age:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"the {kind} attestation by {entry.by} at {entry.at:%Y-%m-%d %H:%M} UTC is "
            f"older than {max_age}; attest again: {how}",
            evidence,
            awaits=how,
        )
    if after is not None and entry.at < after:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"the {kind} attestation by {entry.by} at {entry.at:%Y-%m-%d %H:%M} UTC was "
            f"made before {after:%Y-%m-%d %H:%M} UTC, so it cannot cover the window; "
            f"attest again: {how}",
            evidence,
            awaits=how,
        )
    return CheckResult(
        name,
        Verdict.ATTESTED,
        f"{entry.by} at {entry.at:%Y-%m-%d %H:%M} UTC: {entry.note}",
        evidence,
    )
