"""Traffic worlds: two sample HTTP apps behind strangler's proxy, with load, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.journal import Journal
from strangler.traffic.proxy import LocalProxy

ROUTE = "/api/v1/orders*"

TRAFFIC_SPEC = """\
version: 1
state: sqlite:///state.db
source:
  dsn: postgresql://localhost/monolith
services:
  order_service:
    tables: [orders]
    target: {{ schema: order_service }}
    strategy: copy
    traffic:
      route: "{route}"
      router: {router}
      steps: {steps}
      bake: {bake}
      final_bake: {bake}
      interval: {interval}
      failed_intervals: {failed}
      gates:
        - {{ metric: request_count, min: {min_requests} }}
        - {{ metric: error_rate, max: 0.05, max_increase_over_baseline: 0.02 }}
        - {{ metric: latency_p99, max_ratio_to_baseline: 20 }}
"""


@dataclass
class TrafficWorld:
    monolith: SampleApp
    service: SampleApp
    proxy: LocalProxy
    load: LoadGenerator


@pytest.fixture
def traffic_world() -> Iterator[TrafficWorld]:
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    proxy = LocalProxy(monolith.url, service.url, ROUTE).start()
    load = LoadGenerator(proxy.url, rate=400, workers=8).start()
    try:
        yield TrafficWorld(monolith, service, proxy, load)
    finally:
        load.stop()
        proxy.stop()
        monolith.stop()
        service.stop()


@pytest.fixture
def traffic_spec(tmp_path: Path) -> Callable[..., Path]:
    def write(
        router: str,
        *,
        steps: str = "[5, 20, 50, 100]",
        bake: str = "2s",
        interval: str = "1s",
        failed: int = 2,
        min_requests: int = 5,
    ) -> Path:
        path = tmp_path / "strangler.yaml"
        path.write_text(
            TRAFFIC_SPEC.format(
                route=ROUTE,
                router=router,
                steps=steps,
                bake=bake,
                interval=interval,
                failed=failed,
                min_requests=min_requests,
            )
        )
        return path

    return write


def at_phase(state_db: Path, phase: str, service: str = "order_service") -> None:
    """Bring the journal to ``phase`` as the earlier (database) steps would have."""
    journal = Journal(f"sqlite:///{state_db}", operator="test", command="test setup")
    try:
        journal.outcome(journal.intent(service, "verify"), "ok", phase=phase)
    finally:
        journal.close()
