"""The ``router`` metric source: the router's own per-target counters on the route.

Works with routers that count (:class:`strangler.traffic.base.CountingRouter`): the local
proxy (requests, 5xx, latency histogram) and HAProxy (requests and 5xx per server; no p99,
because HAProxy keeps latency averages only). Each ``measure`` returns the difference since
the previous one, so the bake loop calls it once per interval; :meth:`RouterSource.checkpoint`
and :meth:`RouterSource.restore` carry the counters an interval started from to the process
that judges it (``strangler run`` from cron). The counters are for the
route alone (the proxy labels them; the HAProxy backend serves only the route), so the
monolith's figures are a fair baseline.

A counter that went backwards (the proxy restarted) makes the interval unusable: it is
reported as unreachable rather than as negative traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from strangler.errors import StranglerError
from strangler.metrics.base import (
    MetricContext,
    MetricsUnreachable,
    TargetStats,
    Window,
    quantile_from_buckets,
)
from strangler.traffic.base import CountingRouter, RouteCounters

__all__ = ["RouterOptions", "RouterSource"]


class RouterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouterSource:
    kind = "router"
    per_route = True

    def __init__(self, router: CountingRouter) -> None:
        self.router = router
        self._last: dict[str, RouteCounters] | None = None
        try:
            self._last = router.counters()
        except StranglerError:
            self._last = None  # measured at the first interval instead

    def checkpoint(self) -> dict[str, Any] | None:
        """The counters the next interval is measured from, to carry across processes."""
        if self._last is None:
            return None
        return {
            side: {
                "requests": c.requests,
                "errors": c.errors,
                "buckets": [list(b) for b in c.buckets] if c.buckets is not None else None,
            }
            for side, c in self._last.items()
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Measure the next interval from counters an earlier process saved."""
        self._last = {
            side: RouteCounters(
                int(c["requests"]),
                int(c["errors"]),
                tuple((float(b), int(n)) for b, n in c["buckets"])
                if c.get("buckets") is not None
                else None,
            )
            for side, c in state.items()
        }

    def measure(self, start: datetime, end: datetime) -> Window:
        try:
            now = self.router.counters()
        except StranglerError as exc:
            raise MetricsUnreachable(f"router counters unavailable: {exc.message}") from exc
        before, self._last = self._last, now
        if before is None:
            raise MetricsUnreachable("no earlier reading of the router's counters to diff against")
        return Window(
            start,
            end,
            _diff(before["monolith"], now["monolith"]),
            _diff(before["service"], now["service"]),
        )


def _diff(before: RouteCounters, after: RouteCounters) -> TargetStats:
    requests, errors = after.requests - before.requests, after.errors - before.errors
    if requests < 0 or errors < 0:
        raise MetricsUnreachable("the router's counters went backwards (restarted?)")
    p99 = None
    if after.buckets is not None and before.buckets is not None and requests:
        old = dict(before.buckets)
        delta = [(bound, count - old.get(bound, 0)) for bound, count in after.buckets]
        p99 = quantile_from_buckets(delta, 0.99)
    return TargetStats(requests, errors, p99)


def create(options: RouterOptions, ctx: MetricContext) -> RouterSource:
    if not isinstance(ctx.router, CountingRouter):
        kind = getattr(ctx.router, "kind", "?")
        raise StranglerError(
            f"metrics kind 'router' needs a router that counts requests; {kind!r} does not",
            hint="set traffic.metrics to prometheus, cloudwatch or alb_logs",
        )
    return RouterSource(ctx.router)
