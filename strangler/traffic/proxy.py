"""strangler's own weighted reverse proxy: the ``local`` router's data plane.

For rehearsals and the demo, where there is no load balancer: requests whose path matches
the spec's route go to the monolith or the service by weight, everything else to the
monolith. It counts requests, 5xx answers and latency per target and per route (on the route
or ``other``), which is what the ``router`` metric source reads and what Prometheus scrapes.

Admin endpoints live under ``/_strangler/`` (weights, stats, metrics). The proxy binds to
loopback only: it is a rehearsal tool, and anyone who can reach the admin path can move
traffic.

The split is deterministic, not random: of every 1,000 requests on the route, exactly
``10 × percent`` go to the service, spread evenly. Small rehearsals then show the weight
they were given instead of sampling noise.

Run it standalone::

    python -m strangler.traffic.proxy --listen 127.0.0.1:8600 \\
        --monolith http://127.0.0.1:8001 --service http://127.0.0.1:8002 \\
        --route '/api/v1/orders*'
"""

from __future__ import annotations

import argparse
import fnmatch
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from strangler.traffic.base import ADMIN

__all__ = ["BUCKETS", "LocalProxy", "QuietServer"]

BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, float("inf"),
)  # fmt: skip
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


@dataclass
class _Counter:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.errors += status >= 500
        self.seconds += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1  # cumulative, as Prometheus histograms are

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "buckets": [
                [b if b != float("inf") else "+Inf", c]
                for b, c in zip(BUCKETS, self.buckets, strict=True)
            ],
        }


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class LocalProxy:
    """A weighted reverse proxy on 127.0.0.1, started in a thread: ``start()``/``stop()``."""

    def __init__(
        self,
        monolith: str,
        service: str,
        route: str,
        *,
        port: int = 0,
        service_percent: float = 0.0,
        timeout: float = 30.0,
    ) -> None:
        self.upstreams = {"monolith": urlsplit(monolith), "service": urlsplit(service)}
        self.route = route
        self.timeout = timeout
        self._lock = threading.Lock()
        self._milli = 0  # service share in tenths of a percent (0..1000)
        self._seen = 0  # requests on the route since the weight last changed
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._local = threading.local()
        self.set_service_percent(service_percent)
        self._server = QuietServer(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="strangler-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    # ------------------------------------------------------------------ weights and counters

    def set_service_percent(self, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"service percent must be within 0..100, not {percent}")
        with self._lock:
            self._milli = round(percent * 10)
            self._seen = 0

    def service_percent(self) -> float:
        return self._milli / 10

    def _choose(self, path: str) -> tuple[str, str]:
        if not fnmatch.fnmatchcase(path, self.route):
            return "monolith", "other"
        with self._lock:
            n, self._seen = self._seen, self._seen + 1
            milli = self._milli
        # Exactly `milli` of every 1,000 route requests, evenly spread (no sampling noise).
        to_service = ((n + 1) * milli) // 1000 > (n * milli) // 1000
        return ("service" if to_service else "monolith"), self.route

    def _count(self, target: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counters.setdefault((target, route), _Counter()).add(status, seconds)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            targets: dict[str, dict[str, Any]] = {"monolith": {}, "service": {}}
            for (target, route), counter in self._counters.items():
                targets[target]["route" if route != "other" else "other"] = counter.to_dict()
            return {
                "route": self.route,
                "service_percent": self.service_percent(),
                "targets": targets,
            }

    def metrics_text(self) -> str:
        """Prometheus text exposition of the counters."""
        out = [
            "# HELP strangler_proxy_requests_total Requests answered, by target and route.",
            "# TYPE strangler_proxy_requests_total counter",
        ]
        with self._lock:
            items = sorted(self._counters.items())
            weight = self.service_percent()
        for (target, route), c in items:
            out.append(
                f'strangler_proxy_requests_total{{target="{target}",route="{route}"}} {c.requests}'
            )
        out += [
            "# HELP strangler_proxy_errors_total Answers with a 5xx status, by target and route.",
            "# TYPE strangler_proxy_errors_total counter",
        ]
        for (target, route), c in items:
            out.append(
                f'strangler_proxy_errors_total{{target="{target}",route="{route}"}} {c.errors}'
            )
        out += [
            "# HELP strangler_proxy_request_duration_seconds Upstream latency.",
            "# TYPE strangler_proxy_request_duration_seconds histogram",
        ]
        for (target, route), c in items:
            labels = f'target="{target}",route="{route}"'
            for bound, count in zip(BUCKETS, c.buckets, strict=True):
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    f'strangler_proxy_request_duration_seconds_bucket{{{labels},le="{le}"}} {count}'
                )
            out.append(f"strangler_proxy_request_duration_seconds_sum{{{labels}}} {c.seconds}")
            out.append(f"strangler_proxy_request_duration_seconds_count{{{labels}}} {c.requests}")
        out += [
            "# HELP strangler_proxy_service_percent Share of the route sent to the service.",
            "# TYPE strangler_proxy_service_percent gauge",
            f"strangler_proxy_service_percent {weight}",
        ]
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ forwarding

    def _upstream(self, target: str) -> http.client.HTTPConnection:
        # One keep-alive connection per handler thread and target.
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(target)
        if conn is None:
            u = self.upstreams[target]
            conn = http.client.HTTPConnection(
                u.hostname or "127.0.0.1", u.port or 80, timeout=self.timeout
            )
            pool[target] = conn
        return conn

    def forward(
        self, target: str, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            conn = self._upstream(target)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.pool.pop(target, None)
                # A reused keep-alive connection may have been closed by the upstream; retry
                # once on a fresh one, then answer 502 (counted against the target).
                if attempt == 2:
                    msg = f"strangler proxy: {target} unreachable: {exc}".encode()
                    return 502, [("Content-Type", "text/plain")], msg
        raise AssertionError("unreachable")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle and delayed
            # ACKs add ~40 ms to every keep-alive response.
            disable_nagle_algorithm = True
            server_version = "strangler-proxy"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the counters are the log

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _admin(self) -> None:
                what = self.path[len(ADMIN) :].split("?")[0]
                if what == "weights" and self.command == "PUT":
                    length = int(self.headers.get("Content-Length") or 0)
                    try:
                        percent = float(json.loads(self.rfile.read(length))["service"])
                        proxy.set_service_percent(percent)
                    except (ValueError, KeyError, TypeError) as exc:
                        self._reply(400, json.dumps({"error": str(exc)}).encode())
                        return
                if what == "weights":
                    self._reply(200, json.dumps({"service": proxy.service_percent()}).encode())
                elif what == "stats":
                    self._reply(200, json.dumps(proxy.stats()).encode())
                elif what == "metrics":
                    self._reply(200, proxy.metrics_text().encode(), "text/plain; version=0.0.4")
                else:
                    self._reply(404, b'{"error": "unknown admin path"}')

            def _proxy(self) -> None:
                if self.path.startswith(ADMIN):
                    self._admin()
                    return
                path_only = self.path.split("?", 1)[0]
                target, route = proxy._choose(path_only)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                began = time.perf_counter()
                status, resp_headers, data = proxy.forward(
                    target, self.command, self.path, headers, body
                )
                proxy._count(target, route, status, time.perf_counter() - began)
                self.send_response(status)
                for k, v in resp_headers:
                    if k.lower() not in _HOP and k.lower() not in (
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("X-Strangler-Target", target)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _proxy

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="strangler's weighted reverse proxy")
    parser.add_argument("--listen", default="127.0.0.1:8600", help="127.0.0.1:PORT")
    parser.add_argument("--monolith", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--route", required=True, help="path pattern, e.g. '/api/v1/orders*'")
    parser.add_argument("--service-percent", type=float, default=0.0)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost", ""):
        parser.error("the rehearsal proxy listens on 127.0.0.1 only")
    proxy = LocalProxy(
        args.monolith,
        args.service,
        args.route,
        port=int(port),
        service_percent=args.service_percent,
    )
    print(f"strangler proxy on {proxy.url}, route {args.route}", flush=True)
    proxy.serve_forever()


if __name__ == "__main__":
    main()
