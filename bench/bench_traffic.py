"""Benchmark: requests/s and p99 through the local router and HAProxy vs direct, and the time
from a failing gate to 0 % for each router.

    .venv/bin/python bench/bench_traffic.py [--seconds 10] [--connections 16] [--repeat 5]

Needs wrk and haproxy (Debian packages) and terraform on PATH; the ALB figure runs against
moto's server, so it measures strangler's own work plus a local HTTP round trip, not AWS.
Every server runs in its own process on 127.0.0.1, so the proxy does not share a GIL with
the apps. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strangler.pg.embedded import free_port  # noqa: E402

APP = """
import sys, threading
from strangler.demo.apps import SampleApp
app = SampleApp(sys.argv[1])
app._server.server_close()
from strangler.traffic.proxy import QuietServer
app._server = QuietServer(("127.0.0.1", int(sys.argv[2])), app._handler())
app._server.serve_forever()
"""

HAPROXY = """\
global
    stats socket {sock} mode 600 level admin
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    acl orders path_beg /api/v1/orders
    use_backend orders if orders
    default_backend orders
backend orders
    balance roundrobin
    http-reuse always
    server monolith 127.0.0.1:{mono} weight 50
    server order_service 127.0.0.1:{svc} weight 50
"""


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99_ms


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def throughput(opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    procs = []
    try:
        ports = {"monolith": free_port(), "service": free_port()}
        for name, port in ports.items():
            procs.append(start([sys.executable, "-c", APP, name, str(port)]))
        direct = f"http://127.0.0.1:{ports['monolith']}/api/v1/orders/1"
        wait_http(direct)
        proxy_port = free_port()
        procs.append(
            start(
                [
                    sys.executable, "-m", "strangler.traffic.proxy",
                    "--listen", f"127.0.0.1:{proxy_port}",
                    "--monolith", f"http://127.0.0.1:{ports['monolith']}",
                    "--service", f"http://127.0.0.1:{ports['service']}",
                    "--route", "/api/v1/orders*", "--service-percent", "50",
                ]
            )
        )  # fmt: skip
        local = f"http://127.0.0.1:{proxy_port}/api/v1/orders/1"
        wait_http(local)
        hap_port = free_port()
        cfg = work / "haproxy.cfg"
        cfg.write_text(
            HAPROXY.format(
                sock=work / "hap.sock", port=hap_port, mono=ports["monolith"], svc=ports["service"]
            )
        )
        procs.append(start(["haproxy", "-db", "-f", str(cfg)]))
        hap = f"http://127.0.0.1:{hap_port}/api/v1/orders/1"
        wait_http(hap)
        rows = []
        for name, url in (
            ("direct (monolith app)", direct),
            ("local router", local),
            ("HAProxy", hap),
        ):
            runs = [wrk(url, opts.seconds, opts.connections) for _ in range(3)]
            rows.append(
                {
                    "path": name,
                    "rps": statistics.median(r[0] for r in runs),
                    "p99_ms": statistics.median(r[1] for r in runs),
                }
            )
        return rows
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def rollback_times(opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Shifter.rollback after a shift to 50 %: the code path a failing gate takes."""
    from moto.server import ThreadedMotoServer

    from strangler.demo.apps import SampleApp
    from strangler.journal import Journal
    from strangler.spec import load_spec
    from strangler.steps.runbook import Runbook
    from strangler.steps.shift import Shifter
    from strangler.steps.wiring import router, router_context
    from strangler.traffic.proxy import LocalProxy

    sys.path.insert(0, str(ROOT))
    from tests.fix_traffic import start_haproxy
    from tests.test_traffic_alb import _alb
    from tests.test_traffic_terraform import MAIN_TF, TFVARS, _git

    mono, svc = SampleApp("monolith").start(), SampleApp("order_service").start()
    proxy = LocalProxy(mono.url, svc.url, "/api/v1/orders*").start()
    hap = start_haproxy(work, mono.url, svc.url)
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
    )
    alb = _alb()
    tf_env = work / "infra" / "prod"
    tf_env.mkdir(parents=True)
    (tf_env / "main.tf").write_text(MAIN_TF + 'variable "environment" { type = string }\n')
    (tf_env / "terraform.tfvars").write_text(TFVARS)
    (work / "infra" / ".gitignore").write_text(".terraform/\n*.tfstate*\n.terraform.lock.hcl\n")
    _git(work / "infra", "init", "-q")
    _git(work / "infra", "-c", "user.name=b", "-c", "user.email=b@b", "add", "-A")
    _git(work / "infra", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init")
    routers = {
        "local": f'{{ kind: local, admin_url: "{proxy.url}" }}',
        "haproxy": f'{{ kind: haproxy, socket: "{hap.socket}", backend: orders, '
        "service_server: order_service }",
        "alb (moto)": f"{{ kind: alb, rule_arn: {alb.rule_arn}, monolith_target_group: "
        f"{alb.monolith_tg}, service_target_group: {alb.service_tg} }}",
        "terraform (terraform_data)": f'{{ kind: terraform, dir: "{tf_env}", '
        "target: terraform_data.order_service_weighted }",
    }
    rows = []
    try:
        for name, router_spec in routers.items():
            d = work / re.sub(r"\W", "_", name)
            d.mkdir()
            (d / "strangler.yaml").write_text(
                "version: 1\nstate: sqlite:///state.db\nsource: { dsn: postgresql://x/m }\n"
                "services:\n  order_service:\n    tables: [orders]\n"
                "    target: { schema: order_service }\n"
                f"    traffic: {{ route: /api/v1/orders*, router: {router_spec} }}\n"
            )
            spec = load_spec(d / "strangler.yaml")
            journal = Journal(spec.state_url(), operator="bench", command="bench")
            rb = Runbook(spec, journal, "order_service")
            traffic = spec.service("order_service").traffic
            assert traffic is not None
            ctx = router_context(spec, "order_service", assume_yes=True, reason="bench")
            shifter = Shifter(rb, router(spec, "order_service", ctx))
            times = []
            for _ in range(opts.repeat):
                shifter.shift_to(50, force=True, reason="bench")
                times.append(shifter.rollback("bench: gate failed").seconds)
            journal.close()
            rows.append(
                {
                    "router": name,
                    "median_s": statistics.median(times),
                    "max_s": max(times),
                    "n": len(times),
                }
            )
    finally:
        moto.stop()
        hap.process.terminate()
        proxy.stop()
        mono.stop()
        svc.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    for tool in ("wrk", "haproxy", "terraform"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = throughput(opts, work)
        rb = rollback_times(opts, work)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(f"load average at end: {os.getloadavg()}\n")
    print(
        f"| path (wrk -t2 -c{opts.connections} -d{opts.seconds}s, median of 3) | req/s | p99 ms |"
    )
    print("|---|---:|---:|")
    for r in rows:
        print(f"| {r['path']} | {r['rps']:,.0f} | {r['p99_ms']:.1f} |")
    print(
        f"\n| router: failing gate → 0 % read back (median of {opts.repeat}) | median s | max s |"
    )
    print("|---|---:|---:|")
    for r in rb:
        print(f"| {r['router']} | {r['median_s']:.3f} | {r['max_s']:.3f} |")


if __name__ == "__main__":
    main()
