"""Benchmark of the checks helper's heavy parts on the sample monolith (PostgreSQL 18).

Measures, median of ``--repeat`` runs:
  * the old-table write guard: per-statement cost of single-row UPDATEs with and without the
    recording trigger (what an application that still writes pays while we watch);
  * the decommission archive: ``pg_dump -Fc`` of orders/order_items/order_status_history
    (``archive_tables``, which also hashes the file) against a bare ``pg_dump -Fc`` of the same
    tables run by hand (the floor), and its restore with ``pg_restore``;
  * retiring the tables (``ALTER TABLE … SET SCHEMA``) and the first ``--check``'s guard install.

Usage: .venv/bin/python bench/bench_checks.py --orders 200000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from strangler.demo.monolith import build_monolith
from strangler.pg.copy import retire as T
from strangler.pg.embedded import PgInstance

OLD = ["orders", "order_items", "order_status_history"]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--updates", type=int, default=5_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="strangler-bench-"))
    root.chmod(0o755)
    inst = PgInstance.create(root / "pg").start()
    try:
        inst.create_database("monolith")
        dsn = inst.dsn("monolith")
        with psycopg.connect(dsn, autocommit=True) as conn:
            t = timed(lambda: build_monolith(conn, orders=args.orders))
            counts = {
                n: conn.execute(f"SELECT count(*) FROM public.{n}").fetchone()[0]  # noqa: S608
                for n in OLD
            }
            size = conn.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(('public.' || t)::regclass))) "
                "FROM unnest(%s::text[]) t",
                (OLD,),
            ).fetchone()[0]
        print(f"built monolith in {t:.1f}s: {counts}, {size} with indexes")
        major = inst.version()
        pg_dump = T.pg_tool("pg_dump", major)
        pg_restore = T.pg_tool("pg_restore", major)

        def updates() -> None:
            with psycopg.connect(dsn, autocommit=True) as c:
                for i in range(args.updates):
                    c.execute("UPDATE public.orders SET notes = 'x' WHERE id = %s", (1 + i,))

        res: dict[str, list[float]] = {
            k: []
            for k in (
                "updates_plain",
                "updates_guarded",
                "guard_install",
                "archive",
                "floor_dump",
                "restore",
                "retire",
            )
        }
        for r in range(args.repeat):
            with psycopg.connect(dsn, autocommit=True) as c:
                T.remove_guard(c, "public", OLD)
            res["updates_plain"].append(timed(updates))
            with psycopg.connect(dsn, autocommit=True) as c:
                res["guard_install"].append(timed(lambda c=c: T.install_guard(c, "public", OLD)))
            res["updates_guarded"].append(timed(updates))
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("TRUNCATE strangler_guard.old_table_writes")
                T.remove_guard(c, "public", OLD)
            dest = root / f"a{r}.dump"
            res["archive"].append(
                timed(lambda d=dest: T.archive_tables(dsn, major, "public", OLD, d))
            )
            floor = root / f"f{r}.dump"
            cmd = [str(pg_dump), "-Fc", f"--file={floor}", f"--dbname={inst.dsn('monolith')}"]
            cmd += [f"--table=public.{t}" for t in OLD]
            res["floor_dump"].append(timed(lambda cmd=cmd: subprocess.run(cmd, check=True)))
            # Restore where it would be needed: the monolith after the drop (a copy of it
            # without the old tables).
            target = f"restore{r}"
            inst.create_database(target, template="monolith")
            with psycopg.connect(inst.dsn(target), autocommit=True) as c:
                c.execute("DROP VIEW IF EXISTS public.customer_order_totals")
                c.execute(
                    "DROP TABLE public.order_status_history, public.order_items, public.orders"
                )
            rcmd = [str(pg_restore), "--exit-on-error", f"--dbname={inst.dsn(target)}", str(dest)]
            res["restore"].append(timed(lambda rcmd=rcmd: subprocess.run(rcmd, check=True)))
            inst.drop_database(target)
            with psycopg.connect(dsn, autocommit=True) as c:
                res["retire"].append(timed(lambda c=c: T.retire_tables(c, "public", OLD, "svc")))
                for t in OLD:  # put them back for the next round
                    c.execute(f"ALTER TABLE retired_svc.{t} SET SCHEMA public")
        med = {k: statistics.median(v) for k, v in res.items()}
        archive_size = (root / "a0.dump").stat().st_size
        print(
            f"machine: {platform.node()} {os.cpu_count()} cores, PostgreSQL {major}, "
            f"pg_dump {pg_dump}"
        )
        n = args.updates
        print(
            f"single-row UPDATE x{n}: plain {med['updates_plain']:.2f}s "
            f"({med['updates_plain'] / n * 1e6:.0f} us/stmt), guarded "
            f"{med['updates_guarded']:.2f}s ({med['updates_guarded'] / n * 1e6:.0f} us/stmt), "
            f"ratio {med['updates_guarded'] / med['updates_plain']:.2f}"
        )
        print(f"guard install: {med['guard_install'] * 1000:.0f} ms")
        print(
            f"archive (pg_dump -Fc + sha256): {med['archive']:.2f}s, "
            f"{archive_size / 1e6:.1f} MB; floor pg_dump -Fc: {med['floor_dump']:.2f}s; "
            f"ratio {med['archive'] / med['floor_dump']:.2f}"
        )
        print(
            f"restore (pg_restore): {med['restore']:.2f}s; retire (SET SCHEMA x3): "
            f"{med['retire'] * 1000:.0f} ms"
        )
    finally:
        inst.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
