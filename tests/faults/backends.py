"""The traffic side of a fault campaign: two sample apps, a router and a metric source, each
API reached by strangler through a fault proxy.

Two kinds, shared by every trial of a campaign (each trial resets the weights to 0 %):

- ``haproxy``: a real HAProxy (Debian's package) in front of the apps; strangler sets weights
  over its stats socket (TCP) and reads the gates from HAProxy's own counters;
- ``alb``: moto's server holds an ALB listener rule (the control plane); a small mirror copies
  the rule's weights to strangler's local proxy, which carries the requests (the data plane,
  as the ALB's load balancers would); a real Prometheus scrapes that proxy and the gates are
  PromQL.

A fault on the router (:attr:`Backend.router_proxy`) or on the metric source
(:attr:`Backend.metrics_proxy`) cuts or stalls strangler's calls to it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.pg.embedded import free_port
from strangler.traffic.proxy import LocalProxy
from tests.faults.proxy import FaultProxy

__all__ = ["ROUTE", "AlbBackend", "Backend", "HaproxyBackend", "available"]

ROUTE = "/api/v1/orders*"

HAPROXY_CFG = """\
global
    stats socket ipv4@127.0.0.1:{admin} level admin
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

PROMETHEUS_CFG = """\
global: {{ scrape_interval: 500ms, evaluation_interval: 1s }}
scrape_configs:
  - job_name: strangler_proxy
    scrape_interval: 500ms
    metrics_path: /_strangler/metrics
    static_configs: [{{ targets: ["127.0.0.1:{port}"] }}]
"""


def available(kind: str) -> str | None:
    """None when ``kind`` can run here; else what is missing."""
    if kind == "haproxy" and not shutil.which("haproxy"):
        return "haproxy is not installed (apt-get install haproxy)"
    if kind == "alb" and not shutil.which("prometheus"):
        return "prometheus is not installed (apt-get install prometheus)"
    return None


@dataclass
class Backend:
    kind: str
    monolith: SampleApp
    service: SampleApp
    router_proxy: FaultProxy
    metrics_proxy: FaultProxy | None
    data_url: str
    env: dict[str, str] = field(default_factory=dict)
    _load: LoadGenerator | None = None

    # --------------------------------------------------------------- for subclasses
    def router_yaml(self, *, direct: bool = False) -> str:
        """The spec's ``router:``; ``direct``: bypassing the fault proxy (the harness's)."""
        raise NotImplementedError

    def metrics_yaml(self, *, direct: bool = False) -> str | None:
        return None

    def env_for(self, *, direct: bool = False) -> dict[str, str]:
        return dict(self.env)

    def reset(self) -> None:
        """Everything to the monolith, the service healthy."""
        raise NotImplementedError

    def weight(self) -> float:
        """The service's share as the router holds it (read directly, not through a proxy)."""
        raise NotImplementedError

    def close(self) -> None:
        self.stop_load()
        for proxy in (self.router_proxy, self.metrics_proxy):
            if proxy is not None:
                proxy.stop()
        self.monolith.stop()
        self.service.stop()

    # --------------------------------------------------------------------- shared
    def start_load(self, rate: float = 150) -> None:
        self.stop_load()
        self._load = LoadGenerator(self.data_url, rate=rate, workers=4).start()

    def stop_load(self) -> None:
        if self._load is not None:
            self._load.stop()
            self._load = None

    def heal(self) -> None:
        for proxy in (self.router_proxy, self.metrics_proxy):
            if proxy is not None:
                proxy.heal()


class HaproxyBackend(Backend):
    """HAProxy with a TCP stats socket; gates from its counters (``metrics`` kind router)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        monolith = SampleApp("monolith").start()
        service = SampleApp("order_service").start()
        port, admin = free_port(), free_port()
        cfg = directory / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_CFG.format(
                admin=admin,
                port=port,
                mono=monolith.url.rsplit(":", 1)[1],
                svc=service.url.rsplit(":", 1)[1],
            )
        )
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.process = subprocess.Popen(
            [exe, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.admin = admin
        deadline = time.monotonic() + 20
        while True:
            try:
                self._command("show info")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("haproxy did not start") from None
                time.sleep(0.1)
        super().__init__(
            "haproxy",
            monolith,
            service,
            FaultProxy(("127.0.0.1", admin), name="haproxy-admin"),
            None,
            f"http://127.0.0.1:{port}",
        )

    def _command(self, command: str) -> str:
        import socket

        with socket.create_connection(("127.0.0.1", self.admin), timeout=5) as sock:
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def router_yaml(self, *, direct: bool = False) -> str:
        port = self.admin if direct else self.router_proxy.port
        return (
            f'{{ kind: haproxy, socket: "127.0.0.1:{port}", backend: orders, '
            "monolith_server: monolith, service_server: order_service, timeout: 5 }"
        )

    def reset(self) -> None:
        self.service.failure_rate = 0.0
        self._command("set weight orders/monolith 100")
        self._command("set weight orders/order_service 0")

    def weight(self) -> float:
        mono = int(self._command("get weight orders/monolith").split()[0])
        svc = int(self._command("get weight orders/order_service").split()[0])
        return 100.0 * svc / (mono + svc) if mono + svc else 0.0

    def close(self) -> None:
        super().close()
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class AlbBackend(Backend):
    """moto's ALB rule (control plane) mirrored onto a local proxy (data plane), scraped by
    a real Prometheus (``metrics`` kind prometheus)."""

    def __init__(self, directory: Path) -> None:
        from moto.server import ThreadedMotoServer

        directory.mkdir(parents=True, exist_ok=True)
        monolith = SampleApp("monolith").start()
        service = SampleApp("order_service").start()
        moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        self.plane = LocalProxy(monolith.url, service.url, ROUTE).start()
        prom_port = free_port()
        cfg = directory / "prometheus.yml"
        cfg.write_text(PROMETHEUS_CFG.format(port=self.plane.port))
        self.prometheus = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{self.prometheus_url}/-/ready", self.prometheus)
        router_proxy = FaultProxy(("127.0.0.1", moto_port), name="moto")
        metrics_proxy = FaultProxy(("127.0.0.1", prom_port), name="prometheus")
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{router_proxy.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            # A stalled API must not be retried for minutes: a few seconds, then an error.
            "AWS_MAX_ATTEMPTS": "3",
        }
        super().__init__("alb", monolith, service, router_proxy, metrics_proxy, self.plane.url, env)
        self.elbv2 = self._client("elbv2")
        self._make_rule()
        self._stop = threading.Event()
        threading.Thread(target=self._mirror, daemon=True, name="alb-mirror").start()

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _make_rule(self) -> None:
        ec2 = self._client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}"
            )["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        lb = self.elbv2.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
        self.monolith_tg, self.service_tg = (
            self.elbv2.create_target_group(Name=n, Protocol="HTTP", Port=80, VpcId=vpc)[
                "TargetGroups"
            ][0]["TargetGroupArn"]
            for n in ("monolith", "order-service")
        )
        listener = self.elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.monolith_tg}],
        )["Listeners"][0]["ListenerArn"]
        self.rule_arn = self.elbv2.create_rule(
            ListenerArn=listener,
            Priority=100,
            Conditions=[{"Field": "path-pattern", "Values": [ROUTE]}],
            Actions=[self._action(100, 0)],
        )["Rules"][0]["RuleArn"]

    def _action(self, mono: int, svc: int) -> dict[str, Any]:
        return {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": self.monolith_tg, "Weight": mono},
                    {"TargetGroupArn": self.service_tg, "Weight": svc},
                ]
            },
        }

    def _groups(self) -> dict[str, int]:
        rule = self.elbv2.describe_rules(RuleArns=[self.rule_arn])["Rules"][0]
        action = next(a for a in rule["Actions"] if a["Type"] == "forward")
        return {
            g["TargetGroupArn"]: int(g["Weight"]) for g in action["ForwardConfig"]["TargetGroups"]
        }

    def weight(self) -> float:
        groups = self._groups()
        mono, svc = groups[self.monolith_tg], groups[self.service_tg]
        return 100.0 * svc / (mono + svc) if mono + svc else 0.0

    def _mirror(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(Exception):
                self.plane.set_service_percent(self.weight())

    def router_yaml(self, *, direct: bool = False) -> str:
        return (
            f'{{ kind: alb, rule_arn: "{self.rule_arn}", monolith_target_group: '
            f'"{self.monolith_tg}", service_target_group: "{self.service_tg}", '
            "region: us-east-1 }"
        )

    def metrics_yaml(self, *, direct: bool = False) -> str | None:
        assert self.metrics_proxy is not None
        url = self.prometheus_url if direct else f"http://127.0.0.1:{self.metrics_proxy.port}"
        return f'{{ kind: prometheus, url: "{url}", timeout: 5 }}'

    def env_for(self, *, direct: bool = False) -> dict[str, str]:
        out = dict(self.env)
        if direct:
            out["AWS_ENDPOINT_URL"] = self.moto_url
        return out

    def reset(self) -> None:
        self.service.failure_rate = 0.0
        self.elbv2.modify_rule(RuleArn=self.rule_arn, Actions=[self._action(100, 0)])

    def close(self) -> None:
        self._stop.set()
        super().close()
        self.plane.stop()
        self.prometheus.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.prometheus.wait(timeout=20)
        self.moto.stop()


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.2)
