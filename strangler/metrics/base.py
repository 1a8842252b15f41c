"""What every metric source is, and the registry that maps a spec's ``kind`` to one.

A source answers one question for the gates: over the interval ``[start, end)``, how many
requests on the route did the monolith and the service each serve, how many of them failed
with a 5xx, and what was their p99 latency. The monolith's figures are the baseline, so they
must be for **the same route**: a source that can only see whole target groups says so in
:attr:`MetricSource.per_route`, and the plan warns.

Sources that read counters (the local proxy, HAProxy) measure the interval since their
previous ``measure`` call; sources with history (Prometheus, CloudWatch, ALB logs) query the
interval itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from strangler.errors import Unreachable
from strangler.registry import Registry

if TYPE_CHECKING:
    from strangler.spec import TrafficSpec
    from strangler.traffic.base import Router

__all__ = [
    "MetricContext",
    "MetricSource",
    "MetricsUnreachable",
    "TargetStats",
    "Window",
    "make_source",
    "metric_sources",
    "quantile_from_buckets",
]

metric_sources: Registry[Any] = Registry("metrics", "strangler.metrics")


class MetricsUnreachable(Unreachable):
    """The metric source could not be read; the gate's verdict for the interval is ``error``."""


@dataclass(frozen=True)
class TargetStats:
    """One side's figures for one interval. ``p99`` in seconds, None when the source has none."""

    requests: int
    errors: int
    p99: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    monolith: TargetStats
    service: TargetStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "monolith": self.monolith.to_dict(),
            "service": self.service.to_dict(),
        }


@dataclass
class MetricContext:
    service: str
    route: str
    traffic: TrafficSpec
    router: Router | None = None


@runtime_checkable
class MetricSource(Protocol):
    kind: str
    # True when the monolith's figures cover only the route (a fair baseline).
    per_route: bool

    def measure(self, start: datetime, end: datetime) -> Window:
        """Both sides' figures for the interval; raises MetricsUnreachable when it cannot."""
        ...


def make_source(ctx: MetricContext) -> MetricSource:
    """The spec's ``traffic.metrics`` source, or the router's own counters when none is set."""
    spec = ctx.traffic.metrics
    kind = spec.kind if spec else "router"
    backend = metric_sources.get(kind)
    options = backend.options.model_validate(spec.options() if spec else {})
    source: MetricSource = backend.factory(options, ctx)
    return source


def quantile_from_buckets(buckets: list[tuple[float, int]], q: float) -> float | None:
    """The ``q`` quantile from cumulative histogram buckets ``[(upper_bound, count), …]``.

    Interpolates linearly inside the bucket, as Prometheus' ``histogram_quantile`` does; the
    answer is never finer than the buckets, which is why the proxy's buckets are dense near
    the latencies a service usually has.
    """
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            inside = count - lower_count
            frac = (rank - lower_count) / inside if inside else 1.0
            return lower_bound + (bound - lower_bound) * frac
        lower_bound, lower_count = bound, count
    return lower_bound
