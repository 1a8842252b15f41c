"""Traffic worlds: two sample HTTP apps behind strangler's proxy, with load, on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.journal import Journal
from strangler.pg.embedded import free_port
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
    """Bring the journal to ``phase`` as the earlier (database) steps would have: a verify step
    that moved the phase, and the passing row-level verification event it records (the
    evidence shift_traffic requires)."""
    journal = Journal(f"sqlite:///{state_db}", operator="test", command="test setup")
    try:
        journal.outcome(journal.intent(service, "verify"), "ok", phase=phase)
        journal.event(service, "verify", status="passed", details={"mode": "rows"})
    finally:
        journal.close()


HAPROXY_CFG = """\
global
    stats socket {sock} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    acl orders path_beg /api/v1/orders
    use_backend orders if orders
    default_backend monolith_all
backend orders
    balance roundrobin
    server monolith 127.0.0.1:{mono} weight 100
    server order_service 127.0.0.1:{svc} weight 0
backend monolith_all
    server monolith 127.0.0.1:{mono}
"""


@dataclass
class Haproxy:
    url: str
    socket: str
    process: subprocess.Popen[bytes]


def start_haproxy(directory: Path, monolith_url: str, service_url: str) -> Haproxy:
    """A real HAProxy (Debian's package) in front of the two apps, in the foreground."""
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(exe).exists():
        pytest.skip("haproxy is not installed (CI installs it: apt-get install haproxy)")
    port = free_port()
    sock = directory / "haproxy.sock"
    cfg = directory / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(
            sock=sock,
            port=port,
            mono=monolith_url.rsplit(":", 1)[1],
            svc=service_url.rsplit(":", 1)[1],
        )
    )
    proc = subprocess.Popen(
        [exe, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            proc.kill()
            raise RuntimeError(f"haproxy did not start: {err}")
        time.sleep(0.05)
    return Haproxy(f"http://127.0.0.1:{port}", str(sock), proc)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[Haproxy, SampleApp, SampleApp]]:
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    hap = start_haproxy(tmp_path, monolith.url, service.url)
    try:
        yield hap, monolith, service
    finally:
        hap.process.terminate()
        hap.process.wait(timeout=10)
        monolith.stop()
        service.stop()
