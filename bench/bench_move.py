# ruff: noqa: E501  (a benchmark script: long lines)
"""Benchmark: the zero-copy move (``strategy: move``) on one instance, in one run.

One PostgreSQL server (the embedded wheel's 18, or ``--pg 15`` for Debian's), the peers'
dataset (``/work/shared/peers/generate.sql``) at ``--orders``, and:

1. **Move versus copy**, median of ``--runs``, interleaved: ``strangler move`` and ``strangler
   copy`` (same instance, foreign keys leaving kept) of orders, order_items and
   order_status_history, each through the command line as an operator runs it (start-up
   included; the move's own transaction time is reported beside it).
2. **Lock time under load**: pgbench (the server's own) runs a monolith transaction on the
   moved tables (read an order, update it, insert its status history: by name, so through
   the compatibility views after the move) at ``--rate`` per second on ``--clients``
   clients for ``--seconds``; at a third of it the tables move, at two thirds they move back.
   Reported per switch: how long the tables were held (lock granted → commit), the lock
   waits and attempts, and the latency of the monolith's transactions that were running
   then (max and p99 within ±1 s) against the whole run's p50/p99; pgbench's failed
   transactions must be zero.

Usage::

    .venv/bin/python bench/bench_move.py --orders 2000000 --runs 5 --out docs/benchmarks-move.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from strangler.journal import Journal
from strangler.pg.embedded import PgInstance, debian_bin_dir, embedded_bin_dir
from strangler.phases import Action
from strangler.spec import load_spec
from strangler.steps.move import move
from strangler.steps.rollback_schema import rollback_schema
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook

PEERS = Path("/work/shared/peers")
TABLES = ["orders", "order_items", "order_status_history"]
SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "100",
}
SCRIPT = """\\set oid random(1, {orders})
BEGIN;
SELECT status, total FROM orders WHERE id = :oid;
UPDATE orders SET notes = 'seen by the monolith' WHERE id = :oid;
INSERT INTO order_status_history (order_id, status, changed_by) VALUES (:oid, 'paid', 'monolith');
END;
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="strangler-bench-move-", dir="/tmp"))
        self.root.chmod(0o755)
        bin_dir = embedded_bin_dir() if args.pg == 18 else debian_bin_dir(args.pg)
        if bin_dir is None:
            sys.exit(f"needs PostgreSQL {args.pg}'s binaries")
        self.bin = bin_dir
        self.pg = PgInstance.create(self.root / "pg", bin_dir=bin_dir, settings=SETTINGS).start()
        self.results: dict[str, list[float]] = {}
        self.inside: dict[str, list[float]] = {}
        self.load: list[dict[str, Any]] = []
        self.notes: dict[str, str] = {}

    def close(self) -> None:
        self.pg.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------------------------------------------------------------------------- world

    def sql(self, query: str) -> Any:
        with psycopg.connect(self.pg.dsn("monolith"), autocommit=True) as conn:
            cur = conn.execute(query.encode())
            return cur.fetchall() if cur.description else None

    def generate(self) -> None:
        self.pg.create_database("monolith")
        o = self.args.orders
        t0 = time.perf_counter()
        subprocess.run(
            [str(self.bin / "psql"), self.pg.dsn("monolith"), "-X", "-q", "-v", f"orders={o}",
             "-v", f"customers={max(1000, o // 10)}", "-v", f"products={max(100, o // 100)}",
             "-f", str(PEERS / "generate.sql")],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        rows = self.sql(
            "SELECT sum(pg_table_size(c)), sum(pg_indexes_size(c)) FROM unnest(ARRAY"
            "['orders','order_items','order_status_history']::regclass[]) c"
        )
        self.notes["dataset"] = (
            f"peers' generate.sql at {o:,} orders; heap {rows[0][0] / 2**20:,.0f} MB, indexes "
            f"{rows[0][1] / 2**20:,.0f} MB (generated in {time.perf_counter() - t0:.0f} s)"
        )
        print(self.notes["dataset"], flush=True)

    def spec(self, strategy: str) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.root))
        folder.chmod(0o755)
        path = folder / "strangler.yaml"
        path.write_text(
            f"version: 1\nstate: sqlite:///{folder}/state.db\n"
            f'source: {{ dsn: "{self.pg.dsn("monolith")}" }}\n'
            "services:\n  order_service:\n"
            "    tables: [orders, order_items, order_status_history]\n"
            "    target: { schema: order_service }\n"
            f"    strategy: {strategy}\n"
            "    foreign_keys: { leaving: keep }\n"
        )
        return path

    def cli(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args, "-o", "json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"strangler {' '.join(args)} failed: {done.stderr[-2000:]}")
        return dict(json.loads(done.stdout))

    # ------------------------------------------------------------------ move versus copy

    def timed_move(self) -> None:
        spec = self.spec("move")
        self.sql("CHECKPOINT")
        t0 = time.perf_counter()
        out = self.cli("move", "order_service", "-f", str(spec))
        self.results.setdefault("strangler move (command line)", []).append(
            time.perf_counter() - t0
        )
        self.inside.setdefault("move transaction, s", []).append(out["move"]["seconds"])
        self.inside.setdefault("tables locked, ms", []).append(out["move"]["locked_ms"])
        self.cli(
            "rollback", "order_service", "--schema", "--yes", "--reason", "bench", "-f", str(spec)
        )

    def timed_copy(self) -> None:
        spec = self.spec("copy")
        self.sql("CHECKPOINT")
        t0 = time.perf_counter()
        self.cli("copy", "order_service", "-f", str(spec), "--jobs", str(self.args.jobs))
        self.results.setdefault("strangler copy, same instance (command line)", []).append(
            time.perf_counter() - t0
        )
        self.sql("DROP SCHEMA order_service CASCADE")

    # ----------------------------------------------------------------- lock time under load

    def under_load(self, run: int) -> None:
        a = self.args
        spec = load_spec(self.spec("move"))
        script = self.root / "monolith.sql"
        script.write_text(SCRIPT.format(orders=a.orders))
        logs = self.root / f"load-{run}"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        logs.chmod(0o777)
        bench = subprocess.Popen(
            [str(self.bin / "pgbench"), "-n", "-f", str(script), "-c", str(a.clients),
             "-j", str(min(a.clients, 2)), "-T", str(a.seconds), "-R", str(a.rate),
             "-l", f"--log-prefix={logs}/tx", self.pg.dsn("monolith")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=logs,
        )  # fmt: skip
        switches: list[tuple[str, float, Any]] = []
        with Journal(spec.state_url(), operator="bench", command="bench_move") as journal:
            rb = Runbook(spec, journal, "order_service")
            time.sleep(a.seconds / 3)
            at = time.time()
            done = move(rb)
            switches.append(("move", at, done.result))
            time.sleep(a.seconds / 3)
            at = time.time()
            rollback_schema(rb, RollbackRequest(reason="bench"))
            switches.append(("move back", at, None))
            found = journal.last("order_service", str(Action.ROLLBACK_SCHEMA), status="ok")
            back_details = found.details if found else {}
        out, _ = bench.communicate(timeout=a.seconds * 4 + 60)
        failed = next((ln for ln in out.splitlines() if ln.startswith("number of failed")), "")
        tx = [
            (int(p[4]) + int(p[5]) / 1e6, int(p[2]) / 1000.0)  # (end epoch, latency ms)
            for f in logs.glob("tx*")
            for p in (line.split() for line in f.read_text().splitlines())
            if len(p) >= 6
        ]
        lat = [ms for _, ms in tx]
        for name, at, result in switches:
            near = [ms for end, ms in tx if at - 1.0 <= end <= at + 2.0]
            if result is not None:
                locked, waited, attempts = (
                    result.locked_seconds * 1000,
                    result.lock_wait_seconds * 1000,
                    result.attempts,
                )
            else:
                locked, waited = (
                    float(back_details.get("locked_ms", 0)),
                    float(back_details.get("lock_wait_ms", 0)),
                )
                attempts = int(back_details.get("attempts", 0))
            self.load.append(
                {"run": run, "switch": name, "locked_ms": locked, "lock_wait_ms": waited,
                 "attempts": attempts, "max_near_ms": max(near, default=float("nan")),
                 "p99_near_ms": _pct(near, 0.99), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
                 "transactions": len(lat), "failed": failed or "number of failed transactions: ?"}
            )  # fmt: skip
            print(f"  load run {run} {name}: {self.load[-1]}", flush=True)

    # --------------------------------------------------------------------------- report

    def run(self) -> None:
        self.generate()
        for run in range(1, self.args.runs + 1):
            for name, body in (("move", self.timed_move), ("copy", self.timed_copy)):
                body()
                key = next(k for k in self.results if k.startswith(f"strangler {name}"))
                print(f"  run {run} {name}: {self.results[key][-1]:.2f} s", flush=True)
        for run in range(1, self.args.load_runs + 1):
            self.under_load(run)

    def report(self, command: str) -> str:
        a = self.args
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        med = {k: statistics.median(v) for k, v in self.results.items()}
        lines = [
            "# Benchmark: the zero-copy move (issue 16)",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.platform()}; one "
            f"PostgreSQL {a.pg} server ({self.bin}) on loopback, settings {SETTINGS}; "
            f"load {os.getloadavg()[0]:.1f} at the end of the run. Dataset: {self.notes['dataset']}.",
            "",
            f"## Move versus copy, median of {a.runs} (interleaved)",
            "",
            "| path | median s | runs s |",
            "|---|---|---|",
        ]
        for k, v in self.results.items():
            lines.append(f"| {k} | {med[k]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
        for k, v in self.inside.items():
            lines.append(
                f"| inside the move: {k} | {statistics.median(v):.3f} | {', '.join(f'{x:.3f}' for x in v)} |"
            )
        copy_s = med["strangler copy, same instance (command line)"]
        move_s = med["strangler move (command line)"]
        lines += [
            "",
            f"Copy / move: **{copy_s / move_s:.0f}x** (command line to command line); "
            f"{copy_s / statistics.median(self.inside['move transaction, s']):.0f}x against the "
            "move's own transaction.",
            "",
            f"## Lock time under load: pgbench {a.clients} clients at {a.rate} tx/s for {a.seconds} s",
            "",
            "Each transaction reads an order, updates it and inserts a status-history row, by "
            "name (so through the compatibility views once the tables have moved). Latencies in "
            'ms; "near" is transactions ending from 1 s before to 2 s after the switch began.',
            "",
            "| run | switch | tables locked | lock waits | attempts | max near | p99 near | run p50 | run p99 | transactions | pgbench |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.load:
            lines.append(
                f"| {r['run']} | {r['switch']} | {r['locked_ms']:.1f} | {r['lock_wait_ms']:.1f} | "
                f"{r['attempts']} | {r['max_near_ms']:.1f} | {r['p99_near_ms']:.1f} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['transactions']} | {r['failed']} |"
            )
        lines.append("")
        return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--orders", type=int, default=2_000_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--pg", type=int, default=18, choices=(15, 18))
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rate", type=int, default=400, help="pgbench -R of the load, tx/s.")
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--load-runs", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks-move.md")
    args = p.parse_args()
    bench = Bench(args)
    try:
        bench.run()
        text = bench.report("python bench/bench_move.py " + " ".join(sys.argv[1:]))
    finally:
        bench.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
