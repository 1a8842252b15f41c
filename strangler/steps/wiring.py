"""From the spec to the plain values the mechanism takes: endpoints, sync routes, routers.

The packages below ``steps/`` never read the spec's service sections themselves; these
functions are the one place that says which DSN, schema, table list, router options or
metric options a service's step hands them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strangler.errors import BadInput
from strangler.metrics.base import MetricContext, MetricSource
from strangler.metrics.kinds import make_source
from strangler.spec import ServiceSpec, Spec, TrafficSpec
from strangler.traffic.base import Router, RouterContext
from strangler.traffic.kinds import make_router

if TYPE_CHECKING:
    from strangler.pg.copy.rows import Endpoints
    from strangler.pg.sync.cdc import SyncRoute
    from strangler.pg.sync.slot import Direction

__all__ = [
    "endpoints",
    "metric_source",
    "router",
    "router_context",
    "sync_route",
    "traffic_of",
]


def endpoints(spec: Spec, service: str) -> Endpoints:
    """Where a copy reads and writes (``target_dsn`` None: the monolith's instance)."""
    # Imported here: every step imports this module, a traffic rollback needs no PostgreSQL.
    from strangler.pg.copy.rows import Endpoints

    svc = spec.service(service)
    return Endpoints(spec.source.dsn, spec.source.schema_, svc.target.dsn, svc.target.schema_)


def sync_route(spec: Spec, service: str, direction: Direction = "forward") -> SyncRoute:
    """The way changes flow for ``service``: forward (monolith → service) or reverse."""
    from strangler.pg.sync.cdc import SyncRoute

    svc = spec.service(service)
    mono = (spec.source.dsn, spec.source.schema_, "monolith")
    serv = (spec.target_dsn(service), svc.target.schema_, f"{service} database")
    src, dst = (mono, serv) if direction == "forward" else (serv, mono)
    return SyncRoute(
        service,
        direction,
        src[0],
        src[1],
        dst[0],
        dst[1],
        tuple(svc.tables),
        src[2],
        dst[2],
        max_wal_bytes=svc.sync.max_retained_wal if svc.sync else None,
    )


def traffic_of(svc: ServiceSpec, service: str) -> TrafficSpec:
    """The service's traffic section; BadInput naming the fix when the spec has none."""
    if svc.traffic is None:
        raise BadInput(
            f"{service} has no traffic: section in the spec",
            hint="add traffic: {route: …, router: {kind: …}} to the service",
        )
    return svc.traffic


def router_context(spec: Spec, service: str, **kw: Any) -> RouterContext:
    svc = spec.service(service)
    route = svc.traffic.route if svc.traffic else ""
    return RouterContext(service=service, route=route, base_dir=spec.base_dir, **kw)


def router(spec: Spec, service: str, ctx: RouterContext | None = None) -> Router:
    """The router the spec's ``traffic.router`` names."""
    traffic = traffic_of(spec.service(service), service)
    return make_router(
        traffic.router.kind, traffic.router.options(), ctx or router_context(spec, service)
    )


SourceFactory = Callable[[MetricContext], MetricSource]


def metric_source(spec: Spec, service: str, router: Router | None) -> MetricSource:
    """The spec's ``traffic.metrics`` source, or the router's counters when none is set."""
    traffic = traffic_of(spec.service(service), service)
    kind = traffic.metrics.kind if traffic.metrics else None
    options = traffic.metrics.options() if traffic.metrics else {}
    return make_source(kind, options, MetricContext(service, traffic.route, router))
