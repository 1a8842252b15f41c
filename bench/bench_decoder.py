# ruff: noqa: E501, S608  (a benchmark script: long lines, SQL over our own constants)
"""Benchmark (issue 17): N services on N slots versus one shared decoder, under pgbench.

One monolith (PostgreSQL 18, the embedded wheel) with ``--services`` tables ``t1 … tN`` of
``--rows`` rows; each table is one service (``strategy: online``) whose database is on a
second server. pgbench (4 clients) updates a random row of every table per transaction. Three
runs of ``--seconds`` each: no sync at all; N ``strangler sync`` processes (one slot and one
walsender each); one ``strangler decoder`` (one slot, one walsender for all). For each: the
monolith's TPS and the CPU seconds its walsenders used (``/proc/<pid>/stat``, utime+stime).

Usage::

    .venv/bin/python bench/bench_decoder.py --services 5 --rows 100000 --seconds 30 --out docs/benchmarks-decoder.md
    .venv/bin/python bench/bench_decoder.py --services 2 --rows 2000 --seconds 3 --out /tmp/decoder.md   # a check that it runs
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
    "max_replication_slots": "20",
    "max_wal_senders": "20",
}


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class World:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.root = Path(tempfile.mkdtemp(prefix="bench-decoder-", dir="/tmp"))
        self.root.chmod(0o755)
        self.src = PgInstance.create(self.root / "src", settings=SETTINGS).start()
        self.dst = PgInstance.create(self.root / "dst", settings=SETTINGS).start()
        self.src.create_database("monolith")
        self.monolith = self.src.dsn("monolith")
        self.names = [f"t{i}" for i in range(1, a.services + 1)]
        lines = ["version: 1", f"state: sqlite:///{self.root}/state.db",
                 f'source: {{ dsn: "{self.monolith}", schema: public }}', "services:"]  # fmt: skip
        for n in self.names:
            self.dst.create_database(f"svc_{n}")
            lines += [
                f"  svc_{n}:", f"    tables: [{n}]",
                f'    target: {{ dsn: "{self.dst.dsn("svc_" + n)}", schema: s }}',
                "    strategy: online", "    sync: { decoder: all }",
            ]  # fmt: skip
        self.spec = self.root / "strangler.yaml"
        self.spec.write_text("\n".join(lines) + "\n")
        self.facts: dict[str, Any] = {}

    def close(self) -> None:
        self.src.destroy()
        self.dst.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    def cli(self, *args: str, wait: bool = True) -> Any:
        cmd = [sys.executable, "-m", "strangler", *args, "-f", str(self.spec)]
        if not wait:
            return subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"strangler {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def build(self) -> None:
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            for n in self.names:
                conn.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, v int NOT NULL, note text)")
                conn.execute(
                    f"INSERT INTO {n} SELECT g, g, md5(g::text) FROM generate_series(1, {self.a.rows}) g"
                )
        for n in self.names:
            self.cli("copy", f"svc_{n}")

    def walsenders(self) -> list[int]:
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'"
                )
            ]

    def pgbench(self) -> dict[str, float]:
        script = self.root / "bench.sql"
        body = [f"\\set id random(1, {self.a.rows})", "BEGIN;"]
        body += [f"UPDATE {n} SET v = v + 1 WHERE id = :id;" for n in self.names]
        script.write_text("\n".join([*body, "COMMIT;"]) + "\n")
        senders = self.walsenders()
        before = {p: ticks(p) for p in senders}
        cmd = [str(embedded_bin_dir() / "pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(self.a.seconds),
               "-f", str(script), self.monolith]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        tps = float(re.search(r"tps = ([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
        hz = os.sysconf("SC_CLK_TCK")
        cpu = sum(ticks(p) - t for p, t in before.items() if Path(f"/proc/{p}").exists()) / hz
        return {"tps": tps, "walsender_cpu_s": cpu, "walsenders": len(senders)}

    def run(self) -> None:
        self.facts["none"] = self.pgbench()  # slots exist (the copies made them); nobody reads
        # N slots: one 'strangler sync' per service
        procs = [self.cli("sync", f"svc_{n}", wait=False) for n in self.names]
        self._settle(len(self.names))
        self.facts["slots"] = self.pgbench()
        for p in procs:
            p.terminate()
            p.wait()
        for n in self.names:
            self.cli("sync", f"svc_{n}", "--until-caught-up")
        self.cli("decoder", "all", "--join")
        proc = self.cli("decoder", "all", wait=False)
        self._settle(1)
        self.facts["shared"] = self.pgbench()
        proc.terminate()
        proc.wait()
        self.cli("decoder", "all", "--until-caught-up")
        self.cli("decoder", "all", "--stop")

    def _settle(self, senders: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.walsenders()) < senders:
            if time.monotonic() > deadline:
                raise SystemExit("walsenders did not start")
            time.sleep(0.2)
        time.sleep(2)  # the first re-decode from each slot's restart point


def report(w: World) -> str:
    f = w.facts
    n, s, d = f["none"], f["slots"], f["shared"]
    return "\n".join([
        "# Benchmark: N slots versus one shared decoder (issue 17)",
        "",
        f"Command: `python bench/bench_decoder.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; load average at start {os.getloadavg()[0]:.1f}. "
        f"{w.a.services} services, one table each ({w.a.rows:,} rows); pgbench 4 clients updates one row of every table per transaction, {w.a.seconds} s per run.",
        "",
        "| run | walsenders | walsender CPU s | monolith TPS | TPS loss |",
        "|---|---:|---:|---:|---:|",
        f"| no sync | {n['walsenders']} | {n['walsender_cpu_s']:.2f} | {n['tps']:.0f} | - |",
        f"| {w.a.services} slots, {w.a.services} `strangler sync` | {s['walsenders']} | {s['walsender_cpu_s']:.2f} | {s['tps']:.0f} | {100 * (1 - s['tps'] / n['tps']):.1f} % |",
        f"| one `strangler decoder` | {d['walsenders']} | {d['walsender_cpu_s']:.2f} | {d['tps']:.0f} | {100 * (1 - d['tps'] / n['tps']):.1f} % |",
        "",
        f"Decoding CPU with one shared slot: {d['walsender_cpu_s'] / max(s['walsender_cpu_s'], 1e-9):.2f}x that of {w.a.services} slots.",
    ]) + "\n"  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--services", type=int, default=5)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks-decoder.md"))
    a = p.parse_args()
    world = World(a)
    try:
        world.build()
        world.run()
        text = report(world)
    finally:
        world.close()
    a.out.write_text(text)
    print(text)
    print(json.dumps(world.facts))


if __name__ == "__main__":
    main()
