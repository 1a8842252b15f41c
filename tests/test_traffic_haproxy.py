"""The haproxy router against a real HAProxy (Debian's package) over its runtime API."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from strangler.demo.apps import SampleApp
from strangler.journal import Journal
from strangler.metrics.router import RouterSource
from strangler.spec import load_spec
from strangler.steps.runbook import Runbook
from strangler.steps.shift import Shifter
from strangler.steps.wiring import router
from strangler.traffic.base import RouterError, RouterUnreachable, Weights
from strangler.traffic.haproxy import HaproxyOptions, HaproxyRouter
from tests.fix_traffic import Haproxy, at_phase


def _router(hap: Haproxy, **kw: str) -> HaproxyRouter:
    return HaproxyRouter(
        HaproxyOptions(socket=hap.socket, backend="orders", service_server="order_service", **kw)
    )


def _hit(url: str, n: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i in range(n):
        with urllib.request.urlopen(f"{url}/api/v1/orders/{i}") as resp:
            body = resp.read().decode()
        who = "order_service" if "order_service" in body else "monolith"
        seen[who] = seen.get(who, 0) + 1
    return seen


def test_weights_set_without_reload_and_read_back(
    haproxy: tuple[Haproxy, SampleApp, SampleApp],
) -> None:
    hap, _, _ = haproxy
    router = _router(hap)
    assert router.weights() == Weights(0)
    assert router.set_weights(Weights(20)).service == 20
    seen = _hit(hap.url, 100)
    # Smooth weighted round robin: 20 of 100, give or take where its cycle started.
    assert abs(seen["order_service"] - 20) <= 1 and sum(seen.values()) == 100
    assert router.set_weights(Weights(0.5)).service == 0.5  # on the 200 scale: 199/1
    assert router.set_weights(Weights(100)).service == 100
    assert _hit(hap.url, 10) == {"order_service": 10}
    assert hap.process.poll() is None  # same process: no reload, no restart


def test_counters_feed_the_router_metric_source(
    haproxy: tuple[Haproxy, SampleApp, SampleApp],
) -> None:
    hap, _, service = haproxy
    router = _router(hap)
    router.set_weights(Weights(50))
    service.failure_rate = 0.5
    source = RouterSource(router)
    failures = 0
    for i in range(40):
        try:
            urllib.request.urlopen(f"{hap.url}/api/v1/orders/{i}").read()
        except urllib.error.HTTPError:
            failures += 1
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    window = source.measure(now, now)
    assert window.service.requests + window.monolith.requests == 40
    assert abs(window.service.requests - 20) <= 1
    assert window.service.errors == failures and failures >= 9
    assert window.monolith.errors == 0
    assert window.service.p99 is None  # HAProxy keeps averages, not percentiles


def test_wrong_server_and_socket_are_clear_errors(
    haproxy: tuple[Haproxy, SampleApp, SampleApp], tmp_path: Path
) -> None:
    hap, _, _ = haproxy
    with pytest.raises(RouterError, match="no server orders/nope"):
        _router(hap, monolith_server="nope").weights()
    gone = HaproxyRouter(HaproxyOptions(socket=str(tmp_path / "none.sock"), backend="orders"))
    with pytest.raises(RouterUnreachable, match="stats socket"):
        gone.check()


def test_rollback_through_haproxy(
    haproxy: tuple[Haproxy, SampleApp, SampleApp],
    traffic_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    hap, _, _ = haproxy
    router_spec = (
        f'{{ kind: haproxy, socket: "{hap.socket}", backend: orders, '
        "service_server: order_service }"
    )
    spec = load_spec(traffic_spec(router_spec))
    at_phase(tmp_path / "state.db", "verified")
    journal = Journal(spec.state_url(), operator="test")
    rb = Runbook(spec, journal, "order_service")
    traffic = spec.service("order_service").traffic
    assert traffic is not None
    shifter = Shifter(rb, router(spec, "order_service"))
    shifter.shift_to(50)
    assert _router(hap).weights().service == 50
    result = shifter.rollback("drill")
    assert result.after == 0 and _router(hap).weights().service == 0
    assert journal.state("order_service").phase == "verified"
    journal.close()
