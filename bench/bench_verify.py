"""Benchmark: ``strangler verify`` against reladiff 0.6.0, pg_comparator and the floor.

Dataset: the peers' orders and order_items (``/work/shared/peers/generate.sql`` shape, without
the customers/products FKs), copied to schema ``order_service`` on the same server and into a
second server. Scenarios: identical, then 100 differences injected into orders as
``/work/shared/peers/inject_diffs.sql`` does (scaled to the row count): 10 total + 0.01,
10 jsonb changes, 10 notes NULL<->text, 10 created_at + 1 microsecond, 30 deletes, 30 inserts.

Measured, each ``--repeat`` times (median reported), for both tables together:

- strangler: ``python -m strangler verify order_service -o json`` (a subprocess, journal and
  all), and whether it named exactly the 100 rows;
- reladiff 0.6.0: ``reladiff SRC public.T DST order_service.T -k id -c % <flags>`` per table,
  its +/- keys parsed as peers/diff_check.py does. ``<flags>`` default to the best found on
  this dataset (1M orders, one sample each on a loaded machine: ``--skip-sort-results`` alone
  (the peers' invocation) 27.7 s, with ``--assume-unique-key -j 2`` 22.3 s, with also
  ``--bisection-factor 64 --bisection-threshold 4096`` 19.0 s, its ``joindiff`` on the same
  database 22.4 s); ``--reladiff-flags`` sets others;
- pg_comparator (Debian's ``postgresql-comparator``) with ``--use-key`` (an evenly spread
  integer key) and its defaults (``ck`` checksum, ``sum``, folding factor 7): its checksum
  functions are a C extension (``pgcmp``) that Debian builds for PostgreSQL 15 only, so it
  runs when the servers are (``--pg 15``) and is reported as not run otherwise;
- the floor: one server-side hash scan per table per side, both sides at once, with the same
  row hash strangler uses (``SELECT count(*), sum(<row hash>) FROM t``, planner defaults);
- the peers' floor, for reference: ``sum(('x'||substr(md5(t::text),1,16))::bit(64)::bigint)``
  (``/work/shared/peers/bench_e_verify.sh``, its ``hash_sql``), same way.

Besides wall time, each measurement records the CPU seconds the two PostgreSQL servers spent
(their processes and exited children, from /proc): on a machine shared with other work, wall
time moves with the load and server CPU does much less.

Usage::

    bench/.venv/bin/pip install 'reladiff==0.6.0' psycopg2-binary   # once (separate venv)
    apt-get install postgresql-comparator                           # once, for --pg 15
    .venv/bin/python bench/bench_verify.py --orders 200000 --repeat 3 [--pg 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from strangler.journal import Journal
from strangler.pg.embedded import PgInstance, debian_bin_dir
from strangler.phases import Action
from strangler.spec import load_spec
from strangler.steps.runbook import Runbook
from strangler.verify.canonical import pin_session, read_shape, row_hash

ROOT = Path(__file__).resolve().parent.parent
RELADIFF = ROOT / "bench" / ".venv" / "bin" / "reladiff"
TABLES = ["orders", "order_items"]
RELADIFF_FLAGS = (
    "--skip-sort-results --assume-unique-key -j 2 --bisection-factor 64 --bisection-threshold 4096"
)
PG_COMPARATOR = shutil.which("pg_comparator")

DDL = """
CREATE TABLE {s}.orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL DEFAULT 'pending',
  total numeric(12,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), notes text,
  attrs jsonb NOT NULL DEFAULT '{{}}'::jsonb);
CREATE TABLE {s}.order_items (
  id bigint PRIMARY KEY, order_id bigint NOT NULL, product_id bigint NOT NULL,
  line_no smallint NOT NULL, quantity integer NOT NULL DEFAULT 1,
  unit_price numeric(12,2) NOT NULL);
"""

GENERATE = """
SELECT setseed(0.42);
INSERT INTO public.orders
SELECT g, 1 + floor(random() * 200000)::bigint,
       (ARRAY['pending','paid','shipped','delivered','delivered','delivered','cancelled',
              'refunded'])[1 + floor(random()*8)::int],
       round((random()*900)::numeric, 2),
       timestamptz '2019-01-01 00:00:00+00' + random() * interval '5 years',
       CASE WHEN random() < 0.3
            THEN 'Customer note: ' || md5(g::text) || ' ' || md5((g+1)::text) END,
       jsonb_build_object(
         'channel', (ARRAY['web','ios','android','pos'])[1 + floor(random()*4)::int],
         'coupon',  CASE WHEN random() < 0.1 THEN 'SAVE' || floor(random()*50)::int END,
         'shipping', jsonb_build_object(
            'method', (ARRAY['standard','express','pickup'])[1 + floor(random()*3)::int],
            'zip', lpad(floor(random()*99999)::int::text, 5, '0')),
         'ab', jsonb_build_array(floor(random()*3)::int, floor(random()*3)::int))
FROM generate_series(1, {orders}) g;
INSERT INTO public.order_items
SELECT row_number() OVER (), o, 1 + floor(random() * 20000)::bigint, l, 1 + floor(random()*5)::int,
       round((1 + random()*300)::numeric, 2)
FROM generate_series(1, {orders}) o, LATERAL generate_series(1, 1 + (o % 5)::int) l;
"""


def injected(orders: int) -> dict[int, str]:
    """The 100 keys of peers/inject_diffs.sql, scaled from 2M orders to ``orders``."""
    q, step_u, step_d = orders // 4, orders // 40, orders // 30
    kinds: dict[int, str] = {}
    for base, kind, off in [
        (1, "update_total", 11),
        (q + 1, "update_jsonb", 23),
        (2 * q + 1, "update_notes_null", 37),
        (3 * q + 1, "update_ts_1us", 41),
    ]:
        for k in range(10):
            kinds[base + step_u * k + off] = kind
    for k in range(30):
        key = 3 + step_d * k
        assert key not in kinds, "scaled delete keys collide with update keys"
        kinds[key] = "delete"
    for k in range(1, 31):
        kinds[orders + k] = "insert"
    assert len(kinds) == 100
    return kinds


INJECT = """
UPDATE order_service.orders SET total = total + 0.01 WHERE id = ANY(%(update_total)s);
UPDATE order_service.orders SET attrs = attrs || '{"injected": true}'
  WHERE id = ANY(%(update_jsonb)s);
UPDATE order_service.orders SET notes = CASE WHEN notes IS NULL THEN 'injected' END
  WHERE id = ANY(%(update_notes_null)s);
UPDATE order_service.orders SET created_at = created_at + interval '1 microsecond'
  WHERE id = ANY(%(update_ts_1us)s);
DELETE FROM order_service.orders WHERE id = ANY(%(delete)s);
INSERT INTO order_service.orders (id, customer_id, status, total, created_at, notes, attrs)
SELECT i, 42, 'pending', 10.00, timestamptz '2024-01-01 00:00:00+00', NULL, '{"channel": "web"}'
FROM unnest(%(insert)s::bigint[]) i;
"""


def setup(root: Path, orders: int, pg: int) -> tuple[PgInstance, PgInstance]:
    bin_dir = None if pg == 18 else debian_bin_dir(pg)
    if pg != 18 and bin_dir is None:
        sys.exit(f"PostgreSQL {pg} is not installed (apt-get install postgresql-{pg})")
    a = PgInstance.create(root / "a", bin_dir=bin_dir).start()
    b = PgInstance.create(root / "b", bin_dir=bin_dir).start()
    a.create_database("monolith")
    b.create_database("service")
    for inst, db in ((a, "monolith"), (b, "service")):
        with psycopg.connect(inst.dsn(db), autocommit=True) as conn:
            if conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pgcmp'"
            ).fetchone():
                conn.execute("CREATE EXTENSION pgcmp")  # pg_comparator's checksum functions
    with psycopg.connect(a.dsn("monolith"), autocommit=True) as src:
        src.execute(DDL.format(s="public"))
        src.execute(sql.SQL(GENERATE).format(orders=sql.Literal(orders)))
        src.execute("CREATE SCHEMA order_service")
        src.execute(DDL.format(s="order_service"))
        for t in TABLES:
            src.execute(
                sql.SQL("INSERT INTO order_service.{t} SELECT * FROM public.{t}").format(
                    t=sql.Identifier(t)
                )
            )
        with psycopg.connect(b.dsn("service"), autocommit=True) as dst:
            dst.execute("CREATE SCHEMA order_service")
            dst.execute(DDL.format(s="order_service"))
            for t in TABLES:
                out = sql.SQL("COPY public.{} TO STDOUT (FORMAT binary)").format(sql.Identifier(t))
                into = sql.SQL("COPY order_service.{} FROM STDIN (FORMAT binary)").format(
                    sql.Identifier(t)
                )
                with src.cursor().copy(out) as o, dst.cursor().copy(into) as i:
                    for chunk in o:
                        i.write(chunk)
            dst.execute("VACUUM ANALYZE")
        src.execute("VACUUM ANALYZE")
    return a, b


def spec_file(root: Path, name: str, source: str, target: str | None) -> Path:
    target_dsn = f"dsn: {json.dumps(target)}, " if target else ""
    path = root / f"{name}.yaml"
    path.write_text(
        f"version: 1\nstate: sqlite:///{root / name}.db\n"
        f"source: {{ dsn: {json.dumps(source)}, schema: public }}\n"
        f"services:\n  order_service:\n    tables: {json.dumps(TABLES)}\n"
        f"    target: {{ {target_dsn}schema: order_service }}\n    strategy: copy\n"
    )
    spec = load_spec(path)
    with Journal(spec.state_url(), operator="bench") as journal:
        rb = Runbook(spec, journal, "order_service")
        for action in (Action.CREATE_SCHEMA, Action.COPY):
            with rb.step(action):
                pass
    return path


SERVERS: list[PgInstance] = []  # set by main: whose CPU to count


def server_cpu() -> float:
    """CPU seconds used so far by the servers in SERVERS: postmaster, its children, and the
    children that already exited (a backend ends with its connection)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for inst in SERVERS:
        pm = int((inst.data_dir / "postmaster.pid").read_text().split()[0])
        for pid in [pm, *_children(pm)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            total += int(fields[11]) + int(fields[12])
            if pid == pm:
                total += int(fields[13]) + int(fields[14])
    return total / tick


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[1]) == ppid:
                out.append(int(entry))
    return out


def run_strangler(spec: Path, expect: dict[int, str] | None) -> tuple[float, dict[str, Any]]:
    cmd = [sys.executable, "-m", "strangler", "verify", "order_service", "-f", str(spec)]
    c0, t0 = server_cpu(), time.perf_counter()
    done = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = server_cpu() - c0
    report = json.loads(done.stdout)
    found = {
        (r["kind"], int(r["key"]["id"]), t["source"]) for t in report["tables"] for r in t["rows"]
    }
    want: set[tuple[str, int, str]] = set()
    for key, kind in (expect or {}).items():
        label = {"delete": "missing", "insert": "extra"}.get(kind, "changed")
        want.add((label, key, "public.orders"))
    return wall, {
        "rc": done.returncode,
        "cpu": cpu,
        "engine_s": report["seconds"],
        "first_pass": {t["source"]: t.get("first_pass") for t in report["tables"]},
        "found": len(found),
        "exact": found == want,
        "false_positives": len(found - want),
        "missed": len(want - found),
    }


_LINE = re.compile(r"^([+-])\s+\(?\s*'?(-?\d+)'?\s*(?:,|\)|$)")


def run_reladiff(
    src: str, dst: str, expect: dict[int, str] | None, flags: str
) -> tuple[float, dict[str, Any]]:
    wall = 0.0
    c0 = server_cpu()
    minus: set[int] = set()
    plus: set[int] = set()
    rcs = []
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "100000"}
    for t in TABLES:
        cmd = [str(RELADIFF), src, f"public.{t}", dst, f"order_service.{t}", "-k", "id"]
        cmd += ["-c", "%", *flags.split()]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall += time.perf_counter() - t0
        rcs.append(done.returncode)
        for line in done.stdout.splitlines():
            m = _LINE.match(line)
            if m and t == "orders":
                (minus if m.group(1) == "-" else plus).add(int(m.group(2)))
            elif m:
                plus.add(-1)  # any order_items difference is a false positive
    expect = expect or {}
    exp_minus = {k for k, v in expect.items() if v != "insert"}
    exp_plus = {k for k, v in expect.items() if v != "delete"}
    return wall, {
        "rc": rcs,
        "cpu": server_cpu() - c0,
        "found": len(minus | plus),
        "exact": minus == exp_minus and plus == exp_plus,
        "false_positives": len((minus | plus) - set(expect)),
        "missed": len(set(expect) - (minus | plus)),
    }


def _comparator_url(dsn: str, table: str) -> str:
    """pg_comparator's URL form of a libpq URI: pgsql://user:pass@host:port/db/schema.table."""
    rest = dsn.removeprefix("postgresql://")
    return f"pgsql://{rest}/{table}"


def comparator_ready(dsn: str) -> bool:
    if PG_COMPARATOR is None:
        return False
    with psycopg.connect(dsn) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgcmp'").fetchone())


def run_comparator(
    src: str, dst: str, expect: dict[int, str] | None
) -> tuple[float, dict[str, Any]]:
    """pg_comparator per table; ``INSERT k`` is a row only the source has (missing), ``DELETE
    k`` one only the target has (extra), ``UPDATE k`` a changed row."""
    assert PG_COMPARATOR is not None
    wall = 0.0
    c0 = server_cpu()
    found: set[tuple[str, int]] = set()
    rcs = []
    for t in TABLES:
        cmd = [PG_COMPARATOR, "--use-key", _comparator_url(src, f"public.{t}"),
               _comparator_url(dst, f"order_service.{t}")]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall += time.perf_counter() - t0
        rcs.append(done.returncode)
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("INSERT", "DELETE", "UPDATE"):
                kind = {"INSERT": "delete", "DELETE": "insert", "UPDATE": "update"}[parts[0]]
                found.add((kind if t == "orders" else "order_items", int(parts[1])))
    expect = expect or {}
    want = {("update" if v.startswith("update") else v, k) for k, v in expect.items()}
    return wall, {
        "rc": rcs,
        "cpu": server_cpu() - c0,
        "found": len(found),
        "exact": found == want,
        "false_positives": len(found - want),
        "missed": len(want - found),
    }


PEER_HASH = "('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint"


def run_floor(src: str, dst: str, *, peers: bool) -> tuple[float, dict[str, Any]]:
    """One hash scan of each table on each side, both sides in parallel."""
    conns = [psycopg.connect(src, autocommit=True), psycopg.connect(dst, autocommit=True)]
    try:
        for c in conns:
            pin_session(c)
        schemas = ["public", "order_service"]
        queries = []
        for t in TABLES:
            pair = []
            for conn, schema in zip(conns, schemas, strict=True):
                shape = read_shape(conn, schema, t)
                assert shape is not None
                hashed = (
                    sql.SQL(PEER_HASH)
                    if peers
                    else row_hash(shape, [c.name for c in shape.columns])
                )
                pair.append(
                    sql.SQL("SELECT count(*), sum({}) FROM {}.{} t").format(
                        hashed, sql.Identifier(schema), sql.Identifier(t)
                    )
                )
            queries.append(pair)
        c0, t0 = server_cpu(), time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            for pair in queries:
                futures = [
                    pool.submit(lambda c, q: c.execute(q).fetchone(), c, q)
                    for c, q in zip(conns, pair, strict=True)
                ]
                [f.result() for f in futures]
        return time.perf_counter() - t0, {"cpu": server_cpu() - c0}
    finally:
        for c in conns:
            c.close()


def median(repeat: int, fn: Any, *args: Any, **kw: Any) -> tuple[float, dict[str, Any]]:
    """Median wall time, and the last run's details with the median server CPU."""
    runs = [fn(*args, **kw) for _ in range(repeat)]
    details = {**runs[-1][1], "cpu": statistics.median(r[1]["cpu"] for r in runs)}
    if "engine_s" in details:
        details["engine_s"] = statistics.median(r[1]["engine_s"] for r in runs)
    return statistics.median(r[0] for r in runs), details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-verify.md")
    parser.add_argument("--append", action="store_true", help="add a section to --out")
    parser.add_argument("--pg", type=int, default=18, choices=(15, 18))
    parser.add_argument("--reladiff-flags", default=RELADIFF_FLAGS)
    args = parser.parse_args()
    if not RELADIFF.exists():
        sys.exit(
            f"install reladiff first: python3 -m venv bench/.venv && {RELADIFF.parent}/pip "
            "install 'reladiff==0.6.0' psycopg2-binary"
        )
    root = Path(tempfile.mkdtemp(prefix="bench-verify-", dir="/tmp"))
    root.chmod(0o755)
    a = b = None
    results: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        a, b = setup(root, args.orders, args.pg)
        SERVERS[:] = [a, b]
        print(f"setup {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        src = a.dsn("monolith")
        where = {"same instance": (src, None, src), "two instances": (src, b.dsn("service"), None)}
        specs = {n: spec_file(root, n.replace(" ", "_"), s, d) for n, (s, d, _) in where.items()}
        keys = injected(args.orders)
        for scenario in ("identical", "100 differences"):
            expect = keys if scenario != "identical" else None
            if expect:
                groups: dict[str, list[int]] = {}
                for k, kind in keys.items():
                    groups.setdefault(kind, []).append(k)
                for dsn in (src, b.dsn("service")):
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        for statement in INJECT.split(";\n"):
                            if statement.strip():
                                conn.execute(statement, groups)
                        conn.execute("ANALYZE order_service.orders")
            for name, (s, d, same) in where.items():
                target = d or same or s
                row: dict[str, Any] = {"scenario": scenario, "where": name}
                row["strangler"] = median(args.repeat, run_strangler, specs[name], expect)
                row["reladiff"] = median(
                    args.repeat, run_reladiff, s, target, expect, args.reladiff_flags
                )
                if comparator_ready(s):
                    row["pg_comparator"] = median(args.repeat, run_comparator, s, target, expect)
                row["floor"] = median(args.repeat, run_floor, s, target, peers=False)
                row["peer floor"] = median(args.repeat, run_floor, s, target, peers=True)
                results.append(row)
                print(json.dumps(row, default=str), file=sys.stderr)
    finally:
        for inst in (a, b):
            if inst is not None:
                inst.destroy()
        shutil.rmtree(root, ignore_errors=True)
    write(args, results)


def write(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    load = os.getloadavg()
    lines = [] if args.append and args.out.exists() else ["# Benchmark: verify", ""]
    flags = (
        ""
        if args.reladiff_flags == RELADIFF_FLAGS
        else f" --reladiff-flags '{args.reladiff_flags}'"
    )
    comparator = any("pg_comparator" in r for r in results)
    server = "embedded PostgreSQL 18" if args.pg == 18 else f"Debian's PostgreSQL {args.pg}"
    lines += [
        f"## {args.orders:,} orders, {3 * args.orders:,} order_items",
        "",
        f"Command: `.venv/bin/python bench/bench_verify.py --orders {args.orders} "
        f"--repeat {args.repeat} --pg {args.pg}{flags}` (median of {args.repeat}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {server} (two servers on loopback), "
        f"load average at the end {load[0]:.1f}.",
        "",
        "Wall time (median):",
        "",
        "| scenario | where | strangler CLI s | engine s | reladiff s | pg_comparator s | floor s "
        "| peer floor s | CLI vs reladiff | engine vs floor | CLI vs floor | strangler found "
        "| reladiff found | pg_comparator found |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]

    def found(d: dict[str, Any] | None) -> str:
        if d is None:
            return "not run"
        return (
            f"{d['found']} ({'exact' if d['exact'] else 'NOT exact'}, "
            f"{d['false_positives']} false +, {d['missed']} missed)"
        )

    for r in results:
        st, sd = r["strangler"]
        rl, rd = r["reladiff"]
        pgc, pgd = r.get("pg_comparator", (None, None))
        fl, _ = r["floor"]
        peer, _ = r["peer floor"]
        engine = float(sd["engine_s"])
        pgc_s = f"{pgc:.2f}" if pgc is not None else "-"
        lines.append(
            f"| {r['scenario']} | {r['where']} | {st:.2f} | {engine:.2f} | {rl:.2f} | {pgc_s} | "
            f"{fl:.2f} | {peer:.2f} | {rl / st:.1f}x faster | {engine / fl:.2f}x | "
            f"{st / fl:.2f}x | {found(sd)} | {found(rd)} | {found(pgd)} |"
        )
    lines += [
        "",
        "Server CPU seconds (both servers, median):",
        "",
        "| scenario | where | strangler | reladiff | pg_comparator | floor | peer floor "
        "| strangler vs reladiff | strangler vs floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        sc, rc = r["strangler"][1]["cpu"], r["reladiff"][1]["cpu"]
        fc, pc = r["floor"][1]["cpu"], r["peer floor"][1]["cpu"]
        gc = f"{r['pg_comparator'][1]['cpu']:.2f}" if "pg_comparator" in r else "-"
        lines.append(
            f"| {r['scenario']} | {r['where']} | {sc:.2f} | {rc:.2f} | {gc} | {fc:.2f} | "
            f"{pc:.2f} | {rc / max(sc, 0.01):.1f}x less | {sc / max(fc, 0.01):.2f}x |"
        )
    first = {r["scenario"]: r["strangler"][1].get("first_pass", {}) for r in results}
    lines += [
        "",
        "- strangler CLI: `python -m strangler verify order_service -o json`, a whole process "
        "(imports, spec, journal, both tables, rows mode); engine: the time the report gives "
        "for the verification itself (connect, plan, scans, bisection, report). Its first scan "
        f"per table (whole table or chunks, chosen by row width): {first}.",
        f"- reladiff 0.6.0: one process per table, `-k id -c % {args.reladiff_flags}`, times "
        "summed.",
        "- pg_comparator: "
        + (
            "Debian's, one process per table, `--use-key` and its defaults (ck checksum from "
            "the pgcmp extension, sum, folding factor 7), times summed."
            if comparator
            else "not run: its checksum functions are the pgcmp C extension, which Debian "
            "builds for PostgreSQL 15 only; run with --pg 15 to include it."
        ),
        "- floor: `SELECT count(*), sum(<strangler's row hash>) FROM t` once per table per side, "
        "both sides at once, no process start; peer floor: the same with the peers' "
        "`sum(('x'||substr(md5(t::text),1,16))::bit(64)::bigint)`.",
        "- 100 differences in orders, as peers/inject_diffs.sql, keys scaled to the row count.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if args.append and args.out.exists() else "w"
    with args.out.open(mode) as fh:
        fh.write("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
