"""strangler's own metrics, served in the Prometheus text format while a long command runs.

``sync``, ``shift --auto`` and ``run`` serve these with ``--metrics-port``; Prometheus (or
the CloudWatch agent) scrapes ``http://127.0.0.1:PORT/metrics``. The alarms written by
``strangler alarms`` read ``strangler_sync_lag_seconds`` from here, and a test proves it with
a real Prometheus scraping a real ``strangler sync`` (issue 14: before, nothing exported it).

A :class:`Collector` thread refreshes the gauges every few seconds from probes (the journal,
a :class:`~strangler.pg.sync.lag.LagSampler`), so a stalled applier still reports its lag.

Usage::

    with serve(9464) as metrics:
        metrics.set("strangler_sync_lag_seconds", 1.5, service="order_service")
        metrics.observe_state(journal, "order_service")   # phase and weight from the journal
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from strangler.errors import BadInput, StranglerError
from strangler.pg.sync.lag import LagSample, LagSampler
from strangler.phases import Phase
from strangler.steps.facts import last_verification
from strangler.steps.records import Event
from strangler.steps.sync import direction_in, record_lag
from strangler.steps.wiring import sync_route

if TYPE_CHECKING:
    from strangler.journal import Journal
    from strangler.spec import Spec

__all__ = ["HELP", "Collector", "Metrics", "Probe", "serve", "service_probes"]

HELP = {
    "strangler_phase": "1 for the phase the service is in, 0 for the others.",
    "strangler_traffic_weight_percent": "Share of the route sent to the new service.",
    "strangler_sync_lag_seconds": "Age of the oldest change not yet applied to the target.",
    "strangler_last_verification_timestamp_seconds": "When the copy was last verified.",
    "strangler_last_verification_ok": "1 when the last verification found no difference.",
    "strangler_sync_lag_bytes": "WAL written on the source and not yet applied to the target.",
    "strangler_sync_retained_wal_bytes": "WAL the sync slot keeps on the source's disk.",
    "strangler_sync_slot_exists": "1 while the route's replication slot exists.",
    "strangler_sync_rows_applied_total": "Rows the route has applied to the target.",
    "strangler_sync_transactions_applied_total": "Transactions applied to the target.",
    "strangler_sync_apply_rows_per_second": "Rows applied per second over the last rounds.",
    "strangler_gate_check_passing": "1 when the check held in the last judged bake interval.",
    "strangler_gate_consecutive_failures": "Failed bake intervals in a row at this weight.",
    "strangler_probe_up": "1 when the probe could read its source at the last refresh.",
}

COUNTERS = frozenset(
    {"strangler_sync_rows_applied_total", "strangler_sync_transactions_applied_total"}
)


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

    def observe_gates(self, journal: Journal, service: str) -> None:
        """The checks of the newest judged bake interval: 1 passing, 0 failing."""
        last = journal.last(service, Event.GATE)
        if last is None:
            return
        for check in last.details.get("checks", []):
            name = str(check.get("check", ""))
            self.set(
                "strangler_gate_check_passing",
                1 if check.get("status") == "pass" else 0,
                service=service,
                check=name,
            )
        self.set(
            "strangler_gate_consecutive_failures",
            float(last.details.get("consecutive_failures", 0) or 0),
            service=service,
        )

    def observe_sync(self, sample: LagSample) -> None:
        """One :class:`~strangler.pg.sync.lag.LagSample`; what it cannot say is left unset,
        so an alarm sees missing data rather than a reassuring zero."""
        labels = {"service": sample.service, "direction": sample.direction}
        self.set("strangler_sync_slot_exists", 1 if sample.slot_exists else 0, **labels)
        for name, value in (
            ("strangler_sync_lag_bytes", sample.lag_bytes),
            ("strangler_sync_lag_seconds", sample.lag_seconds),
            ("strangler_sync_retained_wal_bytes", sample.retained_wal_bytes),
        ):
            if value is not None:
                self.set(name, value, **labels)
        self.set("strangler_sync_rows_applied_total", sample.rows_applied, **labels)
        self.set("strangler_sync_transactions_applied_total", sample.transactions_applied, **labels)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._values):
                if name in HELP:
                    lines.append(f"# HELP {name} {HELP[name]}")
                lines.append(f"# TYPE {name} {'counter' if name in COUNTERS else 'gauge'}")
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

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise BadInput(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --metrics-port (0 picks a free one)",
        ) from exc
    gauges.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="strangler-metrics", daemon=True)
    thread.start()
    try:
        yield gauges
    finally:
        server.shutdown()
        server.server_close()


Probe = Callable[[Metrics], None]


class Collector:
    """Refreshes ``metrics`` from ``probes`` every ``every`` seconds on a daemon thread.

    A probe that raises a StranglerError (a database down) marks ``strangler_probe_up`` 0
    for itself and keeps its last values' absence honest: the collector goes on with the
    others. Use as a context manager; the first refresh happens before it returns.
    """

    def __init__(
        self, metrics: Metrics, probes: Sequence[tuple[str, Probe]], every: float = 5.0
    ) -> None:
        self.metrics = metrics
        self.probes = list(probes)
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="strangler-probes", daemon=True)

    def refresh(self) -> None:
        for name, probe in self.probes:
            try:
                probe(self.metrics)
            except StranglerError:
                self.metrics.set("strangler_probe_up", 0, probe=name)
            else:
                self.metrics.set("strangler_probe_up", 1, probe=name)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.refresh()

    def __enter__(self) -> Collector:
        self.refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 5)


def service_probes(
    spec: Spec,
    journal: Journal,
    services: Sequence[str],
    *,
    keep_lag: bool = False,
    lag_every: float = 5.0,
) -> list[tuple[str, Probe]]:
    """Probes for ``services``: phase, weight, verification and gates from ``journal`` (one
    of the collector's own: it is used from the collector's thread), and for an online
    service the lag of the sync route its phase calls for. With ``keep_lag`` the lag is
    also kept in the journal (:func:`strangler.steps.sync.record_lag`) for the report."""
    probes: list[tuple[str, Probe]] = []
    for service in services:

        def state(m: Metrics, name: str = service) -> None:
            m.observe_state(journal, name)
            m.observe_gates(journal, name)

        probes.append((f"journal:{service}", state))
        if spec.service(service).strategy != "online":
            continue
        samplers: dict[str, LagSampler] = {}

        def lag(m: Metrics, name: str = service, cache: dict[str, LagSampler] = samplers) -> None:
            direction = direction_in(Phase(journal.state(name).phase))
            if direction is None:
                return
            if direction not in cache:
                cache[direction] = LagSampler(sync_route(spec, name, direction))
            sample = cache[direction].sample()
            m.observe_sync(sample)
            if keep_lag and sample.slot_exists:
                record_lag(journal, name, sample, every=lag_every)

        probes.append((f"sync:{service}", lag))
    return probes
