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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from strangler.errors import StranglerError
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.journal import Journal
    from strangler.spec import ServiceSpec, Spec

__all__ = ["Check", "CheckContext", "CheckResult", "Verdict", "blocking", "run_checks"]


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


@dataclass
class CheckContext:
    """What every check may look at. ``clock`` is the journal's, so tests can move time."""

    spec: Spec
    service: str
    journal: Journal
    # Clients shared by the checks of one run (a Kubernetes client, say), keyed by purpose.
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def svc(self) -> ServiceSpec:
        return self.spec.service(self.service)

    def now(self) -> datetime:
        return self.journal.clock() if self.journal else datetime.now(UTC)


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
