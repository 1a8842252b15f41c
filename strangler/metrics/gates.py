"""Gates: the verdict on one interval of a bake, and what a run of verdicts means for the step.

Each interval gets one of four verdicts:

- ``pass``: every check held;
- ``fail``: a check found evidence that the service is worse than allowed;
- ``not_enough_data``: too few requests to judge (the bake is extended by an interval);
- ``error``: the metric source could not be read (hold the weight and alert, or roll back,
  as ``traffic.on_error`` says).

Error rates are judged with confidence bounds, not bare ratios, so that low traffic neither
fails a healthy service on two unlucky requests nor passes a broken one: the ceiling fails when
the Wilson score *lower* bound of the service's rate is above it, and the increase over the
monolith fails when the lower bound of the difference (Newcombe's hybrid score interval, built
from the two Wilson intervals) is above the allowed increase. Both are one-sided at
``traffic.confidence``. The monolith's figures must be for the same route in the same interval
(see :mod:`strangler.metrics.base`).

:class:`Bake` turns verdicts into a decision: keep going, complete, roll back after
``failed_intervals`` consecutive failures, or stall when data never comes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from strangler.metrics.base import Window

__all__ = [
    "DEFAULT_MIN_REQUESTS",
    "Bake",
    "CheckResult",
    "Decision",
    "Evaluation",
    "GateSpec",
    "Verdict",
    "evaluate",
    "newcombe_lower",
    "wilson",
]


_GATE_FIELDS = {
    "error_rate": {"max", "max_increase_over_baseline"},
    "latency_p99": {"max", "max_ratio_to_baseline"},
    "request_count": {"min"},
}


class GateSpec(BaseModel):
    """One check of a bake interval (see :mod:`strangler.metrics.gates`).

    ``error_rate``: ``max`` (a ceiling, 0..1) and/or ``max_increase_over_baseline`` (over the
    monolith's rate on the same route). ``latency_p99``: ``max`` seconds and/or
    ``max_ratio_to_baseline``. ``request_count``: ``min`` requests to the service per interval
    before anything is judged (default 100).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["error_rate", "latency_p99", "request_count"]
    max: float | None = None
    min: float | None = None
    max_increase_over_baseline: float | None = None
    max_ratio_to_baseline: float | None = None

    @model_validator(mode="after")
    def _fields_fit_metric(self) -> GateSpec:
        given = {
            k
            for k in ("max", "min", "max_increase_over_baseline", "max_ratio_to_baseline")
            if getattr(self, k) is not None
        }
        allowed = _GATE_FIELDS[self.metric]
        if not given:
            raise ValueError(
                f"gate on {self.metric} sets no threshold; use {', '.join(sorted(allowed))}"
            )
        wrong = sorted(given - allowed)
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} does not apply to {self.metric}; "
                f"use {', '.join(sorted(allowed))}"
            )
        for k in given:
            if (getattr(self, k) or 0) < 0:
                raise ValueError(f"{k} cannot be negative")
        if self.metric == "error_rate" and self.max is not None and self.max > 1:
            raise ValueError("error_rate max is a fraction (0.01 = 1 %), not a percentage")
        return self


DEFAULT_MIN_REQUESTS = 100


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_ENOUGH_DATA = "not_enough_data"
    ERROR = "error"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Literal["pass", "fail", "skipped", "short"]
    observed: float | None
    threshold: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    reason: str
    checks: list[CheckResult] = field(default_factory=list)
    window: Window | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "window": self.window.to_dict() if self.window else None,
        }


def wilson(errors: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    p = errors / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_lower(e1: int, n1: int, e2: int, n2: int, z: float) -> float:
    """Lower bound of ``p1 - p2`` (Newcombe's method 10, from two Wilson intervals)."""
    p1, p2 = e1 / n1, e2 / n2
    l1, _ = wilson(e1, n1, z)
    _, u2 = wilson(e2, n2, z)
    return p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)


def evaluate(
    window: Window | None,
    gates: list[GateSpec],
    *,
    weight: float,
    confidence: float = 0.95,
    error: str | None = None,
) -> Evaluation:
    """The verdict on one interval. ``error`` is set when the source could not be read."""
    if error is not None or window is None:
        return Evaluation(Verdict.ERROR, error or "no metrics for the interval")
    from statistics import NormalDist  # ~10 ms of imports that loading a spec need not pay

    z = NormalDist().inv_cdf(confidence)
    svc, mono = window.service, window.monolith
    min_requests = next(
        (int(g.min) for g in gates if g.metric == "request_count" and g.min is not None),
        DEFAULT_MIN_REQUESTS,
    )
    checks: list[CheckResult] = []
    if svc.requests < min_requests:
        checks.append(
            CheckResult(
                "request_count.min",
                "short",
                svc.requests,
                min_requests,
                f"the service answered {svc.requests} requests; {min_requests} needed to judge",
            )
        )
        return Evaluation(Verdict.NOT_ENOUGH_DATA, checks[0].detail, checks, window)
    checks.append(CheckResult("request_count.min", "pass", svc.requests, min_requests, ""))
    # The baseline is usable when the monolith served enough of the route in this interval.
    # At 100 % it serves none: baseline checks are skipped and the ceilings alone judge.
    baseline_ok = mono.requests >= min_requests
    baseline_gone = weight >= 100
    for gate in gates:
        if gate.metric == "error_rate":
            rate = svc.error_rate or 0.0
            if gate.max is not None:
                low, _ = wilson(svc.errors, svc.requests, z)
                checks.append(
                    CheckResult(
                        "error_rate.max",
                        "fail" if low > gate.max else "pass",
                        rate,
                        gate.max,
                        f"{svc.errors}/{svc.requests} failed; lower {confidence:.0%} bound "
                        f"{low:.4f} vs ceiling {gate.max}",
                    )
                )
            if gate.max_increase_over_baseline is not None:
                checks.append(
                    _increase(
                        gate.max_increase_over_baseline,
                        window,
                        z,
                        confidence,
                        baseline_ok,
                        baseline_gone,
                        min_requests,
                    )
                )
        elif gate.metric == "latency_p99":
            if gate.max is not None:
                if svc.p99 is None:
                    checks.append(_skip("latency_p99.max", gate.max, "the source gives no p99"))
                else:
                    checks.append(
                        CheckResult(
                            "latency_p99.max",
                            "fail" if svc.p99 > gate.max else "pass",
                            svc.p99,
                            gate.max,
                            f"p99 {svc.p99 * 1000:.1f} ms vs {gate.max * 1000:.1f} ms",
                        )
                    )
            if gate.max_ratio_to_baseline is not None:
                checks.append(
                    _ratio(
                        gate.max_ratio_to_baseline, window, baseline_ok, baseline_gone, min_requests
                    )
                )
    short = [c for c in checks if c.status == "short"]
    if short:
        return Evaluation(Verdict.NOT_ENOUGH_DATA, short[0].detail, checks, window)
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return Evaluation(
            Verdict.FAIL, "; ".join(f"{c.check}: {c.detail}" for c in failed), checks, window
        )
    return Evaluation(Verdict.PASS, "all checks held", checks, window)


def _skip(name: str, threshold: float, why: str) -> CheckResult:
    return CheckResult(name, "skipped", None, threshold, why)


def _baseline_missing(
    name: str, threshold: float, window: Window, gone: bool, min_requests: int
) -> CheckResult:
    if gone:
        return _skip(name, threshold, "no baseline: the monolith serves none of the route")
    return CheckResult(
        name,
        "short",
        window.monolith.requests,
        threshold,
        f"the monolith answered {window.monolith.requests} route requests; "
        f"{min_requests} needed for a baseline",
    )


def _increase(
    allowed: float,
    window: Window,
    z: float,
    confidence: float,
    baseline_ok: bool,
    baseline_gone: bool,
    min_requests: int,
) -> CheckResult:
    name = "error_rate.max_increase_over_baseline"
    if not baseline_ok:
        return _baseline_missing(name, allowed, window, baseline_gone, min_requests)
    s, m = window.service, window.monolith
    low = newcombe_lower(s.errors, s.requests, m.errors, m.requests, z)
    diff = (s.error_rate or 0.0) - (m.error_rate or 0.0)
    return CheckResult(
        name,
        "fail" if low > allowed else "pass",
        diff,
        allowed,
        f"service {s.errors}/{s.requests} vs monolith {m.errors}/{m.requests}; lower "
        f"{confidence:.0%} bound of the increase {low:.4f} vs allowed {allowed}",
    )


def _ratio(
    allowed: float, window: Window, baseline_ok: bool, baseline_gone: bool, min_requests: int
) -> CheckResult:
    name = "latency_p99.max_ratio_to_baseline"
    s, m = window.service, window.monolith
    if s.p99 is None:
        return _skip(name, allowed, "the source gives no p99")
    if not baseline_ok:
        return _baseline_missing(name, allowed, window, baseline_gone, min_requests)
    if not m.p99:
        return _skip(name, allowed, "the monolith's p99 is unknown or zero")
    ratio = s.p99 / m.p99
    return CheckResult(
        name,
        "fail" if ratio > allowed else "pass",
        ratio,
        allowed,
        f"p99 {s.p99 * 1000:.1f} ms vs monolith {m.p99 * 1000:.1f} ms (×{ratio:.2f})",
    )


class Decision(StrEnum):
    CONTINUE = "continue"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    STALLED = "stalled"


@dataclass
class Bake:
    """The running tally of one bake; stored in the journal's progress store between runs.

    Judged intervals (pass or fail) count towards the bake; not-enough-data and error
    intervals extend it, up to ``max_extensions`` intervals, after which it stalls: the weight
    is held and a person decides.
    """

    weight: float
    needed: int
    failed_limit: int
    max_extensions: int
    on_error: str = "hold"
    done: int = 0
    consecutive_failures: int = 0
    extensions: int = 0
    evaluated: int = 0

    def record(self, evaluation: Evaluation) -> tuple[Decision, str]:
        self.evaluated += 1
        verdict = evaluation.verdict
        if verdict is Verdict.PASS:
            self.done += 1
            self.consecutive_failures = 0
        elif verdict is Verdict.FAIL:
            self.done += 1
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.failed_limit:
                return Decision.ROLLBACK, (
                    f"{self.consecutive_failures} consecutive failed intervals at "
                    f"{self.weight:g} %: {evaluation.reason}"
                )
        elif verdict is Verdict.ERROR and self.on_error == "rollback":
            return (
                Decision.ROLLBACK,
                f"metrics unreadable and on_error is rollback: {evaluation.reason}",
            )
        else:
            self.extensions += 1
            if self.extensions > self.max_extensions:
                return Decision.STALLED, (
                    f"{self.extensions} intervals without a judgement at {self.weight:g} % "
                    f"(last: {evaluation.reason}); weight held"
                )
        # A bake never completes on a failing streak: it runs on until a pass or the limit.
        if self.done >= self.needed and self.consecutive_failures == 0:
            return Decision.COMPLETE, f"{self.done} intervals judged at {self.weight:g} %"
        return Decision.CONTINUE, evaluation.reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
