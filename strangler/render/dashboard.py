"""``strangler dashboard``: a read-only web page over the journal, updating live.

One thread reads the journal every ``interval`` seconds (:func:`strangler.steps.overview.overview`),
and the live sync lag of online services every ``lag_every`` seconds (the live source; the
journal's newest sample when the databases cannot be reached), and, when anything changed,
hands the new snapshot to every open page over server-sent events.
The server answers GET only (``/``, ``/api/services``, ``/events``); anything else is 405, so
nothing can be changed through it. It binds to 127.0.0.1 unless told otherwise, and the
command refuses another address without a token; with a token every request must carry it
(``?token=…`` once, which sets a cookie, or ``Authorization: Bearer …``).

Usage::

    with Dashboard(spec, port=8484) as board:
        print(board.url)
        board.wait()                # until Ctrl-C
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from strangler.errors import BadInput, StranglerError
from strangler.journal import Journal
from strangler.pg.sync.lag import LagSampler
from strangler.phases import Phase
from strangler.render.dashboard_page import PAGE
from strangler.secrets import scrub
from strangler.spec import Spec
from strangler.steps.overview import overview
from strangler.steps.sync import direction_in
from strangler.steps.wiring import sync_route

__all__ = ["Dashboard"]

_COOKIE = "strangler_token"


class Dashboard:
    def __init__(
        self,
        spec: Spec,
        *,
        host: str = "127.0.0.1",
        port: int = 8484,
        token: str | None = None,
        interval: float = 1.0,
        lag_every: float = 5.0,
    ) -> None:
        self.spec = spec
        self.host = host
        self.token = token
        self.interval = interval
        self._journal = Journal(spec.state_url(), command="strangler dashboard")
        self._changed = threading.Condition()
        self._snapshot = ""
        self._version = 0
        self._stop = threading.Event()
        self.lag_every = lag_every
        self._samplers: dict[str, LagSampler] = {}
        self._sampled: dict[str, float] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._refresh()
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            self._journal.close()
            raise BadInput(
                f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --port (0 picks a free one)",
            ) from exc
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True),
            threading.Thread(target=self._poll, name="dashboard-journal", daemon=True),
        ]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------- the journal side

    def _live_lag(self, service: dict[str, Any]) -> None:
        """Replace the journal's newest lag sample by a live one for an online service whose
        sync runs (at most every ``lag_every`` seconds; a database that cannot be reached is
        shown as such, the journal's sample kept)."""
        name = service["service"]
        if service["strategy"] != "online":
            return
        direction = direction_in(Phase(service["phase"]))
        if direction is None:
            return
        key = f"{name}:{direction}"
        now = time.monotonic()
        if now - self._sampled.get(key, -1e9) >= self.lag_every:
            self._sampled[key] = now
            sampler = self._samplers.setdefault(
                key, LagSampler(sync_route(self.spec, name, direction))
            )
            try:
                s = sampler.sample()
                self._live[key] = {
                    "at": s.at.isoformat(),
                    "direction": direction,
                    "bytes": s.lag_bytes,
                    "seconds": None if s.lag_seconds is None else round(s.lag_seconds, 1),
                    "retained_wal_bytes": s.retained_wal_bytes,
                    "live": True,
                }
            except StranglerError as exc:
                self._live[key] = {"error": exc.message}
        live = self._live.get(key)
        if live and "error" not in live:
            service["lag"] = live
        elif live:
            service["lag_error"] = live["error"]

    def _refresh(self) -> None:
        try:
            services = [o.to_dict() for o in overview(self.spec, self._journal)]
            for service in services:
                self._live_lag(service)
            data: dict[str, Any] = {"spec": str(self.spec.path or ""), "services": services}
        except StranglerError as exc:
            data = {"spec": str(self.spec.path or ""), "services": [], "error": exc.message}
        text = scrub(json.dumps(data, default=str))
        with self._changed:
            if text != self._snapshot:
                self._snapshot = text
                self._version += 1
                self._changed.notify_all()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()

    def snapshot(self) -> tuple[int, str]:
        with self._changed:
            return self._version, self._snapshot

    # ---------------------------------------------------------------------- the web side

    def _authorized(self, handler: BaseHTTPRequestHandler) -> tuple[bool, bool]:
        """(allowed, set the cookie) for one request."""
        if self.token is None:
            return True, False
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        given = (query.get("token") or [""])[0]
        if given and hmac.compare_digest(given, self.token):
            return True, True
        auth = handler.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:], self.token):
            return True, False
        for part in handler.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == _COOKIE and hmac.compare_digest(value, self.token):
                return True, False
        return False, False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        board = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "strangler-dashboard"

            def log_message(self, *args: Any) -> None:
                pass

            def _refuse_write(self) -> None:
                self.send_response(405, "read-only")
                self.send_header("Allow", "GET, HEAD")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_write

            def _send(self, code: int, body: bytes, ctype: str, cookie: bool = False) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header(
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; "
                    "style-src 'unsafe-inline'; connect-src 'self'",
                )
                if cookie and board.token:
                    self.send_header(
                        "Set-Cookie", f"{_COOKIE}={board.token}; HttpOnly; SameSite=Strict"
                    )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                allowed, cookie = board._authorized(self)
                if not allowed:
                    self._send(401, b"a token is needed: open the URL with ?token=...\n",
                               "text/plain; charset=utf-8")  # fmt: skip
                    return
                path = urllib.parse.urlsplit(self.path).path
                if path == "/":
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8", cookie)
                elif path == "/api/services":
                    _, text = board.snapshot()
                    self._send(200, text.encode(), "application/json", cookie)
                elif path == "/events":
                    self._events()
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seen = -1
                try:
                    while not board._stop.is_set():
                        with board._changed:
                            if board._version == seen:
                                board._changed.wait(timeout=15)
                            version, text = board._version, board._snapshot
                        if version != seen:
                            self.wfile.write(f"data: {text}\n\n".encode())
                            seen = version
                        else:
                            self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler

    # ------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> Dashboard:
        for t in self._threads:
            t.start()
        return self

    def wait(self) -> None:
        """Block until :meth:`close` (or Ctrl-C in the calling thread)."""
        while not self._stop.wait(0.5):
            pass

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._journal.close()

    def __exit__(self, *exc: object) -> None:
        self.close()
