"""The metric source kinds a spec may name, written out: ``kind`` → options model and factory.

A static table, like :mod:`strangler.traffic.kinds`. Without ``traffic.metrics`` the gates
read the router's own counters (kind ``router``), which only counting routers have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strangler.kinds import Kind, build, lookup
from strangler.metrics.base import MetricContext, MetricSource

__all__ = ["DEFAULT_KIND", "SOURCES", "make_source", "source_kind"]

DEFAULT_KIND = "router"

SOURCES: Mapping[str, Kind[MetricContext, MetricSource]] = {
    "alb_logs": Kind(
        "strangler.metrics.alb_logs", "AlbLogsOptions", "ALB access logs in S3, per route"
    ),
    "cloudwatch": Kind(
        "strangler.metrics.cloudwatch",
        "CloudwatchOptions",
        "CloudWatch ALB target-group metrics (whole target groups, not per route)",
    ),
    "prometheus": Kind(
        "strangler.metrics.prometheus", "PrometheusOptions", "PromQL over Prometheus' HTTP API"
    ),
    "router": Kind(
        "strangler.metrics.router",
        "RouterOptions",
        "the router's own counters (local proxy, HAProxy)",
    ),
}


def source_kind(kind: str) -> Kind[MetricContext, MetricSource]:
    """The kind's entry; BadInput listing the valid kinds when there is none."""
    return lookup(SOURCES, "metrics", kind)


def make_source(kind: str | None, options: Mapping[str, Any], ctx: MetricContext) -> MetricSource:
    """The source of ``kind`` (default: the router's counters) built with ``options``."""
    return build(SOURCES, "metrics", kind or DEFAULT_KIND, options, ctx)
