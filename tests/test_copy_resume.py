"""Snapshot consistency under writes, and kill -9 in the middle of a copy, then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from strangler.errors import CheckFailed
from strangler.phases import Phase
from tests.extract_world import build_rich, copy_service, rows_of, runbook, write_service_spec
from tests.fix_pg import Db

TABLES = ["orders", "Order Items"]


class WriteDuringCopy:
    """A progress sink that, after the first chunk lands, changes the monolith for real."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.done = False

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None:
        pass

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        if self.done or not rows:
            return
        self.done = True
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 40)"
            )
            conn.execute(
                "INSERT INTO orders (customer_id, total) SELECT 1, 1 FROM generate_series(1, 70)"
            )
            conn.execute(
                'INSERT INTO "Order Items" (order_id) SELECT max(id) FROM orders '
                "CROSS JOIN generate_series(1, 5)"
            )
            conn.execute("UPDATE orders SET total = total + 1000")


def test_writes_during_the_copy_do_not_reach_it(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    build_rich(source_db.dsn, n=2000)
    before = {t: rows_of(source_db.dsn, "public", t) for t in TABLES}
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    _, journal, rb = runbook(spec)
    writer = WriteDuringCopy(source_db.dsn)
    result = copy_service(rb, jobs=2, chunk_rows=300, progress=writer)
    assert writer.done
    # the monolith changed while we copied ...
    assert rows_of(source_db.dsn, "public", "orders") != before["orders"]
    # ... and the copy is exactly the monolith at the snapshot, counted in that snapshot
    for t in TABLES:
        assert rows_of(target_db.dsn, "order_service", t) == before[t], t
    assert result["tables"]["orders"] == {"source_rows": 2000, "target_rows": 2000}
    assert result["chunks"] > 2
    valid = target_db.execute(
        "SELECT bool_and(convalidated) FROM pg_constraint WHERE contype = 'f' "
        "AND connamespace = 'order_service'::regnamespace"
    )
    assert valid == [(True,)]
    assert rb.phase == Phase.COPIED
    journal.close()


def test_same_instance_snapshot_holds_too(source_db: Db, tmp_path: Path) -> None:
    build_rich(source_db.dsn, n=1500)
    before = rows_of(source_db.dsn, "public", "Order Items")
    spec, _ = write_service_spec(tmp_path, source_db.dsn, None, tables=TABLES)
    _, journal, rb = runbook(spec)
    result = copy_service(rb, jobs=2, chunk_rows=200, progress=WriteDuringCopy(source_db.dsn))
    assert rows_of(source_db.dsn, "order_service", "Order Items") == before
    assert result["tables"]["Order Items"]["target_rows"] == len(before)
    journal.close()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from strangler.journal import Journal
    from strangler.spec import load_spec
    from strangler.steps.copy import copy as copy_service
    from strangler.steps.runbook import Runbook

    class Killer:
        seen = 0
        def table_started(self, *a): pass
        def advance(self, table, rows, nbytes):
            if rows:
                Killer.seen += 1
                if Killer.seen == int(sys.argv[2]):
                    # this chunk is committed on the target but not yet journaled
                    os.kill(os.getpid(), signal.SIGKILL)

    spec = load_spec(sys.argv[1])
    journal = Journal(spec.state_url(), operator="test", command="killer")
    copy_service(Runbook(spec, journal, "order_service"), jobs=2, chunk_rows=250,
                 progress=Killer())
    """
)


def test_kill_9_then_rerun_resumes_to_the_same_result(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    build_rich(source_db.dsn, n=3000)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run(
        [sys.executable, str(script), str(spec), "5"], capture_output=True, text=True, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    _, journal, _rb = runbook(spec)
    finished = journal.items("order_service", "copy/chunk/")
    plan = journal.get("order_service", "copy/plan")
    total = sum(len(v) for v in plan.values())
    assert 0 < len(finished) < total
    journal.close()

    again = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert again.code == 0, again.stderr
    data = again.json()
    assert data["resumed"] is True
    assert data["chunks_skipped"] == len(finished)
    assert data["chunks_copied"] == total - len(finished)
    for t in TABLES:
        assert rows_of(target_db.dsn, "order_service", t) == rows_of(source_db.dsn, "public", t)
    hist = cli("history", "order_service", "-f", str(spec), "--output", "json").json()
    statuses = [(e["step"], e["status"]) for e in hist["entries"] if e["kind"] == "outcome"]
    assert ("copy", "crashed") in statuses and statuses[-1] == ("copy", "ok")
    assert os.path.exists(spec)


SCHEMA_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from strangler.journal import Journal
    from strangler.steps.create_schema import create_schema
    from strangler.steps.runbook import Runbook
    from strangler.spec import load_spec

    spec = load_spec(sys.argv[1])
    journal = Journal(spec.state_url(), operator="test", command="killer")
    put = journal.put
    def dying_put(service, key, value):
        if key == "schema/created":  # the DDL has committed; the journal never hears of it
            os.kill(os.getpid(), signal.SIGKILL)
        put(service, key, value)
    journal.put = dying_put
    create_schema(Runbook(spec, journal, "order_service"))
    """
)


def test_kill_9_after_the_schema_commit_recovers(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    build_rich(source_db.dsn, n=20)
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    script = tmp_path / "schema_killer.py"
    script.write_text(SCHEMA_KILLER)
    done = subprocess.run(
        [sys.executable, str(script), str(spec)], capture_output=True, text=True, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert target_db.execute("SELECT count(*) FROM order_service.orders") == [(0,)]
    again = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert again.code == 0, again.stderr
    assert again.json()["schema"]["recovered"] is True
    assert again.json()["tables"]["orders"]["target_rows"] == 20
    # the recovered record still knows strangler made the role, so rollback removes it
    back = cli("rollback", "order_service", "--schema", "--reason", "t", "--yes", "-f", str(spec))
    assert back.code == 0, back.stderr
    assert target_db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)) == []


class WriteToTarget(WriteDuringCopy):
    """Someone writes into the service table while the copy runs."""

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        if self.done or not rows or table != "orders":
            return
        self.done = True
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO order_service.orders (id, customer_id, total) "
                "OVERRIDING SYSTEM VALUE VALUES (-1, 1, 1)"
            )


def test_a_count_mismatch_fails_the_copy(source_db: Db, target_db: Db, tmp_path: Path) -> None:
    build_rich(source_db.dsn, n=300)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    _, journal, rb = runbook(spec)
    with pytest.raises(CheckFailed) as info:
        copy_service(rb, jobs=2, chunk_rows=100, progress=WriteToTarget(target_db.dsn))
    assert info.value.exit_code == 1
    assert "orders: source 300 vs target 301" in info.value.message
    assert rb.phase == Phase.SCHEMA_READY
    last = journal.last("order_service", "copy")
    assert last is not None and last.status == "failed"
    journal.close()
