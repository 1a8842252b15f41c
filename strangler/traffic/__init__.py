"""Traffic routers: one module per kind, each registering itself in :data:`routers`."""

from strangler.traffic.base import routers

__all__ = ["routers"]
