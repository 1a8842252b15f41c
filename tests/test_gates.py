"""Gate verdicts, table-driven: every verdict, every check, and the bake's decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strangler.metrics.base import TargetStats, Window
from strangler.metrics.gates import (
    Bake,
    Decision,
    Evaluation,
    Verdict,
    evaluate,
    newcombe_lower,
    wilson,
)
from strangler.spec import GateSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ERR = GateSpec(metric="error_rate", max=0.05, max_increase_over_baseline=0.01)
LAT = GateSpec(metric="latency_p99", max=0.5, max_ratio_to_baseline=1.5)
MIN = GateSpec(metric="request_count", min=50)


def win(svc: tuple[int, int, float | None], mono: tuple[int, int, float | None]) -> Window:
    return Window(T0, T0, TargetStats(*mono), TargetStats(*svc))


CASES = [
    # (name, service (req, err, p99), monolith (req, err, p99), weight, verdict, failing check)
    ("healthy", (200, 1, 0.05), (800, 4, 0.05), 20, Verdict.PASS, None),
    ("too few service requests", (49, 0, 0.05), (800, 0, 0.05), 5, Verdict.NOT_ENOUGH_DATA, None),
    ("too few baseline requests", (200, 0, 0.05), (10, 0, 0.05), 95, Verdict.NOT_ENOUGH_DATA, None),
    ("ceiling broken", (200, 40, 0.05), (800, 150, 0.05), 20, Verdict.FAIL, "error_rate.max"),
    (
        "increase over baseline",
        (400, 16, 0.05),
        (1600, 0, 0.05),
        20,
        Verdict.FAIL,
        "error_rate.max_increase_over_baseline",
    ),
    ("p99 ceiling", (200, 0, 0.9), (800, 0, 0.8), 20, Verdict.FAIL, "latency_p99.max"),
    (
        "p99 ratio",
        (200, 0, 0.2),
        (800, 0, 0.1),
        20,
        Verdict.FAIL,
        "latency_p99.max_ratio_to_baseline",
    ),
    # At 100 % the monolith serves none of the route: the ceilings alone judge.
    ("full weight, no baseline", (1000, 2, 0.05), (0, 0, None), 100, Verdict.PASS, None),
    # HAProxy gives no p99: latency checks are skipped, not failed.
    ("no p99 from the source", (200, 0, None), (800, 0, None), 20, Verdict.PASS, None),
]


@pytest.mark.parametrize(
    ("svc", "mono", "weight", "verdict", "failing"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_verdicts(
    svc: tuple[int, int, float | None],
    mono: tuple[int, int, float | None],
    weight: float,
    verdict: Verdict,
    failing: str | None,
) -> None:
    result = evaluate(win(svc, mono), [ERR, LAT, MIN], weight=weight)
    assert result.verdict is verdict, result.reason
    failed = [c.check for c in result.checks if c.status == "fail"]
    assert failed == ([failing] if failing else [])
    # Every evaluation carries its numbers for the journal.
    assert result.to_dict()["window"]["service"]["requests"] == svc[0]


def test_error_verdict_when_source_unreadable() -> None:
    result = evaluate(None, [ERR], weight=5, error="prometheus down")
    assert result.verdict is Verdict.ERROR and "prometheus down" in result.reason


def test_low_traffic_is_not_judged_on_a_bare_ratio() -> None:
    # 1 error in 20 (5 %) against 0 in 80: a bare ratio says +5 points, over the 1 % allowed;
    # the lower bound of the difference does not support that, so it passes.
    gate = GateSpec(metric="error_rate", max_increase_over_baseline=0.01)
    mini = GateSpec(metric="request_count", min=20)
    result = evaluate(win((20, 1, None), (80, 0, None)), [gate, mini], weight=20)
    assert result.verdict is Verdict.PASS
    # 4 in 20 (the demo's faulty service) is clear evidence even at that volume.
    result = evaluate(win((20, 4, None), (80, 0, None)), [gate, mini], weight=20)
    assert result.verdict is Verdict.FAIL


def test_bounds() -> None:
    low, high = wilson(0, 100, 1.645)
    assert low == 0 and 0.02 < high < 0.03
    low, high = wilson(20, 20, 1.645)
    assert 0.85 < low < 0.9 and high == 1
    assert newcombe_lower(20, 20, 0, 100, 1.645) > 0.8
    assert newcombe_lower(5, 100, 5, 100, 1.645) < 0


def _ev(verdict: Verdict) -> Evaluation:
    return Evaluation(verdict, verdict.value)


P, F, N, E = Verdict.PASS, Verdict.FAIL, Verdict.NOT_ENOUGH_DATA, Verdict.ERROR
BAKES = [
    ("passes complete the bake", [P, P, P], "hold", [Decision.CONTINUE] * 2 + [Decision.COMPLETE]),
    ("three failures roll back", [F, F, F], "hold", [Decision.CONTINUE] * 2 + [Decision.ROLLBACK]),
    ("a pass resets the streak", [F, F, P, F, F], "hold", [Decision.CONTINUE] * 5, 9),
    (
        "no data extends the bake",
        [N, P, P, P],
        "hold",
        [Decision.CONTINUE] * 3 + [Decision.COMPLETE],
    ),
    (
        "no data for too long stalls",
        [N, N, N],
        "hold",
        [Decision.CONTINUE] * 2 + [Decision.STALLED],
    ),
    ("error holds by default", [E, P, P, P], "hold", [Decision.CONTINUE] * 3 + [Decision.COMPLETE]),
    ("error rolls back when asked", [E], "rollback", [Decision.ROLLBACK]),
    (
        "no completion on a failing streak",
        [P, P, F, P],
        "hold",
        [Decision.CONTINUE] * 3 + [Decision.COMPLETE],
    ),
]


@pytest.mark.parametrize(
    ("verdicts", "on_error", "decisions", "needed"),
    [(*b[1:], 3)[:4] for b in BAKES],
    ids=[b[0] for b in BAKES],
)
def test_bake_decisions(
    verdicts: list[Verdict], on_error: str, decisions: list[Decision], needed: int
) -> None:
    bake = Bake(weight=20, needed=needed, failed_limit=3, max_extensions=2, on_error=on_error)
    got = [bake.record(_ev(v))[0] for v in verdicts]
    assert got == decisions


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"metric": "error_rate", "max_ratio_to_baseline": 2}, "does not apply to error_rate"),
        ({"metric": "error_rate"}, "sets no threshold"),
        ({"metric": "error_rate", "max": 5}, "fraction"),
        ({"metric": "throughput", "max": 1}, "Input should be"),
    ],
)
def test_gate_spec_errors(gate: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        GateSpec.model_validate(gate)
