"""The whole runbook of the demo world through the library alone (issue 11).

``strangler.run`` is called again and again, as cron would, in a child process that never
imports the CLI, from planned to decommissioned: online copy, sync, verify, write cutover,
a gated traffic walk through strangler's proxy, the decommission checklist, archive and
drop. One world runs without interruption; the other is killed with SIGKILL at random
moments and simply run again. Both must end in the same journal (the same steps done, in
the same order, each once) and with the same data, checked by a digest of our own.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.demo.monolith import build_monolith
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.preflight import attest
from strangler.steps.runbook import Runbook
from strangler.traffic.proxy import LocalProxy
from tests.fix_pg import Db

TABLES = ("orders", "order_items", "order_status_history")

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  {service}:
    tables: [orders, order_items, order_status_history]
    target: {{ dsn: "{target}", schema: order_service }}
    strategy: online
    traffic:
      route: /api/v1/orders*
      router: {{ kind: local, admin_url: "{admin}" }}
      steps: [50, 100]
      bake: 2s
      final_bake: 2s
      interval: 1s
      failed_intervals: 3
      gates:
        - {{ metric: request_count, min: 3 }}
        - {{ metric: error_rate, max: 0.05 }}
    decommission: {{ stable_for: 2s, write_window: 1s, drop_old_tables_after: 2s,
                     archive_dir: archive }}
"""

CHILD = """
import json, sys
import strangler
spec = strangler.load_spec(sys.argv[1])
with strangler.open_journal(spec.state_url(), operator="cron", command="run") as journal:
    rb = strangler.Runbook(spec, journal, sys.argv[2])
    options = strangler.RunOptions(jobs=2, drain_timeout=60)
    result = strangler.run_until_done(rb, options=options, max_nap=0.5)
    assert "strangler.cli" not in sys.modules, "the library imported the CLI"
    assert "rich" not in sys.modules, "the library imported rich"
    print(json.dumps(result.to_dict(), default=str))
    sys.exit(result.exit_code)
"""


@dataclass
class World:
    service: str
    spec: Path
    source: Db
    target: Db
    before: dict[str, str]


def _digest(db: Db, schema: str) -> dict[str, str]:
    """Our own digest of each table: not strangler's verify."""
    out = {}
    with db.connect() as conn:
        for table in TABLES:
            row = conn.execute(
                f"SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' "
                f"ORDER BY t.id)), '-') FROM {schema}.{table} t"
            ).fetchone()
            out[table] = str(row[0]) if row else ""
    return out


@pytest.fixture
def apps() -> Iterator[LocalProxy]:
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    proxy = LocalProxy(monolith.url, service.url, "/api/v1/orders*").start()
    load = LoadGenerator(proxy.url, rate=300, workers=6).start()
    try:
        yield proxy
    finally:
        load.stop()
        proxy.stop()
        monolith.stop()
        service.stop()


def _world(tmp: Path, service: str, source: Db, target: Db, admin: str) -> World:
    tmp.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        build_monolith(conn, orders=400)
        # The monolith's old code path (a view over orders) goes before the old tables do.
        conn.execute("DROP VIEW public.customer_order_totals")
    spec = tmp / "strangler.yaml"
    spec.write_text(SPEC.format(source=source.dsn, target=target.dsn, service=service, admin=admin))
    return World(service, spec, source, target, _digest(source, "public"))


def _attest_no_incident(world: World) -> None:
    spec = load_spec(world.spec)
    with Journal(spec.state_url(), operator="sre", command="attest") as journal:
        attest(Runbook(spec, journal, world.service), "no_incident", "INC board clean")


_DANGLING = (
    "SELECT i.step FROM strangler_entries i WHERE i.kind = 'intent' AND NOT EXISTS "
    "(SELECT 1 FROM strangler_entries o WHERE o.intent_id = i.id)"
)


def _inside_a_step(world: World) -> str | None:
    """The step the child is in the middle of (an intent without an outcome), if any."""
    db = world.spec.parent / "state.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as lite:
            row = lite.execute(_DANGLING).fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _kill_when(
    child: subprocess.Popen[str], world: World, rng: random.Random, hit: set[str], *, anywhere: bool
) -> str:
    """SIGKILL the child right inside a step it had not been killed in before, or (when
    ``anywhere``) at a random moment between steps; returns where (empty: it ended first)."""
    deadline = time.monotonic() + rng.uniform(0.5, 6.0)
    while child.poll() is None:
        step = _inside_a_step(world)
        if step is not None and step not in hit:
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside it, not only at its start
            hit.add(step)
            os.kill(child.pid, signal.SIGKILL)
            return f"inside {step}"
        if anywhere and step is None and time.monotonic() > deadline:
            os.kill(child.pid, signal.SIGKILL)
            return "at a random moment between steps"
        time.sleep(0.01)
    return ""


def _drive(
    world: World, rng: random.Random | None, between: int, seed: int | None = None
) -> list[str]:
    """Run the child until done; with ``rng``, SIGKILL it inside each step the first time it
    is seen, and ``between`` times at random moments between steps. Returns what happened.

    A failure names the seed and every line of what happened, with the child's error: the
    walk is random, and a CI log that cuts the list short cannot be replayed otherwise."""
    log: list[str] = []
    left = between
    hit: set[str] = set()
    for _ in range(80):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(world.spec), world.service],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=world.spec.parent,
        )
        if rng is not None:
            where = _kill_when(child, world, rng, hit, anywhere=left > 0)
            if where:
                child.communicate()
                left -= where.startswith("at a random")
                log.append(f"killed {where}")
                continue
        out, err = child.communicate(timeout=300)
        code = child.returncode
        result: dict[str, Any] = json.loads(out) if out.strip() else {}
        log.append(
            f"exit {code}: {result.get('status')} {result.get('waiting') or ''}"
            f"{result.get('error') or ''}"
        )
        if code == 0:
            return log
        waiting = result.get("waiting") or {}
        if code != 75 or waiting.get("reason") != "attestation":
            lines = "\n".join(log)
            pytest.fail(
                f"seed {seed} (STRANGLER_KILL_SEED={seed} repeats it); what happened:\n"
                f"{lines}\nresult: {json.dumps(result, default=str)}\nstderr: {err[-3000:]}",
                pytrace=False,
            )
        _attest_no_incident(world)
    raise AssertionError(f"never finished (seed {seed}): {log}")


def _steps_done(world: World) -> list[tuple[str, Any]]:
    """The steps that completed, in order, with the traffic weight each shift set."""
    spec = load_spec(world.spec)
    with Journal(spec.state_url()) as journal:
        entries = journal.history(world.service)
        state = journal.state(world.service)
    intents = {e.id: e for e in entries if e.kind == "intent"}
    done = [
        (intents[e.intent_id].step, intents[e.intent_id].details.get("weight"))
        for e in entries
        if e.kind == "outcome" and e.status == "ok" and e.intent_id in intents
    ]
    done.append(("state", (state.phase, state.weight)))
    return done


@pytest.mark.slow
def test_run_from_the_library_survives_kill_9_and_ends_where_an_uninterrupted_run_does(
    tmp_path: Path,
    source_db: Db,
    target_db: Db,
    second_source_db: Db,
    second_target_db: Db,
    apps: LocalProxy,
) -> None:
    seed = int(os.environ.get("STRANGLER_KILL_SEED", str(random.SystemRandom().randrange(10**6))))
    calm = _world(tmp_path / "calm", "orders_a", source_db, target_db, apps.url)
    _drive(calm, None, between=0)
    expected = _steps_done(calm)
    assert [s for s, _ in expected[:5]] == [
        "create_schema",
        "copy",
        "start_sync",
        "verify",
        "cutover_writes",
    ]
    assert expected[-1] == ("state", ("decommissioned", 100.0))
    assert _digest(target_db, "order_service") == calm.before

    # The proxy is shared: back to the monolith for the second walk.
    apps.set_service_percent(0)
    stormy = _world(tmp_path / "stormy", "orders_b", second_source_db, second_target_db, apps.url)
    started = time.monotonic()
    log = _drive(stormy, random.Random(seed), between=3, seed=seed)
    got = _steps_done(stormy)
    context = f"seed {seed} (STRANGLER_KILL_SEED={seed} repeats it): {log}"
    print(context)
    assert got == expected, context
    inside = [line for line in log if line.startswith("killed inside")]
    assert len(inside) >= 7, context  # (nearly) every step was killed in once
    assert _digest(second_target_db, "order_service") == stormy.before, context
    with second_source_db.connect() as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace IN ('public'::regnamespace)",
            (list(TABLES),),
        ).fetchone()
    assert left == (0,), "the old tables were dropped"
    assert time.monotonic() - started < 600
