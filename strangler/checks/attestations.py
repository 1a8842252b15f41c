"""Things only a person can vouch for: on-call alerted, change ticket created, no P1/P2
incident. ``strangler attest SERVICE oncall --note "paged #sre, INC-1234"`` records who said
so, when, and their note as a journal event; a check accepts an attestation younger than its
maximum age (or made after a given moment)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.errors import BadInput
from strangler.journal import Entry, Journal

__all__ = [
    "KNOWN",
    "STEP",
    "attest",
    "attestation_check",
    "check_attestation",
    "latest_attestation",
]

STEP = "attest"
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


def attest(journal: Journal, service: str, kind: str, note: str) -> Entry:
    """Record an attestation; returns its journal entry."""
    check_attestation(kind, note)
    entry_id = journal.event(
        service, STEP, status=kind, reason=note.strip(), details={"what": KNOWN.get(kind, kind)}
    )
    entry = next(e for e in journal.history(service, limit=5) if e.id == entry_id)
    return entry


def latest_attestation(journal: Journal, service: str, kind: str) -> Entry | None:
    return journal.last(service, STEP, status=kind)


def attestation_check(
    ctx: CheckContext,
    kind: str,
    *,
    max_age: timedelta | None = None,
    after: datetime | None = None,
) -> CheckResult:
    """``attested`` when a fresh enough attestation exists, else ``fail`` naming the command."""
    name = f"attested: {kind}"
    entry = latest_attestation(ctx.journal, ctx.service, kind)
    how = f"strangler attest {ctx.service} {kind} --note '…'"
    if entry is None:
        return CheckResult(
            name, Verdict.FAIL, f"nobody has attested {KNOWN.get(kind, kind)}; run: {how}"
        )
    evidence = {"by": entry.operator, "at": entry.at.isoformat(), "note": entry.reason}
    if max_age is not None and ctx.now() - entry.at > max_age:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"the {kind} attestation by {entry.operator} at {entry.at:%Y-%m-%d %H:%M} UTC is "
            f"older than {max_age}; attest again: {how}",
            evidence,
        )
    if after is not None and entry.at < after:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"the {kind} attestation by {entry.operator} at {entry.at:%Y-%m-%d %H:%M} UTC was "
            f"made before {after:%Y-%m-%d %H:%M} UTC, so it cannot cover the window; "
            f"attest again: {how}",
            evidence,
        )
    return CheckResult(
        name,
        Verdict.ATTESTED,
        f"{entry.operator} at {entry.at:%Y-%m-%d %H:%M} UTC: {entry.reason}",
        evidence,
    )
