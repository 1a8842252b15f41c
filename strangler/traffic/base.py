"""What every traffic router is, and the registry that maps a spec's ``kind`` to one.

A router moves one route's traffic between the monolith and the new service. It only knows
two numbers, held in :class:`Weights`: the share of the route each side gets. Everything else
(gates, bakes, the journal) lives above it in :mod:`strangler.traffic.shift`, so a new kind
is one module that registers a factory::

    @routers.register("local", LocalOptions, "strangler's own weighted proxy")
    def _make(options: LocalOptions, ctx: RouterContext) -> Router: ...

Every ``set_weights`` reads the weights back and returns what the router really holds; a
router that did not apply the change raises :class:`RouterError` rather than pretend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from strangler.errors import CheckFailed, Unreachable
from strangler.registry import Registry

if TYPE_CHECKING:
    from strangler.spec import Spec, TrafficSpec

__all__ = [
    "CountingRouter",
    "RouteCounters",
    "Router",
    "RouterContext",
    "RouterError",
    "RouterUnreachable",
    "Weights",
    "context_for",
    "make_router",
    "routers",
]

routers: Registry[Any] = Registry("router", "strangler.traffic")


class RouterUnreachable(Unreachable):
    """The router (proxy admin API, HAProxy socket, AWS) could not be reached."""


class RouterError(CheckFailed):
    """The router answered, but is not in the shape strangler needs or did not apply a change."""


@dataclass(frozen=True)
class Weights:
    """The share of the route, in percent, that goes to the new service (the rest: monolith).

    Percent with one decimal is the common unit: ALB weights run 0..999, so 0.5 % is a real
    first step, while HAProxy and the local proxy take any integer pair.
    """

    service: float

    def __post_init__(self) -> None:
        if not 0 <= self.service <= 100:
            raise ValueError(f"a service share must be within 0..100 percent, not {self.service}")

    @property
    def monolith(self) -> float:
        return round(100 - self.service, 3)

    @classmethod
    def from_pair(cls, monolith: float, service: float) -> Weights:
        """Weights from two raw router weights (any scale); both zero means no traffic moves."""
        total = monolith + service
        if total <= 0:
            raise RouterError("both weights are 0: the route would serve nothing")
        return cls(round(100 * service / total, 3))

    def pair(self, scale: int) -> tuple[int, int]:
        """Raw (monolith, service) weights summing to ``scale`` (e.g. 1000 for 0.1 % steps)."""
        service = round(self.service * scale / 100)
        return scale - service, service

    def __str__(self) -> str:
        return f"{self.service:g} % service / {self.monolith:g} % monolith"


@dataclass
class RouterContext:
    """What a router may need beyond its options: who it serves, and how to ask a person."""

    service: str
    route: str
    base_dir: Path = Path(".")
    # Asked before an irreversible external change (Terraform apply); False aborts.
    confirm: Callable[[str], bool] = field(default=lambda _question: False)
    # Where a router says what it does (a Terraform plan, a warning).
    say: Callable[[str], None] = field(default=lambda _text: None)
    assume_yes: bool = False
    reason: str = ""


@runtime_checkable
class Router(Protocol):
    kind: str

    def weights(self) -> Weights:
        """The weights the router holds now, read from the router itself."""
        ...

    def set_weights(self, weights: Weights) -> Weights:
        """Apply ``weights``, read them back, and return what the router now holds."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the router is (for plans, dry runs and the journal); no secrets."""
        ...

    def check(self) -> None:
        """Pre-flight: raise RouterUnreachable or RouterError if a shift could not work."""
        ...

    def plan_change(self, weights: Weights) -> list[str]:
        """The exact calls ``set_weights(weights)`` would make, for ``--dry-run``."""
        ...


@dataclass(frozen=True)
class RouteCounters:
    """Cumulative counters of one target on the route, from routers that keep them.

    ``buckets`` are cumulative latency histogram buckets ``(upper_bound_seconds, count)``,
    or None when the router keeps no histogram (HAProxy keeps averages only).
    """

    requests: int
    errors: int
    buckets: tuple[tuple[float, int], ...] | None = None


@runtime_checkable
class CountingRouter(Protocol):
    """A router that counts what it routes; the ``router`` metric source reads these."""

    def counters(self) -> dict[str, RouteCounters]:
        """``{"monolith": …, "service": …}`` for requests on the route only."""
        ...


def make_router(traffic: TrafficSpec, ctx: RouterContext) -> Router:
    """The router the spec's ``traffic.router`` names, built with its validated options."""
    backend = routers.get(traffic.router.kind)
    options = backend.options.model_validate(traffic.router.options())
    router: Router = backend.factory(options, ctx)
    return router


def context_for(spec: Spec, service: str, **kw: Any) -> RouterContext:
    svc = spec.service(service)
    route = svc.traffic.route if svc.traffic else ""
    return RouterContext(service=service, route=route, base_dir=spec.base_dir, **kw)
