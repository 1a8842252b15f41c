"""The runbook's checklists as journaled evidence: ``preflight``, ``validate``, ``attest``.

- :func:`preflight`: every item of the pre-migration checklist
  (:mod:`strangler.checks.preflight`), one ``preflight`` event with every verdict; creating
  the schema, the copy and the write cutover require a passing one younger than
  ``preflight.max_age``
  (:func:`strangler.steps.requirements.recent_preflight`).
- :func:`validate`: validate-service.sh (pods, health, ExternalSecret, HPA), one event.
- :func:`attest`: what only a person can vouch for, one ``attest`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strangler.checks.attestations import KNOWN, check_attestation
from strangler.checks.base import CheckContext, CheckResult, blocking, run_checks
from strangler.checks.kubernetes import (
    external_secret_synced,
    hpa_status,
    pods_ready,
    service_health,
)
from strangler.checks.preflight import run_preflight
from strangler.errors import BadInput, CheckFailed
from strangler.journal import Entry
from strangler.steps.facts import history
from strangler.steps.records import Event
from strangler.steps.requirements import recent_preflight
from strangler.steps.runbook import Runbook
from strangler.steps.types import RunOptions, Waiting

__all__ = [
    "Checklist",
    "attest",
    "context",
    "ensure",
    "preflight",
    "validate",
    "waiting_or_raise",
]


@dataclass(frozen=True)
class Checklist:
    """The verdicts of one checklist run."""

    service: str
    what: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return not blocking(self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return blocking(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }


def context(rb: Runbook, *, dry_run: bool = False) -> CheckContext:
    """What the checks of ``rb``'s service may look at, with the journal's facts read now."""
    return CheckContext(rb.spec, rb.name, history(rb.journal, rb.spec, rb.name), dry_run=dry_run)


def preflight(rb: Runbook, *, record: bool = True) -> Checklist:
    """Run the pre-migration checklist; journal the verdicts (unless ``record`` is False)."""
    done = Checklist(rb.name, "preflight", run_preflight(context(rb)))
    if record:
        rb.journal.event(
            rb.name,
            Event.PREFLIGHT,
            status="pass" if done.passed else "fail",
            details={"results": [r.to_dict() for r in done.results]},
        )
    return done


def validate(rb: Runbook) -> Checklist:
    """The runbook's validate-service.sh; journaled as one ``validate`` event."""
    svc = rb.service
    if svc.preflight is None or svc.preflight.kubernetes is None:
        raise BadInput(
            f"validate needs services.{rb.name}.preflight.kubernetes in the spec",
            hint="add namespace (and labels if not app=<service>) under preflight.kubernetes",
        )
    results = run_checks(
        context(rb),
        [
            ("pods running and ready", pods_ready),
            ("service health (kubernetes)", service_health),
            ("external secrets synced", external_secret_synced),
            ("hpa", hpa_status),
        ],
    )
    done = Checklist(rb.name, "validate", results)
    rb.journal.event(
        rb.name,
        Event.VALIDATE,
        status="pass" if done.passed else "fail",
        details={"results": [r.to_dict() for r in results]},
    )
    return done


def attest(rb: Runbook, kind: str, note: str) -> Entry:
    """Record an attestation; returns its journal entry."""
    check_attestation(kind, note)
    entry_id = rb.journal.event(
        rb.name,
        Event.ATTEST,
        status=kind,
        reason=note.strip(),
        details={"what": KNOWN.get(kind, kind)},
    )
    return next(e for e in rb.journal.history(rb.name, limit=5) if e.id == entry_id)


def ensure(rb: Runbook, opts: RunOptions) -> Waiting | None:
    """Before ``run`` copies or cuts writes over: a fresh passing preflight, made now if
    needed. Waits when only a person can make it pass (an attestation); fails otherwise."""
    if rb.service.preflight is None:
        return None
    try:
        recent_preflight(rb)
        return None
    except CheckFailed:
        pass
    done = preflight(rb)
    opts.say(f"{rb.name}: preflight {'passed' if done.passed else 'failed'}")
    if done.passed:
        return None
    return waiting_or_raise(rb, "preflight", done.failed)


def waiting_or_raise(rb: Runbook, what: str, failed: list[CheckResult]) -> Waiting:
    """A checklist that failed only on items a person or time will settle is a wait; any
    other failure is raised, naming the items."""
    if failed and all(r.until is not None or r.awaits is not None for r in failed):
        people = [r for r in failed if r.awaits is not None]
        if people:
            return Waiting(
                "attestation",
                f"{what}: " + "; ".join(r.message for r in people),
                command=people[0].awaits,
            )
        until = max(r.until for r in failed if r.until is not None)
        return Waiting("time", f"{what}: " + "; ".join(r.message for r in failed), until=until)
    raise CheckFailed(
        f"{rb.name}: {what} failed: " + "; ".join(f"{r.name}: {r.message}" for r in failed),
        hint=f"fix those items, then 'strangler run {rb.name}' again",
    )
