"""Traffic routers: one module per kind, each registering itself in :data:`routers`."""

from strangler.traffic import alb, haproxy, local, terraform  # noqa: F401  (register)
from strangler.traffic.base import Router, RouterContext, Weights, make_router, routers

__all__ = ["Router", "RouterContext", "Weights", "make_router", "routers"]
