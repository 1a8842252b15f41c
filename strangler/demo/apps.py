"""The demo's sample HTTP apps and load generator: the monolith's and the order service's
``/api/v1/orders`` endpoints, and a steady stream of requests through the router.

The apps are real HTTP servers on 127.0.0.1 (threads of the demo's process). A service can be
told to fail a share of its requests, deterministically spread (every n-th), when a condition
holds: the demo's ``--faulty`` order service breaks once it carries 20 % of the route.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from strangler.traffic.proxy import QuietServer

__all__ = ["LoadGenerator", "SampleApp"]


class SampleApp:
    """``GET /api/v1/orders/N`` answers JSON naming the app; ``/health`` answers ok."""

    def __init__(
        self,
        name: str,
        *,
        failure_rate: float = 0.0,
        fail_when: Callable[[], bool] = lambda: True,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.failure_rate = failure_rate
        self.fail_when = fail_when
        self.delay = delay
        self._lock = threading.Lock()
        self._served = 0
        self._server = QuietServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SampleApp:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _should_fail(self) -> bool:
        if self.failure_rate <= 0 or not self.fail_when():
            return False
        with self._lock:
            n, self._served = self._served, self._served + 1
        milli = round(self.failure_rate * 1000)
        return ((n + 1) * milli) // 1000 > (n * milli) // 1000

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle and delayed
            # ACKs add ~40 ms to every keep-alive response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if app.delay:
                    time.sleep(app.delay)
                if app._should_fail():
                    status, body = 500, {"error": f"{app.name} failed"}
                else:
                    status, body = 200, {"served_by": app.name, "path": self.path}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class LoadGenerator:
    """``workers`` keep-alive clients requesting ``path`` at about ``rate`` requests/s total."""

    def __init__(
        self, url: str, *, rate: float = 200, workers: int = 4, path: str = "/api/v1/orders/{n}"
    ) -> None:
        self.url = url
        self.rate = rate
        self.workers = workers
        self.path = path
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> LoadGenerator:
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _run(self, worker: int) -> None:
        host, _, port = self.url.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        pause = self.workers / self.rate if self.rate > 0 else 0.0
        n = worker
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                conn.request("GET", self.path.format(n=n))
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                status = 0
            with self._lock:
                self.statuses[status] += 1
            n += self.workers
            left = pause - (time.monotonic() - began)
            if left > 0:
                self._stop.wait(left)
        conn.close()
