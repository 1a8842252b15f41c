# ruff: noqa: E501, S608  (a benchmark script: long shell command lines, SQL over our own constants)
"""Benchmark: strangler's faithful copy against what an operator would use instead.

Two PostgreSQL 15 servers (Debian's binaries, started by strangler's own embedded module),
the peers' dataset (``/work/shared/peers/generate.sql``) at a chosen scale, and in one run,
median of N:

- new instance: ``strangler copy`` vs ``pg_dump -Fc | pg_restore`` (restore into public, then
  SET SCHEMA: the variant that works), ``-Fd -j 2``, pgcopydb (whole database: 0.10's table
  filters fail), and the floor (3 parallel ``psql COPY … (FORMAT binary)`` pipes into bare
  tables) plus the hand rebuild of keys/indexes/FKs on the target;
- same instance: ``strangler copy`` (foreign keys leaving: keep) vs the runbook's
  ``CREATE TABLE … AS`` plus the hand steps (peers' ``faithful/1..8``).

Client peak memory is measured with ``/usr/bin/time -f %M`` around each command.

Usage::

    .venv/bin/python bench/bench_copy.py --orders 200000 --runs 3 --out docs/benchmarks-extract.md
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
from collections.abc import Callable
from pathlib import Path

import psycopg

from strangler.pg.embedded import PgInstance, debian_bin_dir

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


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


class Bench:
    def __init__(self, root: Path, orders: int, runs: int, jobs: int) -> None:
        self.root = root
        self.orders = orders
        self.runs = runs
        self.jobs = jobs
        self.results: dict[str, list[tuple[float, int]]] = {}
        self.notes: dict[str, str] = {}
        bin_dir = debian_bin_dir(15)
        if bin_dir is None:
            sys.exit("needs Debian's postgresql-15 (apt-get install postgresql-15)")
        self.bin = bin_dir
        self.src = PgInstance.create(root / "src", bin_dir=bin_dir, settings=SETTINGS).start()
        self.dst = PgInstance.create(root / "dst", bin_dir=bin_dir, settings=SETTINGS).start()
        passfile = root / "pgpass"
        passfile.write_text(
            "".join(f"127.0.0.1:{i.port}:*:postgres:{i.password}\n" for i in (self.src, self.dst))
        )
        passfile.chmod(0o600)
        self.env = {
            **os.environ,
            "PGPASSFILE": str(passfile),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }

    def uri(self, inst: PgInstance, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{inst.port}/{db}"

    # --------------------------------------------------------------------------- helpers

    def sh(self, cmd: str, *, check: bool = True) -> tuple[int, int]:
        """Run a shell command; returns (exit code, peak RSS in kB of the largest process)."""
        out = self.root / "time.out"
        wrapped = f"/usr/bin/time -f %M -o {out} bash -o pipefail -c {json.dumps(cmd)}"
        done = subprocess.run(wrapped, shell=True, env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {cmd}\n{done.stderr[-2000:]}")
        rss = int(out.read_text().strip().splitlines()[-1]) if out.exists() else 0
        return done.returncode, rss

    def sql(self, inst: PgInstance, db: str, query: str) -> None:
        with psycopg.connect(inst.dsn(db), autocommit=True) as conn:
            conn.execute(query.encode())

    def psql_file(self, inst: PgInstance, db: str, path: Path) -> None:
        self.sh(f"psql {self.uri(inst, db)} -X -q -v ON_ERROR_STOP=1 -f {path} > /dev/null")

    def reset_target(self) -> None:
        # the same-instance scenarios leave order_service in the monolith; pgcopydb would copy it
        self.sql(self.src, "monolith", "DROP SCHEMA IF EXISTS order_service CASCADE")
        self.dst.drop_database("service")
        self.dst.create_database("service")
        self.sql(
            self.dst,
            "postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='order_svc_rw') "
            "THEN CREATE ROLE order_svc_rw; END IF; IF NOT EXISTS (SELECT FROM pg_roles "
            "WHERE rolname='reporting_ro') THEN CREATE ROLE reporting_ro; END IF; END $$",
        )
        self.checkpoint()

    def checkpoint(self) -> None:
        self.sql(self.src, "postgres", "CHECKPOINT")
        self.sql(self.dst, "postgres", "CHECKPOINT")

    def spec(self, target: bool, leaving: str) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.root))
        dsn = f'"{self.uri(self.dst, "service")}?passfile={self.env["PGPASSFILE"]}"'
        text = f"""version: 1
state: sqlite:///{folder}/state.db
source:
  dsn: "{self.uri(self.src, "monolith")}?passfile={self.env["PGPASSFILE"]}"
services:
  order_service:
    tables: [orders, order_items, order_status_history]
    target:
      {"dsn: " + dsn if target else ""}
      schema: order_service
    foreign_keys: {{ leaving: {leaving} }}
"""
        path = folder / "strangler.yaml"
        path.write_text(text)
        return path

    # ------------------------------------------------------------------------- scenarios

    def generate(self) -> None:
        self.src.create_database("monolith")
        t0 = time.perf_counter()
        self.sh(
            f"psql {self.uri(self.src, 'monolith')} -X -q -v orders={self.orders} "
            f"-v customers={max(1000, self.orders // 10)} -v products={max(100, self.orders // 100)} "
            f"-f {PEERS / 'generate.sql'} > /dev/null"
        )
        with psycopg.connect(self.src.dsn("monolith"), autocommit=True) as conn:
            # A live monolith's tables are vacuumed: hint bits set, visibility map current.
            # Without this the first scenario of run 1 pays for setting 12M rows' hint bits.
            conn.execute("VACUUM (ANALYZE) orders, order_items, order_status_history")
            row = conn.execute(
                "SELECT sum(pg_table_size(c)), sum(pg_indexes_size(c)) FROM unnest(ARRAY"
                "['orders','order_items','order_status_history']::regclass[]) c"
            ).fetchone()
            counts = [
                conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0]  # type: ignore[index]
                for t in TABLES
            ]
        assert row is not None
        self.notes["dataset"] = (
            f"{', '.join(f'{t} {n:,}' for t, n in zip(TABLES, counts, strict=True))} rows; "
            f"heap {row[0] / 2**20:,.0f} MB, indexes {row[1] / 2**20:,.0f} MB "
            f"(generated in {time.perf_counter() - t0:.0f} s)"
        )
        print(self.notes["dataset"], flush=True)

    def strangler(self, same_instance: bool) -> int:
        spec = self.spec(not same_instance, "keep" if same_instance else "drop")
        strangler = f"{sys.executable} -m strangler"
        _, rss = self.sh(
            f"{strangler} copy order_service -f {spec} --jobs {self.jobs} -o json > {spec.parent}/out.json"
        )
        data = json.loads((spec.parent / "out.json").read_text())
        assert all(v["source_rows"] == v["target_rows"] for v in data["tables"].values())
        mode = "same" if same_instance else "new"
        self.notes[f"strangler ({mode}) formats"] = ", ".join(data["formats"])
        self.notes[f"strangler ({mode}) seconds by phase, last run"] = json.dumps(data["seconds"])
        return rss

    def pg_dump(self, directory: bool) -> int:
        dump = self.root / "dump"
        shutil.rmtree(dump, ignore_errors=True)
        dump.unlink(missing_ok=True)
        tables = " ".join(f"-t public.{t}" for t in TABLES)
        fmt = f"-Fd -j {self.jobs}" if directory else "-Fc"
        _, rss1 = self.sh(
            f"pg_dump -d {self.uri(self.src, 'monolith')} {fmt} {tables} --no-owner --no-acl -f {dump}"
        )
        jobs = f"-j {self.jobs}" if directory else ""
        # exits 1: the dump carries the FKs to customers/products, which are not there
        rc, rss2 = self.sh(
            f"pg_restore {jobs} --no-owner --no-acl -d {self.uri(self.dst, 'service')} {dump} "
            f"2> {self.root}/restore.log",
            check=False,
        )
        self.notes[f"pg_restore{' -j' if directory else ''} exit"] = str(rc)
        moves = "; ".join(f"ALTER TABLE public.{t} SET SCHEMA order_service" for t in TABLES)
        self.sql(self.dst, "service", f"CREATE SCHEMA order_service; {moves}")
        return max(rss1, rss2)

    def pgcopydb(self) -> int:
        work = self.root / "pgcopydb"
        shutil.rmtree(work, ignore_errors=True)
        rc, rss = self.sh(
            f"setsid -w pgcopydb clone --source {self.uri(self.src, 'monolith')} "
            f"--target {self.uri(self.dst, 'service')} --dir {work} --table-jobs {self.jobs} "
            f"--index-jobs {self.jobs} --no-owner --no-acl > {self.root}/pgcopydb.log 2>&1",
            check=False,
        )
        self.notes["pgcopydb exit"] = str(rc)
        moves = "; ".join(f"ALTER TABLE public.{t} SET SCHEMA order_service" for t in TABLES)
        self.sql(self.dst, "service", f"CREATE SCHEMA order_service; {moves}")
        return rss

    def floor(self) -> int:
        self.psql_file(self.dst, "service", PEERS / "floor_tables.sql")
        pipes = " & ".join(
            f"(psql {self.uri(self.src, 'monolith')} -X -qAt -c 'COPY public.{t} TO STDOUT (FORMAT binary)'"
            f" | psql {self.uri(self.dst, 'service')} -X -qAt -c 'COPY order_service.{t} FROM STDIN (FORMAT binary)')"
            for t in TABLES
        )
        _, rss = self.sh(f"{pipes} & wait")
        return rss

    def rebuild_on_target(self) -> int:
        steps = [*sorted((PEERS / "faithful").glob("[1-6]_*.sql")), PEERS / "faithful/8_grants.sql"]
        for step in steps:
            self.psql_file(self.dst, "service", step)
        return 0

    def ctas_by_hand(self) -> int:
        self.sql(
            self.src,
            "monolith",
            "CREATE SCHEMA order_service; "
            + " ".join(
                f"CREATE TABLE order_service.{t} AS SELECT * FROM public.{t};" for t in TABLES
            ),
        )
        for step in sorted((PEERS / "faithful").glob("[1-8]_*.sql")):
            self.psql_file(self.src, "monolith", step)
        return 0

    def floor_and_rebuild(self) -> int:
        t0 = time.perf_counter()
        self.floor()
        t1 = time.perf_counter()
        self.rebuild_on_target()
        self.results.setdefault("new: floor rebuild alone (keys, indexes, FKs)", []).append(
            (time.perf_counter() - t1, 0)
        )
        self.notes.setdefault("floor inside floor + rebuild, s", "")
        self.notes["floor inside floor + rebuild, s"] += f"{t1 - t0:.2f} "
        return 0

    def drop_schema(self) -> None:
        self.sql(self.src, "monolith", "DROP SCHEMA IF EXISTS order_service CASCADE")
        self.checkpoint()

    def run(self) -> None:
        """Scenarios round-robin within each run, so a busy spell on the shared machine hits
        every path alike rather than one path's three runs."""
        self.generate()
        j = self.jobs
        scenarios: list[tuple[str, Callable[[], None], Callable[[], int]]] = [
            ("new: strangler copy", self.reset_target, lambda: self.strangler(False)),
            ("new: pg_dump -Fc | pg_restore + SET SCHEMA", self.reset_target,
             lambda: self.pg_dump(False)),
            (f"new: pg_dump -Fd -j{j} | pg_restore -j{j}", self.reset_target,
             lambda: self.pg_dump(True)),
            ("new: floor, 3 parallel binary COPY pipes, bare tables", self.reset_target,
             self.floor),
            ("new: floor + hand rebuild on the target", self.reset_target,
             self.floor_and_rebuild),
            ("same: strangler copy (FKs leaving kept)", self.drop_schema,
             lambda: self.strangler(True)),
            ("same: CTAS + hand rebuild (faithful 1-8)", self.drop_schema, self.ctas_by_hand),
        ]  # fmt: skip
        if shutil.which("pgcopydb"):
            scenarios.insert(
                3, ("new: pgcopydb clone (whole db) + SET SCHEMA", self.reset_target, self.pgcopydb)
            )
        # Untimed warm-up: the first path to write 2 GB into a fresh server also creates its
        # WAL segments (zero-filled; later runs recycle them) and paid ~9 s for it here.
        # A target that has been running has its segments already.
        t0 = time.perf_counter()
        self.reset_target()
        self.floor_and_rebuild()
        self.drop_schema()
        self.ctas_by_hand()
        self.results.clear()
        self.notes.pop("floor inside floor + rebuild, s", None)
        print(f"  warm-up (untimed): {time.perf_counter() - t0:.1f} s", flush=True)
        self.notes["warm-up"] = (
            "one untimed pass of 'floor + hand rebuild' and 'CTAS + hand rebuild' before run 1, "
            "so that no path pays for the servers' first WAL segments"
        )
        for run in range(1, self.runs + 1):
            for name, prepare, body in scenarios:
                prepare()
                t0 = time.perf_counter()
                rss = body()
                wall = time.perf_counter() - t0
                self.results.setdefault(name, []).append((wall, rss))
                print(f"  run {run} {name}: {wall:.2f} s, peak RSS {rss / 1024:.0f} MB", flush=True)
        self.drop_schema()

    def report(self, command: str) -> str:
        med = {k: statistics.median(w for w, _ in v) for k, v in self.results.items()}
        rss = {k: max(r for _, r in v) for k, v in self.results.items()}
        lines = [
            "# Benchmark: extract (issue 3)",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"{platform.platform()}; two PostgreSQL 15 servers ({self.bin}) on loopback, "
            f"settings {SETTINGS}. Other helpers were running tests and benchmarks on the "
            "same 2 cores at the same time: absolute times are noisy, compare ratios.",
            "",
            f"Dataset: peers' generate.sql, {self.notes.pop('dataset')}.",
            "",
            f"Median of {self.runs}; peak client RSS is the largest process under `/usr/bin/time`.",
            "",
            "| path | median s | runs s | peak client RSS MB |",
            "|---|---|---|---|",
        ]
        for k, v in self.results.items():
            runs = ", ".join(f"{w:.2f}" for w, _ in v)
            mem = f"{rss[k] / 1024:.0f}" if rss[k] else "- (in-server)"
            lines.append(f"| {_cell(k)} | {med[k]:.2f} | {runs} | {mem} |")
        s = med["new: strangler copy"]
        ratios = [
            ("strangler / pg_dump -Fc | pg_restore", s / med["new: pg_dump -Fc | pg_restore + SET SCHEMA"]),
            ("strangler / floor + hand rebuild", s / med["new: floor + hand rebuild on the target"]),
            ("same instance: strangler / CTAS + hand rebuild",
             med["same: strangler copy (FKs leaving kept)"] / med["same: CTAS + hand rebuild (faithful 1-8)"]),
        ]  # fmt: skip
        key = "new: pgcopydb clone (whole db) + SET SCHEMA"
        if key in med:
            ratios.insert(1, ("strangler / pgcopydb (whole db)", s / med[key]))
        lines += ["", "| ratio | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {v:.2f} |" for k, v in ratios]
        lines += ["", "Notes: " + "; ".join(f"{k}: {v}" for k, v in self.notes.items()), ""]
        return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/strangler-bench-extract"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks-extract.md"))
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    args.dir.chmod(0o755)
    bench = Bench(args.dir, args.orders, args.runs, args.jobs)
    try:
        bench.run()
    finally:
        bench.src.stop()
        bench.dst.stop()
    command = "python bench/bench_copy.py " + " ".join(sys.argv[1:])
    text = bench.report(command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
