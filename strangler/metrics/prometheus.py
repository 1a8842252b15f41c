"""The ``prometheus`` metric source: PromQL over Prometheus' HTTP API.

Three query templates per side (``string.Template``: ``$target``, ``$route``, ``$window``),
evaluated instantly at the interval's end over a range the length of the interval. The
defaults read strangler's own proxy (``strangler_proxy_*``); point them at your ingress or
service mesh metrics, keeping the monolith's figures **per route**, for example::

    metrics:
      kind: prometheus
      url: http://prometheus:9090
      targets: { monolith: monolith, service: order-service }
      queries:
        requests: sum(increase(http_requests_total{backend="$target",path="$route"}[$window]))

``increase()`` extrapolates to the range's edges, so counts are rounded estimates; the gates'
statistics treat them as counts.
"""

from __future__ import annotations

import math
import urllib.parse
from datetime import datetime
from string import Template

from pydantic import BaseModel, ConfigDict, Field

from strangler.errors import StranglerError
from strangler.metrics.base import MetricContext, MetricsUnreachable, TargetStats, Window
from strangler.traffic.http import http_json

__all__ = ["PrometheusOptions", "PrometheusSource"]

DEFAULT_QUERIES = {
    "requests": 'sum(increase(strangler_proxy_requests_total{target="$target",route="$route"}'
    "[$window]))",
    "errors": 'sum(increase(strangler_proxy_errors_total{target="$target",route="$route"}'
    "[$window]))",
    "p99": "histogram_quantile(0.99, sum by (le) (increase("
    'strangler_proxy_request_duration_seconds_bucket{target="$target",route="$route"}'
    "[$window])))",
}


class PrometheusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(description="Prometheus base URL, e.g. http://127.0.0.1:9090")
    targets: dict[str, str] = Field(
        default_factory=lambda: {"monolith": "monolith", "service": "service"},
        description="Label value of each side ($target in the queries).",
    )
    route: str | None = Field(default=None, description="$route; default: the spec's route.")
    queries: dict[str, str] = Field(default_factory=dict, description="Overrides by name.")
    timeout: float = 10.0


class PrometheusSource:
    kind = "prometheus"
    per_route = True

    def __init__(self, options: PrometheusOptions, route: str) -> None:
        unknown = sorted(set(options.queries) - set(DEFAULT_QUERIES))
        if unknown:
            raise StranglerError(
                f"unknown prometheus query names {unknown}; known: {sorted(DEFAULT_QUERIES)}"
            )
        self.options = options
        self.route = options.route or route
        self.queries = {**DEFAULT_QUERIES, **options.queries}

    def query(self, promql: str, at: datetime) -> float | None:
        params = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
        url = f"{self.options.url.rstrip('/')}/api/v1/query?{params}"
        try:
            answer = http_json(
                url, timeout=self.options.timeout, unreachable=MetricsUnreachable, what="Prometheus"
            )
        except MetricsUnreachable:
            raise
        except StranglerError as exc:
            raise MetricsUnreachable(f"Prometheus rejected a query: {exc.message}") from exc
        if answer.get("status") != "success":
            raise MetricsUnreachable(f"Prometheus answered {answer.get('error', answer)}")
        result = answer["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def _side(self, side: str, start: datetime, end: datetime) -> TargetStats:
        seconds = max(1, round((end - start).total_seconds()))
        fill = {"target": self.options.targets[side], "route": self.route, "window": f"{seconds}s"}
        got = {
            name: self.query(Template(q).substitute(fill), end) for name, q in self.queries.items()
        }
        return TargetStats(round(got["requests"] or 0), round(got["errors"] or 0), got["p99"])

    def measure(self, start: datetime, end: datetime) -> Window:
        return Window(
            start, end, self._side("monolith", start, end), self._side("service", start, end)
        )


def create(options: PrometheusOptions, ctx: MetricContext) -> PrometheusSource:
    return PrometheusSource(options, ctx.route)
