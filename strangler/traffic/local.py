"""The ``local`` router: strangler's own weighted proxy (:mod:`strangler.traffic.proxy`).

The router talks to a running proxy through its admin API, so the proxy can live in another
process (``python -m strangler.traffic.proxy``) or in the demo's own.

Spec::

    router: { kind: local, admin_url: "http://127.0.0.1:8600" }
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from strangler.traffic.base import (
    ADMIN,
    RouteCounters,
    RouterContext,
    RouterError,
    RouterUnreachable,
    Weights,
)
from strangler.traffic.http import http_json

__all__ = ["LocalOptions", "LocalRouter"]


class LocalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    admin_url: str = Field(description="Base URL of the running strangler proxy.")
    timeout: float = Field(default=5.0, gt=0, description="Seconds per admin request.")


class LocalRouter:
    kind = "local"

    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.base = options.admin_url.rstrip("/") + ADMIN

    def _call(self, what: str, method: str = "GET", body: Any = None) -> Any:
        return http_json(
            self.base + what,
            method=method,
            body=body,
            timeout=self.options.timeout,
            unreachable=RouterUnreachable,
            what="strangler proxy",
        )

    def weights(self) -> Weights:
        return Weights(float(self._call("weights")["service"]))

    def set_weights(self, weights: Weights) -> Weights:
        self._call("weights", "PUT", {"service": weights.service})
        got = self.weights()
        if abs(got.service - weights.service) > 0.05:
            raise RouterError(
                f"the proxy at {self.options.admin_url} holds {got} after being set to {weights}"
            )
        return got

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("stats")
        return result

    def counters(self) -> dict[str, RouteCounters]:
        targets = self.stats()["targets"]
        out = {}
        for target in ("monolith", "service"):
            c = targets.get(target, {}).get("route")
            if c is None:
                out[target] = RouteCounters(0, 0, ())
                continue
            buckets = tuple(
                (float("inf") if b == "+Inf" else float(b), int(n)) for b, n in c["buckets"]
            )
            out[target] = RouteCounters(int(c["requests"]), int(c["errors"]), buckets)
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "admin_url": self.options.admin_url}

    def check(self) -> None:
        self.weights()

    def plan_change(self, weights: Weights) -> list[str]:
        return [
            f"PUT {self.base}weights {{'service': {weights.service:g}}}",
            f"GET {self.base}weights",
        ]


def create(options: LocalOptions, ctx: RouterContext) -> LocalRouter:
    return LocalRouter(options)
