"""The throttle (issue 17): the monolith's health read for real, judged against the spec's
limits, and copy, verify and sync held between chunks or rounds (or stopped) because of it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from strangler.errors import ThrottleAbort
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.copy import copy as copy_service
from strangler.steps.runbook import Runbook
from strangler.throttle.brake import Limits, MonolithBrake, judge
from strangler.throttle.control import ManualPause
from strangler.throttle.health import Health, read_health
from tests.cdc_world import differences, make_shop
from tests.fix_pg import Db

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: {strategy}
    copy: {{ chunk_rows: 100 }}
{throttle}"""


def write(tmp: Path, source: Db, target: Db, throttle: str = "", strategy: str = "copy") -> Path:
    path = tmp / "strangler.yaml"
    path.write_text(
        SPEC.format(source=source.dsn, target=target.dsn, throttle=throttle, strategy=strategy)
    )
    return path


def health(**kw: Any) -> Health:
    base: dict[str, Any] = dict(
        at=0.0, wal_lsn=0, replica_lag=None, wal_rate=None, slot_retained=None,
        active_backends=0, lock_waits=0, xmin_age=None, xmin_holder=None,
    )  # fmt: skip
    return Health(**(base | kw))


def test_judge_waits_on_load_and_aborts_on_what_only_grows() -> None:
    limits = Limits(
        replica_lag=10, wal_rate=1e6, slot_retained=1 << 30, active_backends=50,
        lock_waits=5, xmin_age=1_000_000, query_max=0.5, prometheus_max=0.2,
    )  # fmt: skip
    assert judge(health(), limits).action == "go"
    busy = judge(
        health(replica_lag=12.0, wal_rate=2e6, active_backends=60, lock_waits=9,
               query_value=0.9, prometheus_value=0.3),
        limits,
    )  # fmt: skip
    assert busy.action == "wait"
    assert [r.split(":")[0] for r in busy.reasons] == [
        "replica lag", "WAL rate", "active backends", "lock waits", "query", "prometheus",
    ]  # fmt: skip
    full = judge(health(slot_retained=2 << 30, replica_lag=12.0), limits)
    assert full.action == "abort" and full.reasons[0].startswith("slot retained WAL")
    old = judge(health(xmin_age=2_000_000, xmin_holder="77 (psql)"), limits)
    assert old.action == "abort" and "pid 77 (psql)" in old.reasons[0]
    # sync frees retained WAL: it never stops for it
    sync = Limits(slot_retained=1, ignore_slot_wal=True)
    assert judge(health(slot_retained=5), sync).action == "go"
    paused = ManualPause("shop", "deploy", "ana", datetime.now())
    assert judge(health(), Limits(), paused).reasons == ("paused: by ana: deploy",)


def test_health_is_read_from_the_monolith_itself(source_db: Db) -> None:
    with source_db.connect() as conn:
        conn.execute("CREATE TABLE t (id int); CREATE TABLE locked (id int)")
        conn.execute("SELECT pg_create_logical_replication_slot('throttle_probe', 'pgoutput')")
        first = read_health(conn, clock=0.0)
        conn.execute("INSERT INTO t SELECT generate_series(1, 20000)")
        holder = source_db.connect()
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM t")  # holds a snapshot
        for _ in range(30):
            conn.execute("SELECT pg_current_xact_id()")  # each call one transaction
        blocker = source_db.connect()
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        waiter = threading.Thread(
            target=lambda: source_db.execute("SELECT count(*) FROM locked"), daemon=True
        )
        waiter.start()
        deadline = time.monotonic() + 30
        while True:
            second = read_health(conn, first, clock=10.0)
            if second.lock_waits >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        blocker.execute("ROLLBACK")
        waiter.join(timeout=30)
        holder.close()
        blocker.close()
        conn.execute("SELECT pg_drop_replication_slot('throttle_probe')")
    assert second.lock_waits >= 1 and second.active_backends >= 1
    assert second.slot_retained is not None and second.slot_retained > 100_000
    assert second.wal_rate is not None and second.wal_rate > 10_000  # bytes/s over 10 s
    assert second.xmin_age is not None and second.xmin_age >= 30
    assert second.replica_lag is None  # no replica here


def _events(spec: Path) -> list[tuple[str | None, str | None]]:
    loaded = load_spec(spec)
    with Journal(loaded.state_url(), operator="t", command="t") as journal:
        return [(e.status, e.reason) for e in journal.history("shop") if e.step == "throttle"]


def test_an_operator_query_holds_the_copy_between_chunks_until_it_clears(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    make_shop(source_db, None, rows=600)
    source_db.execute("CREATE TABLE knob (v float8); INSERT INTO knob VALUES (1)")
    spec = write(
        tmp_path, source_db, target_db,
        "    throttle: { query: { sql: 'SELECT v FROM knob', max: 0.5 }, check_every: 0.1s }\n",
    )  # fmt: skip
    loaded = load_spec(spec)
    journal = Journal(loaded.state_url(), operator="t", command="t")
    rb = Runbook(loaded, journal, "shop")
    seen: dict[str, Any] = {}

    def release() -> None:
        deadline = time.monotonic() + 60
        while not any(s == "wait" for s, _ in _events(spec)) and time.monotonic() < deadline:
            time.sleep(0.05)
        # the copy is held: not one chunk has moved
        seen["rows_while_held"] = target_db.execute(
            "SELECT (SELECT count(*) FROM svc.orders) + (SELECT count(*) FROM svc.items)"
        )[0][0]
        source_db.execute("UPDATE knob SET v = 0")

    helper = threading.Thread(target=release, daemon=True)
    helper.start()
    result = copy_service(rb, jobs=2)
    helper.join()
    assert result.figures is not None and not result.figures.mismatched
    assert seen["rows_while_held"] == 0
    decisions = _events(spec)
    assert [s for s, _ in decisions] == ["wait", "go"]
    assert decisions[0][1] == "query: 1 > 0.5"
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    journal.close()


def test_a_critical_limit_stops_the_copy_with_nothing_half_done(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    make_shop(source_db, None, rows=300)
    source_db.execute("SELECT pg_create_logical_replication_slot('old_consumer', 'pgoutput')")
    source_db.execute("CREATE TABLE filler AS SELECT generate_series(1, 50000) g")
    spec = write(tmp_path, source_db, target_db, "    throttle: { max_slot_retained_wal: 64kB }\n")
    stopped = cli("copy", "shop", "-f", str(spec))
    assert stopped.code == 1
    assert "stopped before the next chunk to protect the monolith" in stopped.stderr
    assert "slot retained WAL" in stopped.stderr
    status = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
    assert status["throttle"]["last_decision"] == "abort"
    text = cli("status", "-f", str(spec)).stdout
    assert "shop: throttle not paused · last decision abort for copy (slot retained WAL" in text
    source_db.execute("SELECT pg_drop_replication_slot('old_consumer')")
    again = cli("copy", "shop", "-f", str(spec))  # resumes: nothing was half-done
    assert again.code == 0, again.stderr
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}


def test_pause_and_resume_hold_a_running_sync_between_rounds(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    make_shop(source_db, None, rows=200)
    spec = write(tmp_path, source_db, target_db, strategy="online")
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    sync = subprocess.Popen(
        [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        paused = cli("throttle", "shop", "--pause", "--reason", "month-end close", "-f", str(spec))
        assert paused.code == 0, paused.stderr
        assert "paused by" in paused.stdout and "month-end close" in paused.stdout
        deadline = time.monotonic() + 60
        while ("wait", "paused: by " + _operator(spec) + ": month-end close") not in _events(spec):
            assert time.monotonic() < deadline, _events(spec)
            time.sleep(0.1)
        source_db.execute("INSERT INTO orders (id, customer, total) VALUES (100001, 'c', 5)")
        time.sleep(1.0)  # a second or more of rounds the brake holds
        assert target_db.execute("SELECT count(*) FROM svc.orders WHERE id = 100001") == [(0,)]
        shown = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]["throttle"]
        assert shown["paused"]["reason"] == "month-end close"
        assert cli("throttle", "shop", "--resume", "--reason", "done", "-f", str(spec)).code == 0
        while target_db.execute("SELECT count(*) FROM svc.orders WHERE id = 100001") != [(1,)]:
            assert time.monotonic() < deadline + 60
            time.sleep(0.1)
    finally:
        sync.kill()
        sync.communicate()
        cli("sync", "shop", "--stop", "-f", str(spec))
    assert ("resumed", "done") in _events(spec)


def _operator(spec: Path) -> str:
    from strangler.journal import current_operator

    del spec
    return current_operator()


def test_max_pause_turns_a_long_wait_into_a_stop() -> None:
    clock = [0.0]
    brake = MonolithBrake(
        Limits(check_every=1.0, max_pause=3.0, watch_health=False),
        connect=lambda: pytest.fail("no health without a throttle: section"),  # type: ignore[arg-type,return-value]
        read_pause=lambda: ManualPause("s", "hold", "ana", datetime.now()),
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    with pytest.raises(ThrottleAbort, match=r"throttle\.max_pause is 3s"):
        brake.between("chunk")
    assert [d.action for d in brake.decisions] == ["wait"]


def test_max_snapshot_age_stops_a_copy_and_a_rerun_finishes_it(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    make_shop(source_db, None, rows=300)
    spec = write(tmp_path, source_db, target_db)
    text = spec.read_text()
    spec.write_text(
        text.replace(
            "copy: { chunk_rows: 100 }", "copy: { chunk_rows: 100, max_snapshot_age: 1ms }"
        )
    )
    stopped = cli("copy", "shop", "-f", str(spec))
    assert stopped.code == 1
    assert "more than copy.max_snapshot_age" in stopped.stderr
    assert "keeps the finished chunks" in stopped.stderr
    spec.write_text(text)
    again = cli("copy", "shop", "-f", str(spec))
    assert again.code == 0, again.stderr
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
