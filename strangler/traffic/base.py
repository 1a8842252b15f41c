"""What every traffic router is: a Protocol, the weights it holds, and what it may ask.

A router moves one route's traffic between the monolith and the new service. It only knows
two numbers, held in :class:`Weights`: the share of the route each side gets. Everything else
(gates, bakes, the journal) lives above it in :mod:`strangler.steps.shift`, so a new kind
is one module with an options model and a ``create(options, ctx)`` function, listed in
:mod:`strangler.traffic.kinds`.

Every ``set_weights`` reads the weights back and returns what the router really holds; a
router that did not apply the change raises :class:`RouterError` rather than pretend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from strangler.errors import RouterError, RouterUnreachable

__all__ = [
    "ADMIN",
    "CountingRouter",
    "RouteCounters",
    "Router",
    "RouterContext",
    "RouterError",
    "RouterUnreachable",
    "Weights",
]

# The local proxy's admin path prefix, shared by the proxy and its router (here so that
# loading a spec that names the local router does not import the proxy's HTTP server).
ADMIN = "/_strangler/"


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
