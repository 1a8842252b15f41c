"""The chunk queue and ``strangler worker`` (issue 17): copy and verify exactly once, with
workers killed at random, on real PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.errors import CheckFailed
from strangler.phases import Phase
from strangler.steps.copy import copy as copy_service
from strangler.steps.records import CopyWatermark
from strangler.steps.rollback_schema import rollback_schema
from strangler.steps.rollbacks import RollbackRequest
from tests.extract_world import build_rich, rows_of, runbook, write_service_spec
from tests.fix_pg import Db

TABLES = ["orders", "Order Items"]


def workers_spec(
    tmp: Path, source: str, target: str | None, chunk_rows: int, local: int | None = None
) -> Path:
    spec, _ = write_service_spec(tmp, source, target, tables=TABLES)
    threads = "" if local is None else f", local_threads: {local}"
    spec.write_text(
        spec.read_text() + f"    copy: {{ engine: workers, chunk_rows: {chunk_rows}{threads} }}\n"
    )
    return spec


def queue_rows(dsn: str, job: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT chunk, state, rows, worker FROM _strangler.work_chunks"
            " WHERE service = 'order_service' AND job = %s ORDER BY chunk",
            (job,),
        ).fetchall()


def same_rows(source: Db, target_dsn: str) -> None:
    for t in TABLES:
        assert rows_of(target_dsn, "order_service", t) == rows_of(source.dsn, "public", t), t


@pytest.mark.parametrize("same_instance", [False, True], ids=["new-instance", "same-instance"])
def test_the_copy_goes_through_the_queue_and_is_exact(
    source_db: Db, target_db: Db, tmp_path: Path, same_instance: bool
) -> None:
    build_rich(source_db.dsn, n=3000)
    target = None if same_instance else target_db.dsn
    _, journal, rb = runbook(workers_spec(tmp_path, source_db.dsn, target, 400))
    result = copy_service(rb, jobs=2)
    assert rb.phase == Phase.COPIED
    figures = result.figures
    assert figures is not None and not figures.mismatched
    where = target or source_db.dsn
    same_rows(source_db, where)
    done = queue_rows(where, "copy")
    assert len(done) == figures.chunks > 10
    assert {r[1] for r in done} == {"done"}
    assert sum(r[2] for r in done) == sum(c.target_rows for c in figures.tables.values())
    # every chunk is in the journal too, so a resumed copy skips them
    assert len(rb.progress.chunks()) == figures.chunks
    journal.close()


def _strangler(args: list[str], tmp: Path, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "strangler", *args],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kw,
    )


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _workers_waiting(target_dsn: str) -> int:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            " WHERE application_name LIKE 'strangler worker w_'"
        ).fetchone()
    return int(row[0]) if row else 0


def _run_with_killed_workers(
    coordinator: list[str], job: str, tmp: Path, target_dsn: str, spec: Path
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start 4 workers, and once all four wait for the queue, ``coordinator``; kill -9 two
    of them, drawn at random among those alive that took a chunk, at random moments. Returns
    the finished coordinator and the workers killed while they were alive."""
    names = [f"w{i}" for i in range(4)]
    workers = {
        n: _strangler(
            [
                "worker",
                "order_service",
                "--job",
                job,
                "--name",
                n,
                "--wait-for-queue",
                "300",
                "-f",
                str(spec),
            ],
            tmp,
        )
        for n in names
    }
    # all four are up (their start-up is seconds of imports on a busy machine) before any
    # chunk exists, so they work side by side from the first chunk
    _wait_for(lambda: _workers_waiting(target_dsn) == 4, timeout=180)
    boss = _strangler(coordinator, tmp)
    rng = random.Random()
    killed: list[str] = []
    for _ in range(2):
        # The victim is drawn among the workers alive now that have taken a chunk: on a quiet
        # machine the queue can drain before a victim chosen up front took its turn.
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            alive = [n for n in names if n not in killed and workers[n].poll() is None]
            try:
                took = {r[3] for r in queue_rows(target_dsn, job)}
            except psycopg.errors.UndefinedTable:
                took = set()
            ready = [n for n in alive if n in took]
            if ready:
                victim = rng.choice(ready)
            elif not alive:
                break
            else:
                time.sleep(0.01)
        if victim is None:
            break
        time.sleep(rng.uniform(0.0, 0.05))
        if workers[victim].poll() is None:
            os.kill(workers[victim].pid, signal.SIGKILL)
            killed.append(victim)
    for n, w in workers.items():
        _out, err = w.communicate(timeout=300)
        if n not in killed:
            assert w.returncode == 0, err
            assert "Traceback" not in err
    boss.wait(timeout=300)
    return boss, killed


@pytest.mark.slow
def test_four_workers_two_killed_copy_and_verify_exactly_once(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    build_rich(source_db.dsn, n=12000)
    # the copy and the verification only coordinate: the four workers do all the work
    spec = workers_spec(tmp_path, source_db.dsn, target_db.dsn, 300, local=0)
    boss, killed = _run_with_killed_workers(
        ["copy", "order_service", "-j", "1", "-f", str(spec), "-o", "json"],
        "copy",
        tmp_path,
        target_db.dsn,
        spec,
    )
    out, err = boss.communicate()
    assert boss.returncode == 0, err
    copied = json.loads(out)
    assert copied["tables"]["orders"] == {"source_rows": 12000, "target_rows": 12000}
    same_rows(source_db, target_db.dsn)  # nothing lost, nothing doubled
    done = queue_rows(target_db.dsn, "copy")
    assert {r[1] for r in done} == {"done"} and len(done) > 40
    assert sum(r[2] for r in done) == 12000 + 24000
    # the workers that lived finished what the killed ones left (a killed worker's finished
    # chunks stay done and are not copied again)
    assert {r[3] for r in done} <= {"w0", "w1", "w2", "w3"}
    assert {r[3] for r in done} - set(killed)
    assert len(killed) == 2, "both victims were alive when killed"

    boss, killed = _run_with_killed_workers(
        ["verify", "order_service", "-f", str(spec), "-o", "json"],
        "verify",
        tmp_path,
        target_db.dsn,
        spec,
    )
    out, err = boss.communicate()
    assert boss.returncode == 0, err
    report = json.loads(out)
    assert report["status"] == "passed"
    assert all("by workers" in t["method"] for t in report["tables"])
    hashed = queue_rows(target_db.dsn, "verify")
    assert {r[1] for r in hashed} == {"done"} and len(hashed) > 40
    assert {r[3] for r in hashed} <= {"w0", "w1", "w2", "w3"}


KILL_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from strangler.work import queue
    real = queue.finish
    def finish(conn, chunk, **kw):
        # the chunk's rows are in the target, in this open transaction: die now
        os.kill(os.getpid(), signal.SIGKILL)
    queue.finish = finish
    from strangler.cli import main
    sys.exit(main(["worker", "order_service", "--job", "copy", "--name", "doomed",
                   "-f", sys.argv[1]]))
    """
)


def test_a_worker_killed_between_its_copy_and_its_commit_leaves_nothing(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """Deterministic: the rows of a chunk and its mark commit together or not at all."""
    build_rich(source_db.dsn, n=2000)
    spec = workers_spec(tmp_path, source_db.dsn, target_db.dsn, 500, local=0)
    boss = _strangler(["copy", "order_service", "-f", str(spec), "-o", "json"], tmp_path)

    def queued() -> bool:
        try:
            return bool(queue_rows(target_db.dsn, "copy"))
        except psycopg.errors.UndefinedTable:
            return False

    _wait_for(queued)
    script = tmp_path / "doomed.py"
    script.write_text(KILL_BEFORE_COMMIT)
    doomed = subprocess.run(
        [sys.executable, str(script), str(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr
    # it had streamed a whole chunk into the target when it died: none of it is there
    with psycopg.connect(target_db.dsn, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM order_service.orders),"
            ' (SELECT count(*) FROM order_service."Order Items")'
        ).fetchone()
    assert counts == (0, 0)
    assert {r[1] for r in queue_rows(target_db.dsn, "copy")} == {"pending"}
    # a worker that lives takes the same chunks; the copy ends with exactly the monolith
    helper = _strangler(["worker", "order_service", "--job", "copy", "-f", str(spec)], tmp_path)
    assert helper.wait(timeout=120) == 0, helper.communicate()[1]
    out, err = boss.communicate(timeout=120)
    assert boss.returncode == 0, err
    assert json.loads(out)["tables"]["orders"] == {"source_rows": 2000, "target_rows": 2000}
    same_rows(source_db, target_db.dsn)
    assert {r[1] for r in queue_rows(target_db.dsn, "copy")} == {"done"}


def test_rollback_schema_tells_the_workers_rows_from_anyone_elses(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """Chunk workers journal nothing: before, a worker copy that died before its watermark
    was recorded left rows that ``rollback --schema`` took for someone else's, and the way
    back (drop the schema, copy again) was refused. A done chunk's queue row is updated in
    the transaction that copied it, so its xmin names the copy's transaction."""
    build_rich(source_db.dsn, n=2000)
    _, journal, rb = runbook(workers_spec(tmp_path, source_db.dsn, target_db.dsn, 400))
    copy_service(rb, jobs=2)
    assert not rb.progress.copy_xacts()  # the workers' transactions are not in the journal
    # The copy died before it recorded its watermark: only whose rows they are can tell.
    rb.progress.clear(CopyWatermark)
    with psycopg.connect(target_db.dsn, autocommit=True) as conn:
        items = 'order_service."Order Items"'
        row = conn.execute(f"SELECT id FROM {items} ORDER BY 1 LIMIT 1").fetchone()
        assert row is not None
        # someone else's write: a new row version, in a transaction no copy made
        conn.execute(f"UPDATE {items} SET id = id WHERE id = %s", (row[0],))
    with pytest.raises(CheckFailed, match=r"1 row\(s\) that strangler's copy did not write"):
        rollback_schema(rb, RollbackRequest(reason="foreign row"))
    with psycopg.connect(target_db.dsn, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {items} WHERE id = %s", (row[0],))
    done = rollback_schema(rb, RollbackRequest(reason="copy again"))
    assert done.dropped and rb.phase == Phase.PLANNED
    with psycopg.connect(target_db.dsn, autocommit=True) as conn:
        gone = conn.execute("SELECT to_regnamespace('order_service') IS NULL").fetchone()
    assert gone == (True,)
    journal.close()
