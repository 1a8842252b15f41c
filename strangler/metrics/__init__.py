"""Metric sources: one module per kind, each registering itself in :data:`metric_sources`."""

from strangler.metrics.base import metric_sources

__all__ = ["metric_sources"]
