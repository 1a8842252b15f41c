"""The router kinds a spec may name, written out: ``kind`` → options model and factory.

A static table rather than a registry filled at import time, so what exists never depends on
what happened to be imported. The spec validates ``traffic.router`` against the kind's
options model at load time (an unknown kind lists these); :func:`make_router` builds one.
A new kind is a module with an options model and a ``create`` function, and a line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strangler.kinds import Kind, build, lookup
from strangler.traffic.base import Router, RouterContext

__all__ = ["ROUTERS", "make_router", "router_kind"]

ROUTERS: Mapping[str, Kind[RouterContext, Router]] = {
    "alb": Kind(
        "strangler.traffic.alb",
        "AlbOptions",
        "AWS ALB listener rule with two weighted target groups",
    ),
    "haproxy": Kind(
        "strangler.traffic.haproxy",
        "HaproxyOptions",
        "HAProxy server weights over the runtime API",
    ),
    "local": Kind(
        "strangler.traffic.local",
        "LocalOptions",
        "strangler's own weighted proxy (rehearsals, demo)",
    ),
    "terraform": Kind(
        "strangler.traffic.terraform",
        "TerraformOptions",
        "terraform.tfvars weights, plan, apply, commit",
    ),
}


def router_kind(kind: str) -> Kind[RouterContext, Router]:
    """The kind's entry; BadInput listing the valid kinds when there is none."""
    return lookup(ROUTERS, "router", kind)


def make_router(kind: str, options: Mapping[str, Any], ctx: RouterContext) -> Router:
    """A router of ``kind`` built with its validated ``options``."""
    return build(ROUTERS, "router", kind, options, ctx)
