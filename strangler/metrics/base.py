"""What every metric source is, and the registry that maps a spec's ``kind`` to one."""

from __future__ import annotations

from typing import Any

from strangler.registry import Registry

__all__ = ["metric_sources"]

metric_sources: Registry[Any] = Registry("metrics", "strangler.metrics")
