"""What every metric source is: a Protocol and the figures it returns for an interval.

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

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from strangler.errors import MetricsUnreachable
from strangler.traffic.base import Router

__all__ = [
    "Checkpointed",
    "MetricContext",
    "MetricSource",
    "MetricsUnreachable",
    "TargetStats",
    "Window",
    "quantile_from_buckets",
]


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
    """What a source may need beyond its options: the service, its route and its router."""

    service: str
    route: str
    router: Router | None = None


@runtime_checkable
class MetricSource(Protocol):
    kind: str
    # True when the monolith's figures cover only the route (a fair baseline).
    per_route: bool

    def measure(self, start: datetime, end: datetime) -> Window:
        """Both sides' figures for the interval; raises MetricsUnreachable when it cannot."""
        ...


@runtime_checkable
class Checkpointed(Protocol):
    """A source that measures "since the previous reading" (router counters): the reading an
    interval starts from can be saved and restored, so another process can judge it."""

    def checkpoint(self) -> dict[str, Any] | None: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


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
