"""The prometheus source against a real Prometheus (Debian's package) scraping the proxy."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strangler.metrics.base import MetricsUnreachable
from strangler.metrics.prometheus import PrometheusOptions, PrometheusSource
from strangler.pg.embedded import free_port
from tests.fix_traffic import ROUTE, TrafficWorld

CONFIG = """\
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: strangler_proxy
    metrics_path: /_strangler/metrics
    static_configs: [{{ targets: ["127.0.0.1:{port}"] }}]
"""


@pytest.fixture
def prometheus(traffic_world: TrafficWorld, tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("prometheus is not installed (CI installs it: apt-get install prometheus)")
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.format(port=traffic_world.proxy.port))
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("prometheus did not start") from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_error_rate_and_p99_per_target_and_route(
    traffic_world: TrafficWorld, prometheus: str
) -> None:
    proxy = traffic_world.proxy
    traffic_world.service.failure_rate = 0.2
    proxy.set_service_percent(50)
    source = PrometheusSource(PrometheusOptions(url=prometheus), ROUTE)
    # Wait until Prometheus has several scrapes with service traffic in them.
    deadline = time.monotonic() + 90
    while True:
        end = datetime.now(UTC)
        window = source.measure(end - timedelta(seconds=10), end)
        if window.service.requests >= 100 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert window.service.requests >= 100
    rate = window.service.errors / window.service.requests
    assert 0.1 < rate < 0.3  # the service fails 20 %; increase() extrapolates a little
    assert window.monolith.errors == 0 and window.monolith.requests >= 50
    assert window.service.p99 is not None and 0 < window.service.p99 < 10


def test_unreachable_prometheus() -> None:
    source = PrometheusSource(PrometheusOptions(url="http://127.0.0.1:9", timeout=1), ROUTE)
    now = datetime.now(UTC)
    with pytest.raises(MetricsUnreachable, match="cannot reach the Prometheus"):
        source.measure(now - timedelta(seconds=10), now)


def test_bad_query_is_an_error_not_a_zero(prometheus: str) -> None:
    source = PrometheusSource(
        PrometheusOptions(url=prometheus, queries={"requests": "sum(rate(x[$window]"}), ROUTE
    )
    now = datetime.now(UTC)
    with pytest.raises(MetricsUnreachable, match="rejected a query"):
        source.measure(now - timedelta(seconds=10), now)
