"""strangler's own metrics in the Prometheus text format, served over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from strangler.journal import Journal
from strangler.metrics_export import Metrics, serve


def test_render_and_serve(tmp_path: Path) -> None:
    with Journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        journal.outcome(journal.intent("order_service", "verify"), "ok")
        journal.event("order_service", "verify", status="passed", details={"mode": "rows"})
        journal.outcome(journal.intent("order_service", "x"), "ok", phase="traffic", weight=20)
        with serve(0) as metrics:
            metrics.observe_state(journal, "order_service")
            metrics.set("strangler_sync_lag_seconds", 1.5, service="order_service")
            url = f"http://127.0.0.1:{metrics.port}/metrics"
            with urllib.request.urlopen(url) as resp:
                body = resp.read().decode()
                ctype = resp.headers["Content-Type"]
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/other")
    assert ctype.startswith("text/plain; version=0.0.4")
    lines = body.splitlines()
    assert 'strangler_phase{phase="traffic",service="order_service"} 1' in lines
    assert 'strangler_phase{phase="planned",service="order_service"} 0' in lines
    assert 'strangler_traffic_weight_percent{service="order_service"} 20' in lines
    assert 'strangler_sync_lag_seconds{service="order_service"} 1.5' in lines
    assert 'strangler_last_verification_ok{service="order_service"} 1' in lines
    with Journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        journal.event("order_service", "verify", status="failed", details={"mode": "rows"})
        later = Metrics()
        later.observe_state(journal, "order_service")
    assert 'strangler_last_verification_ok{service="order_service"} 0' in later.render().split("\n")
    assert "# TYPE strangler_sync_lag_seconds gauge" in lines


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.set("x", 1, service='a"b\\c')
    assert 'x{service="a\\"b\\\\c"} 1' in m.render()


def test_gate_verdicts_and_a_failing_probe_are_exported(tmp_path: Path) -> None:
    from strangler.errors import Unreachable
    from strangler.metrics_export import Collector

    with Journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        journal.event(
            "order_service",
            "gate",
            status="fail",
            details={
                "consecutive_failures": 2,
                "checks": [
                    {"check": "error_rate.max", "status": "fail"},
                    {"check": "request_count.min", "status": "pass"},
                ],
            },
        )
        metrics = Metrics()

        def down(m: Metrics) -> None:
            raise Unreachable("the monolith is down")

        with Collector(
            metrics,
            [("journal", lambda m: m.observe_gates(journal, "order_service")), ("sync", down)],
            every=3600,
        ):
            lines = metrics.render().splitlines()
    assert 'strangler_gate_check_passing{check="error_rate.max",service="order_service"} 0' in lines
    assert (
        'strangler_gate_check_passing{check="request_count.min",service="order_service"} 1' in lines
    )
    assert 'strangler_gate_consecutive_failures{service="order_service"} 2' in lines
    assert 'strangler_probe_up{probe="sync"} 0' in lines
    assert 'strangler_probe_up{probe="journal"} 1' in lines
