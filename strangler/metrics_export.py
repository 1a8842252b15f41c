"""strangler's own metrics, served in the Prometheus text format while a long command runs.

``sync``, ``shift --auto`` and ``run`` call :func:`serve` with ``--metrics-port``; Prometheus
(or the CloudWatch agent) scrapes ``http://127.0.0.1:PORT/metrics``. The alarms written by
``strangler alarms`` read ``strangler_sync_lag_seconds`` from here.

Usage::

    with serve(9464) as metrics:
        metrics.set("strangler_sync_lag_seconds", 1.5, service="order_service")
        metrics.observe_state(journal, "order_service")   # phase and weight from the journal
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from strangler.phases import Phase
from strangler.steps.facts import last_verification

if TYPE_CHECKING:
    from strangler.journal import Journal

__all__ = ["HELP", "Metrics", "serve"]

HELP = {
    "strangler_phase": "1 for the phase the service is in, 0 for the others.",
    "strangler_traffic_weight_percent": "Share of the route sent to the new service.",
    "strangler_sync_lag_seconds": "Age of the oldest change not yet applied to the target.",
    "strangler_last_verification_timestamp_seconds": "When the copy was last verified.",
    "strangler_last_verification_ok": "1 when the last verification found no difference.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """A thread-safe set of gauges, rendered in the Prometheus text exposition format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self.port: int | None = None  # set by serve(): the port actually bound

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = float(value)

    def observe_state(self, journal: Journal, service: str) -> None:
        """Phase and weight of ``service`` as the journal has them, and the last verification."""
        state = journal.state(service)
        for phase in Phase:
            self.set(
                "strangler_phase",
                1 if phase.value == state.phase else 0,
                service=service,
                phase=phase.value,
            )
        self.set("strangler_traffic_weight_percent", state.weight, service=service)
        # The verdict is the ``verify`` event (passed/failed), not the step's own outcome.
        last = last_verification(journal.history(service))
        if last is not None:
            self.set(
                "strangler_last_verification_timestamp_seconds",
                last.at.timestamp(),
                service=service,
            )
            self.set(
                "strangler_last_verification_ok",
                1 if last.status == "passed" else 0,
                service=service,
            )

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._values):
                if name in HELP:
                    lines.append(f"# HELP {name} {HELP[name]}")
                lines.append(f"# TYPE {name} gauge")
                for key, value in sorted(self._values[name].items()):
                    label = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                    lines.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


@contextmanager
def serve(port: int, host: str = "127.0.0.1", metrics: Metrics | None = None) -> Iterator[Metrics]:
    """Serve ``/metrics`` on ``host:port`` (port 0: any free port, see ``metrics.port``)."""
    gauges = metrics or Metrics()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = gauges.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    gauges.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="strangler-metrics", daemon=True)
    thread.start()
    try:
        yield gauges
    finally:
        server.shutdown()
        server.server_close()
