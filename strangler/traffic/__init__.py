"""Traffic routers: one module per kind, each registering itself in :data:`routers`."""

from strangler.traffic import local  # noqa: F401  (registers the kind)
from strangler.traffic.base import Router, RouterContext, Weights, make_router, routers

__all__ = ["Router", "RouterContext", "Weights", "make_router", "routers"]
