"""What a check returns, and how a list of checks is run and judged.

Each check kind lives in its own module and is a function ``(CheckContext) -> CheckResult``.
A check never raises for a "no": it returns a :class:`CheckResult` with a verdict and the
evidence it saw. :func:`run_checks` turns an unexpected ``StranglerError`` (an unreachable
API, say) into a ``fail`` with that error's message, so one broken system never hides the
verdicts of the others.

Verdicts: ``pass``; ``fail`` (blocks when the check is required); ``warn`` (shown, never
blocks); ``attested`` (a person vouched for it, with who and when); ``skipped`` (cannot apply
here; the message says why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strangler.errors import StranglerError
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.spec import ServiceSpec, Spec

__all__ = [
    "Attestation",
    "BakeFigures",
    "Check",
    "CheckContext",
    "CheckResult",
    "Guard",
    "History",
    "Rehearsal",
    "Traffic",
    "Verdict",
    "blocking",
    "run_checks",
]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    ATTESTED = "attested"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One verdict with the evidence behind it (JSON-serialisable, secrets scrubbed)."""

    name: str
    verdict: Verdict
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    required: bool = True
    # A failing check that will pass by itself at ``until`` if nothing changes (a window
    # still running), or once a person does ``awaits`` (a command): ``strangler run`` waits
    # for these instead of failing.
    until: datetime | None = None
    awaits: str | None = None

    @property
    def blocks(self) -> bool:
        return self.required and self.verdict is Verdict.FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "message": scrub(self.message),
            "required": self.required,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Attestation:
    """What a person vouched for (``strangler attest``): who, when, and their note."""

    kind: str
    by: str
    at: datetime
    note: str


@dataclass(frozen=True)
class Rehearsal:
    """What the rehearsal (dev) spec's journal shows: the newest completed rollback, if any."""

    spec: Path
    journal_url: str
    journal_exists: bool
    step: str | None = None
    at: datetime | None = None
    operator: str | None = None
    error: str | None = None  # the rehearsal spec or its journal could not be read


@dataclass(frozen=True)
class Guard:
    """The write guard on the old tables: when it went on, and where their quiet window
    starts: since when no write was seen (``quiet_since``, None: since it went on), their
    write counters then, and the newest write-log row already accounted for (``seen_id``,
    None: none yet, every row counts)."""

    installed_at: datetime
    counters: Mapping[str, int]
    installed_now: bool = False  # put on by this very check run
    quiet_since: datetime | None = None
    seen_id: int | None = None


@dataclass(frozen=True)
class Traffic:
    """One side's figures summed over some of the traffic walk's judged intervals."""

    requests: int = 0
    errors: int = 0
    worst_p99: float | None = None  # the highest interval p99 (a p99 cannot be summed)
    intervals: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class BakeFigures:
    """What the walk's bakes measured on the route with the router's own counters, as the
    journal recorded each judged interval (the ``router`` metric kind keeps no history of
    its own): the monolith before 100 % (the baseline, same route, same time), the service
    while all of the route was on it, and the monolith in the newest of those intervals
    (requests still in flight when the route moved finish, and count, in the first)."""

    baseline: Traffic
    service: Traffic
    monolith_last: Traffic
    full_from: datetime | None = None
    last_from: datetime | None = None
    last_to: datetime | None = None


@dataclass(frozen=True)
class History:
    """The facts of the journal a check may weigh, read by the step that runs the checks
    (:func:`strangler.steps.facts.history`): checks never open the journal themselves."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    attestations: Mapping[str, Attestation] = field(default_factory=dict)
    first_shift: datetime | None = None  # when traffic first moved to the service
    complete_since: datetime | None = None  # since when it has been at 100 %, if it is
    rehearsal: Rehearsal | None = None
    guard: Guard | None = None
    # The walk's bake figures, for a route judged by the router's counters (no metric
    # source with history); None otherwise.
    bakes: BakeFigures | None = None


@dataclass
class CheckContext:
    """What every check may look at: the spec, the journal's facts, and the clock."""

    spec: Spec
    service: str
    history: History = field(default_factory=History)
    # Clients shared by the checks of one run (a Kubernetes client, say), keyed by purpose.
    cache: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def svc(self) -> ServiceSpec:
        return self.spec.service(self.service)

    def now(self) -> datetime:
        return self.history.now


Check = Callable[[CheckContext], CheckResult]


def run_checks(ctx: CheckContext, checks: Sequence[tuple[str, Check]]) -> list[CheckResult]:
    """Run each check; an error a check did not expect becomes its ``fail`` verdict."""
    results = []
    for name, check in checks:
        try:
            results.append(check(ctx))
        except StranglerError as exc:
            evidence: dict[str, Any] = {"error": type(exc).__name__}
            if exc.hint:
                evidence["hint"] = scrub(exc.hint)
            results.append(CheckResult(name, Verdict.FAIL, scrub(exc.message), evidence))
    return results


def blocking(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The required checks that failed."""
    return [r for r in results if r.blocks]
