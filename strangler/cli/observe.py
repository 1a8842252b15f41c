"""What long-running commands share: ``--metrics-port`` and ``--log-format json``.

``strangler sync``, ``shift --auto`` and ``run`` serve Prometheus metrics while they run
(:mod:`strangler.metrics_export`): phase, weight, last verification, gate verdicts, and for
an online service the sync lag in bytes and seconds, WAL retained and rows applied, sampled
from outside the applier so a stalled one still reports. ``strangler sync`` also keeps the
lag over time in the journal (a sample every 5 s, older ones thinned) for ``strangler report``.

``--log-format json`` turns what a command says as it goes into one JSON object per line on
stderr (``ts`` ISO-8601 UTC, ``level``, ``msg``, ``command``, and fields), for log shippers.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strangler.cli.app import console, err_console
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.metrics_export import Metrics
    from strangler.spec import Spec

__all__ = [
    "LogFormat",
    "LogFormatOpt",
    "LoggedCopyProgress",
    "Logger",
    "MetricsPortOpt",
    "observing",
]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option("--log-format", help="text for people; json: one JSON object per line on stderr."),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        metavar="PORT",
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics while running (0: any port).",
        show_default=False,
    ),
]


class Logger:
    """Progress lines of one command: rich text for people, JSON lines for machines."""

    def __init__(self, fmt: LogFormat, command: str, *, to_stderr: bool = False) -> None:
        self.fmt = fmt
        self.command = command
        self.out = err_console if to_stderr else console

    def __call__(self, msg: str, **fields: Any) -> None:
        self.info(msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if self.fmt is LogFormat.json:
            line = {
                "ts": datetime.now(UTC).isoformat(),
                "level": level,
                "msg": msg,
                "command": self.command,
                **fields,
            }
            sys.stderr.write(scrub(json.dumps(line, default=str)) + "\n")
            sys.stderr.flush()
            return
        prefix = "[yellow]warning:[/] " if level == "warning" else ""
        if prefix:
            self.out.print(prefix, end="")
        self.out.print(msg, markup=False, highlight=False)


@contextmanager
def observing(
    spec: Spec,
    services: Sequence[str],
    port: int | None,
    log: Logger,
    *,
    keep_lag: bool = False,
    every: float = 5.0,
) -> Iterator[Metrics | None]:
    """Serve metrics on ``port`` (None: not served) and, with ``keep_lag``, journal the sync
    lag, while the block runs. The probes read through a journal of their own."""
    if port is None and not keep_lag:
        yield None
        return
    from strangler.journal import Journal
    from strangler.metrics_export import Collector, Metrics, serve, service_probes

    journal = Journal(spec.state_url(), command="strangler metrics")
    try:
        probes = service_probes(spec, journal, services, keep_lag=keep_lag)
        if port is None:
            with Collector(Metrics(), probes, every=every):
                yield None
            return
        with serve(port) as metrics, Collector(metrics, probes, every=every):
            log.info(
                f"metrics: http://127.0.0.1:{metrics.port}/metrics",
                metrics_url=f"http://127.0.0.1:{metrics.port}/metrics",
            )
            yield metrics
    finally:
        journal.close()


class LoggedCopyProgress:
    """A copy's progress as log lines (``--log-format json``): a table started, a chunk done."""

    def __init__(self, log: Logger) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None:
        with self._lock:
            self._rows[table] = 0
        self.log.info(
            f"copying {table}: about {estimated_rows:,} rows in {chunks} chunk(s)",
            table=table,
            estimated_rows=estimated_rows,
            chunks=chunks,
        )

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        if not rows:
            return
        with self._lock:
            self._rows[table] = self._rows.get(table, 0) + rows
            total = self._rows[table]
        self.log.info(
            f"{table}: a chunk of {rows:,} rows copied ({total:,} so far)",
            table=table,
            rows=rows,
            rows_so_far=total,
        )
