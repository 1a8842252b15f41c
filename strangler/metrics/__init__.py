"""Metric sources: one module per kind, each registering itself in :data:`metric_sources`."""

from strangler.metrics import alb_logs, cloudwatch, prometheus, router  # noqa: F401  (register)
from strangler.metrics.base import MetricSource, TargetStats, Window, make_source, metric_sources

__all__ = ["MetricSource", "TargetStats", "Window", "make_source", "metric_sources"]
