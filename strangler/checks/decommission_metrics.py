"""The metric items of the post-migration checklist: error rate and latency against the
monolith's baseline, and the old route at 0 requests.

Two ways to the figures, the same judgement:

- a metric source with history (Prometheus, CloudWatch, ALB logs): the monolith's figures
  over a window of the same length ending when traffic first moved, against the service's
  and the monolith's over the last window;
- the router's own counters (metric kind ``router``, also what the gates read when the spec
  names no metric source), which keep no history: the figures the walk's bakes measured and
  journaled interval by interval (:class:`strangler.checks.base.BakeFigures`): the error
  rate of the monolith before 100 % (the baseline) against the service's while all of the
  route was on it, and the monolith's requests in the last judged interval at 100 % for the
  old route, each item saying that this is where its figures come from. Latency is skipped,
  saying why (the gates judged it interval by interval); so are all three without bakes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from strangler.checks.base import BakeFigures, CheckContext, CheckResult, Verdict
from strangler.durations import format_duration

__all__ = ["NAMES", "MetricWindowSource", "metric_items"]

NAMES = ("error rate vs baseline", "latency vs baseline", "old route at 0 requests")


class MetricWindowSource(Protocol):
    """Any metric source with history: ``measure(start, end)`` returns an object with
    ``monolith`` and ``service`` stats (``requests``, ``errors``, ``error_rate``, ``p99``),
    as :class:`strangler.metrics.base.MetricSource` does."""

    def measure(self, start: datetime, end: datetime) -> Any: ...


def _judge(
    ctx: CheckContext,
    base_rate: float | None,
    base_p99: float | None,
    rate: float | None,
    p99: float | None,
    old_requests: int,
    where: str,
    ev: dict[str, Any],
) -> list[CheckResult]:
    d = ctx.svc.decommission
    out = []
    if base_rate is None or rate is None:
        out.append(CheckResult(NAMES[0], Verdict.FAIL, "no requests to compare error rates", ev))
    else:
        limit = base_rate + d.max_error_rate_increase
        out.append(
            CheckResult(
                NAMES[0],
                Verdict.PASS if rate <= limit else Verdict.FAIL,
                f"service {rate:.4%} vs baseline {base_rate:.4%} (limit {limit:.4%})",
                ev,
            )
        )
    if base_p99 is None or p99 is None:
        out.append(CheckResult(NAMES[1], Verdict.SKIPPED, "the metric source has no p99", ev))
    else:
        limit = base_p99 * d.max_latency_ratio
        out.append(
            CheckResult(
                NAMES[1],
                Verdict.PASS if p99 <= limit else Verdict.FAIL,
                f"p99 {p99 * 1000:.0f} ms vs baseline {base_p99 * 1000:.0f} ms "
                f"(limit {limit * 1000:.0f} ms)",
                ev,
            )
        )
    out.append(
        CheckResult(
            NAMES[2],
            Verdict.PASS if old_requests == 0 else Verdict.FAIL,
            f"{old_requests} request(s) reached the monolith's route {where}",
            ev,
        )
    )
    return out


def _stats(s: Any) -> dict[str, Any]:
    return {"requests": s.requests, "errors": s.errors, "p99": s.p99}


def _from_source(ctx: CheckContext, source: MetricWindowSource) -> list[CheckResult]:
    first, since = ctx.history.first_shift, ctx.history.complete_since
    if first is None or since is None:
        return [
            CheckResult(n, Verdict.FAIL, "traffic is not at 100% on the new service") for n in NAMES
        ]
    span = min(ctx.svc.decommission.stable_for, ctx.now() - since) or timedelta(minutes=1)
    base = source.measure(first - span, first).monolith
    now = source.measure(ctx.now() - span, ctx.now())
    ev = {"baseline": _stats(base), "service": _stats(now.service), "window": str(span)}
    return _judge(
        ctx,
        base.error_rate,
        base.p99,
        now.service.error_rate,
        now.service.p99,
        now.monolith.requests,
        f"in the last {format_duration(span)}",
        ev,
    )


def _from_bakes(ctx: CheckContext, bakes: BakeFigures) -> list[CheckResult]:
    source = "the walk's bake intervals in the journal (the router's own counters)"
    if bakes.service.intervals == 0:
        why = (
            "the router's counters keep no history, and the journal holds no judged bake "
            "interval at 100 % (traffic moved there by hand?); compare with the monolith's "
            "baseline by hand"
        )
        return [CheckResult(n, Verdict.SKIPPED, why, {"source": source}) for n in NAMES]
    ev: dict[str, Any] = {
        "source": source,
        "baseline": {
            "requests": bakes.baseline.requests,
            "errors": bakes.baseline.errors,
            "worst_p99": bakes.baseline.worst_p99,
            "intervals": bakes.baseline.intervals,
        },
        "service": {
            "requests": bakes.service.requests,
            "errors": bakes.service.errors,
            "worst_p99": bakes.service.worst_p99,
            "intervals": bakes.service.intervals,
        },
        "at_100_from": bakes.full_from.isoformat() if bakes.full_from else None,
        "monolith_last_interval": {
            "requests": bakes.monolith_last.requests,
            "from": bakes.last_from.isoformat() if bakes.last_from else None,
            "to": bakes.last_to.isoformat() if bakes.last_to else None,
        },
    }
    span = ""
    if bakes.last_from and bakes.last_to:
        span = f" ({bakes.last_from:%Y-%m-%d %H:%M:%S} to {bakes.last_to:%H:%M:%S} UTC)"
    results = _judge(
        ctx,
        bakes.baseline.error_rate,
        bakes.baseline.worst_p99,
        bakes.service.error_rate,
        bakes.service.worst_p99,
        bakes.monolith_last.requests,
        f"in the last judged interval at 100 %{span}, as the router counted them",
        ev,
    )
    # A p99 is a property of a load: the monolith's under part of the route is no baseline
    # for the service carrying all of it, and the counters hold nothing from before the walk.
    results[1] = CheckResult(
        NAMES[1],
        Verdict.SKIPPED,
        "the router's counters keep no p99 of the monolith carrying the whole route (nothing "
        "before the walk); each bake's gates compared the two p99s interval by interval "
        "('strangler history')",
        ev,
    )
    if bakes.baseline.intervals == 0:
        # The walk went straight to 100 %: there is no monolith figure of the same route.
        why = "no judged bake interval before 100 %: no baseline of the monolith on the route"
        results[0] = CheckResult(NAMES[0], Verdict.SKIPPED, why, ev)
    return results


def metric_items(ctx: CheckContext, source: MetricWindowSource | None) -> list[CheckResult]:
    """The three metric items, from ``source`` or else from the walk's bakes."""
    if source is not None:
        return _from_source(ctx, source)
    if ctx.history.bakes is not None:
        return _from_bakes(ctx, ctx.history.bakes)
    why = (
        "no metric source in the spec (traffic.metrics); compare with the monolith's "
        "baseline by hand"
    )
    return [CheckResult(n, Verdict.SKIPPED, why) for n in NAMES]
