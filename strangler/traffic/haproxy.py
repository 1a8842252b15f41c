"""The ``haproxy`` router: server weights over HAProxy's runtime API, no reload.

The route has its own backend with two servers, the monolith and the service; strangler sets
their weights with ``set weight BACKEND/SERVER N`` on the stats socket (``level admin``) and
reads them back with ``get weight``. Nothing is reloaded and no connection is dropped.
HAProxy weights run 0..256, so a percentage is expressed on a scale that represents it
exactly where one exists (100, 200 or 250), else on 256.

The backend's per-server counters (``show stat``: ``stot``, ``hrsp_5xx``) feed the ``router``
metric source. HAProxy keeps latency as averages, not percentiles, so it gives no p99.

Spec::

    router: { kind: haproxy, socket: /run/haproxy/admin.sock, backend: orders,
              monolith_server: monolith, service_server: order_service }
"""

from __future__ import annotations

import csv
import io
import socket
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from strangler.traffic.base import (
    RouteCounters,
    RouterContext,
    RouterError,
    RouterUnreachable,
    Weights,
)

__all__ = ["HaproxyOptions", "HaproxyRouter"]


class HaproxyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    socket: str = Field(description="Stats socket: a unix path, or host:port for a TCP socket.")
    backend: str = Field(description="The backend that serves the route.")
    monolith_server: str = "monolith"
    service_server: str = "service"
    timeout: float = Field(default=5.0, gt=0)


def _scale(percent: float) -> int:
    for scale in (100, 200, 250):
        if abs(percent * scale / 100 - round(percent * scale / 100)) < 1e-9:
            return scale
    return 256


class HaproxyRouter:
    kind = "haproxy"

    def __init__(self, options: HaproxyOptions) -> None:
        self.options = options

    def _command(self, command: str) -> str:
        where = self.options.socket
        try:
            if where.startswith("/") or where.startswith("."):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.options.timeout)
                sock.connect(where)
            else:
                host, _, port = where.rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=self.options.timeout)
            with sock:
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise RouterUnreachable(
                f"cannot reach HAProxy's stats socket {where}: {exc}",
                hint="is HAProxy running with 'stats socket … level admin'?",
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def _server(self, which: str) -> str:
        return f"{self.options.backend}/{which}"

    def _get(self, server: str) -> int:
        answer = self._command(f"get weight {self._server(server)}").strip()
        # "10 (initial 10)"; anything else is HAProxy's error text.
        head = answer.split(" ", 1)[0]
        if not head.isdigit():
            raise RouterError(
                f"HAProxy has no server {self._server(server)}: {answer or 'empty answer'}",
                hint="check backend, monolith_server and service_server in the spec",
            )
        return int(head)

    def weights(self) -> Weights:
        mono = self._get(self.options.monolith_server)
        svc = self._get(self.options.service_server)
        return Weights.from_pair(mono, svc)

    def _set_commands(self, weights: Weights) -> list[str]:
        mono, svc = weights.pair(_scale(weights.service))
        # The larger weight first: a side only drops to 0 after the other is up, so the
        # backend never has both servers at 0 between the two commands.
        first = sorted([("service", svc), ("monolith", mono)], key=lambda p: -p[1])
        names = {"service": self.options.service_server, "monolith": self.options.monolith_server}
        return [f"set weight {self._server(names[side])} {value}" for side, value in first]

    def set_weights(self, weights: Weights) -> Weights:
        for command in self._set_commands(weights):
            answer = self._command(command).strip()
            if answer:
                raise RouterError(f"HAProxy refused '{command}': {answer}")
        got = self.weights()
        if abs(got.service - weights.service) > 0.2:
            raise RouterError(f"HAProxy holds {got} after being set to {weights}")
        return got

    def counters(self) -> dict[str, RouteCounters]:
        text = self._command("show stat")
        rows = list(csv.DictReader(io.StringIO(text.lstrip("# "))))
        out: dict[str, RouteCounters] = {}
        for side, name in (
            ("monolith", self.options.monolith_server),
            ("service", self.options.service_server),
        ):
            row = next(
                (
                    r
                    for r in rows
                    if r.get("pxname") == self.options.backend and r.get("svname") == name
                ),
                None,
            )
            if row is None:
                raise RouterError(f"HAProxy's stats have no server {self._server(name)}")
            out[side] = RouteCounters(int(row["stot"] or 0), int(row["hrsp_5xx"] or 0), None)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "socket": self.options.socket,
            "backend": self.options.backend,
            "servers": [self.options.monolith_server, self.options.service_server],
        }

    def check(self) -> None:
        self.weights()

    def plan_change(self, weights: Weights) -> list[str]:
        return [f"{self.options.socket}: {c}" for c in self._set_commands(weights)]


def create(options: HaproxyOptions, ctx: RouterContext) -> HaproxyRouter:
    return HaproxyRouter(options)
