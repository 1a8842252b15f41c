"""``strategy: online``: the extraction's copy meets the sync's slot exactly, resumably.

The copy runs under the snapshot the slot exported; ``strangler sync`` starts from the slot
without copying again. A copy that dies restarts under a new slot and never mixes rows read
in two snapshots (a mix would lose the writes made between them: the differences catch it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.pg.sync import cdc
from strangler.phases import Phase
from strangler.spec import load_spec
from strangler.steps.records import OnlineCopy, Progress, SchemaCreated
from strangler.steps.rollback_schema import rollback_schema
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook
from strangler.steps.wiring import sync_route
from tests.cdc_world import WriteLoad, differences, make_shop
from tests.crash_points import commit_fails, outcome_of
from tests.extract_world import copy_service

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: online
"""


def _spec(tmp_path: Path, source, target) -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(SPEC.format(source=source.dsn, target=target.dsn))
    return path


class _DiesAfter:
    """A copy display that fails the copy after ``n`` chunks have committed (a crash)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None:
        pass

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        if rows:
            self.n -= 1
            if self.n < 0:
                raise RuntimeError("copy killed")


def _slots(db) -> list[tuple[str]]:
    return db.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")


def test_online_copy_creates_the_slot_and_sync_only_applies(source_db, target_db, tmp_path, cli):
    make_shop(source_db, None, rows=3000)
    spec = _spec(tmp_path, source_db, target_db)
    try:
        with WriteLoad(source_db.dsn, clients=2) as load:
            copied = cli("copy", "shop", "-f", str(spec), "--output", "json")
            assert copied.code == 0, copied.stderr
            # The slot exists as soon as the copy is done; sync never copies.
            assert _slots(source_db) == [("strangler_shop",)]
            synced = cli("sync", "shop", "-f", str(spec), "--until-caught-up", "--output", "json")
            assert synced.code == 0, synced.stderr
        assert load.committed > 0
        done = cli("sync", "shop", "-f", str(spec), "--until-caught-up", "--output", "json")
        assert done.code == 0, done.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert cli("status", "-f", str(spec), "--output", "json").code == 0
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop")
    assert _slots(source_db) == []


def test_sync_without_the_copys_slot_refuses_and_never_copies(source_db, target_db, tmp_path, cli):
    make_shop(source_db, None, rows=100)
    spec = _spec(tmp_path, source_db, target_db)
    too_early = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
    assert too_early.code != 0 and "strangler copy shop" in too_early.stderr
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    assert cli("sync", "shop", "-f", str(spec), "--stop").code == 0
    source_db.execute("INSERT INTO public.orders (customer) VALUES ('after the stop')")
    gone = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
    assert gone.code == 1
    assert "no replication slot 'strangler_shop'" in gone.stderr
    assert "strangler rollback shop --schema" in gone.stderr
    assert _slots(source_db) == []
    assert target_db.execute("SELECT count(*) FROM svc.orders") == [(100,)]
    # The way out the error names: drop the schema, copy again (a new slot), sync.
    assert cli("rollback", "shop", "--schema", "-f", str(spec), "--reason", "t", "--yes").code == 0
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
    assert target_db.execute("SELECT count(*) FROM svc.orders") == [(101,)]
    assert cli("rollback", "shop", "--schema", "-f", str(spec), "--reason", "t", "--yes").code == 0
    assert _slots(source_db) == []  # the schema rollback removed the slot too


def test_a_copy_that_dies_restarts_under_a_new_slot_and_mixes_no_snapshots(
    source_db, target_db, tmp_path
):
    make_shop(source_db, None, rows=4000)
    source_db.execute("ANALYZE")  # the copy plans its chunks from the statistics
    spec = load_spec(_spec(tmp_path, source_db, target_db))
    journal = Journal(spec.state_url(), operator="test", command="test")
    rb = Runbook(spec, journal, "shop")
    route = sync_route(spec, "shop")
    try:
        with pytest.raises(RuntimeError, match="copy killed"):
            copy_service(rb, jobs=1, chunk_rows=500, progress=_DiesAfter(3))
        first = journal.get("shop", OnlineCopy.KEY)["snapshot"]
        done = journal.items("shop", "copy/chunk/")
        assert 0 < len(done) < 9 and {d["snapshot"] for d in done.values()} == {first}
        assert _slots(source_db) == []  # the dying copy took its slot with it
        # Rows in chunks that were already copied change before the copy runs again.
        source_db.execute("UPDATE public.orders SET note = 'changed between' WHERE id <= 600")
        source_db.execute("DELETE FROM public.orders WHERE id BETWEEN 10 AND 20")
        with WriteLoad(source_db.dsn, clients=2):
            result = copy_service(Runbook(spec, journal, "shop"), jobs=2, chunk_rows=500)
            assert result["restarted"] is True and result["snapshot"] != first
            assert {d["snapshot"] for d in journal.items("shop", "copy/chunk/").values()} == {
                result["snapshot"]
            }
            cdc.run(route, until_caught_up=True)
        cdc.run(route, until_caught_up=True)
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert Runbook(spec, journal, "shop").phase is Phase.COPIED
    finally:
        cdc.end(route)
        journal.close()


def test_a_schema_rollback_that_failed_after_its_drop_finishes_when_run_again(
    source_db, target_db, tmp_path, cli
):
    """The fault campaign's rollback-schema x restart: the service schema was dropped, then
    the monolith restarted before the slot went, and the step failed. Run again, it found no
    schema to measure and failed for ever; now it finishes the rest (slot, publication,
    position, journal)."""
    make_shop(source_db, None, rows=50)
    spec = _spec(tmp_path, source_db, target_db)
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
    target_db.execute("DROP SCHEMA svc CASCADE")  # what the first attempt had done
    again = cli("rollback", "shop", "--schema", "-f", str(spec), "--reason", "t", "--yes")
    assert again.code == 0, again.stderr
    assert _slots(source_db) == []
    assert source_db.execute("SELECT count(*) FROM pg_publication") == [(0,)]
    status = cli("status", "shop", "-f", str(spec), "--output", "json")
    assert '"planned"' in status.stdout


def test_a_schema_rollback_whose_outcome_was_lost_finishes_when_run_again(
    source_db, target_db, tmp_path, cli
):
    """The journal's commit failed on the rollback's outcome (a kill -9 there is the same):
    before, the records of the copy and the schema had been forgotten in transactions of
    their own, so after 'strangler resolve' the rollback refused for ever ("no record of
    creating schema") with the phase still 'copied' and the schema gone."""
    make_shop(source_db, None, rows=50)
    spec_path = _spec(tmp_path, source_db, target_db)
    assert cli("copy", "shop", "-f", str(spec_path)).code == 0
    spec = load_spec(spec_path)
    with Journal(spec.state_url(), operator="t", command="rollback shop --schema") as journal:
        rb = Runbook(spec, journal, "shop")
        with commit_fails(journal, outcome_of("rollback_schema")) as fault:
            with pytest.raises(StranglerError, match="disk is full"):
                rollback_schema(rb, RollbackRequest("t", yes=True))
            assert fault.fired
        assert rb.phase is Phase.COPIED
        assert rb.progress.load(SchemaCreated) is not None, "forgotten without the outcome"
    # The documented recovery: resolve the step that never recorded its outcome, run again.
    assert cli("resolve", "shop", "-f", str(spec_path), "--reason", "disk full").code == 0
    again = cli("rollback", "shop", "--schema", "-f", str(spec_path), "--reason", "t", "--yes")
    assert again.code == 0, again.stderr
    assert _slots(source_db) == []
    with Journal(spec.state_url()) as journal:
        assert Runbook(spec, journal, "shop").phase is Phase.PLANNED
        assert Progress(journal, "shop").load(SchemaCreated) is None


def test_a_slot_left_by_a_copy_killed_before_it_recorded_itself_is_replaced(
    source_db, target_db, tmp_path, cli
):
    """kill -9 between creating the slot and recording the copy in the journal (CI found it):
    the journal knows no copy, so the slot holds nothing; the copy run again drops it and
    starts under a new one, instead of refusing as if a sync had begun."""
    make_shop(source_db, None, rows=300)
    spec = _spec(tmp_path, source_db, target_db)
    assert cli("copy", "shop", "-f", str(spec), "--schema-only").code == 0
    source_db.execute("CREATE PUBLICATION strangler_shop FOR TABLE public.orders, public.items")
    source_db.execute("SELECT pg_create_logical_replication_slot('strangler_shop', 'pgoutput')")
    left = source_db.execute(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'strangler_shop'"
    )
    source_db.execute("UPDATE public.orders SET note = 'after the left slot' WHERE id <= 50")
    copied = cli("copy", "shop", "-f", str(spec))
    assert copied.code == 0, copied.stderr
    assert "left by a copy killed" in copied.stderr
    now = source_db.execute(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'strangler_shop'"
    )
    assert len(now) == 1 and now != left  # a new slot, made with the copy's snapshot
    source_db.execute("DELETE FROM public.items WHERE order_id <= 5")
    try:
        synced = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
        assert synced.code == 0, synced.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop")


def test_an_online_copy_that_failed_after_its_foreign_keys_starts_over_cleanly(
    source_db, target_db, tmp_path, monkeypatch
):
    """The fault campaign's run x target-disk-full #8: the target's disk filled at the end of
    the copy (ANALYZE), after its foreign keys were made, and the slot went with the failed
    step. The copy run again reloaded rows with the keys in place (a child chunk before its
    parent's: a violation), then could not TRUNCATE the referenced table; it failed for ever.
    Now it drops the keys it made, loads again and makes them again."""
    import strangler.pg.copy.extract as extract

    make_shop(source_db, None, rows=3000)
    source_db.execute("ANALYZE")
    spec = load_spec(_spec(tmp_path, source_db, target_db))
    journal = Journal(spec.state_url(), operator="test", command="test")
    route = sync_route(spec, "shop")
    fks = (
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
        "AND connamespace = 'svc'::regnamespace"
    )

    def disk_full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("could not extend file: No space left on device")

    try:
        with monkeypatch.context() as m:
            m.setattr(extract, "set_sequences", disk_full)
            with pytest.raises(RuntimeError, match="No space left"):
                copy_service(Runbook(spec, journal, "shop"), jobs=2, chunk_rows=500)
        assert target_db.execute(fks) == [(1,)]  # made before the failure
        assert _slots(source_db) == []
        source_db.execute("UPDATE public.orders SET note = 'between the attempts' WHERE id < 99")
        result = copy_service(Runbook(spec, journal, "shop"), jobs=2, chunk_rows=500)
        assert result["restarted"] is True
        assert target_db.execute(fks) == [(1,)]  # made again, after the rows
        cdc.run(route, until_caught_up=True)
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cdc.end(route)
        journal.close()


def test_kill_9_of_an_online_copy_then_copy_and_sync_lose_and_double_nothing(
    source_db, target_db, tmp_path, cli
):
    make_shop(source_db, None, rows=40000)
    spec = _spec(tmp_path, source_db, target_db)
    rnd = random.Random(11)
    # Kills land in the copy of rows (creating the schema is one step of its own, not resumable).
    assert cli("copy", "shop", "-f", str(spec), "--schema-only").code == 0
    try:
        with WriteLoad(source_db.dsn, clients=2):
            for _ in range(3):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "strangler", "copy", "shop", "-f", str(spec)],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(rnd.uniform(0.3, 2.0))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                if proc.returncode == 0:
                    break
            copied = cli("copy", "shop", "-f", str(spec), "--output", "json")
            if copied.code != 0:  # the last attempt had finished: the phase moved on
                assert "copied" in copied.stderr, copied.stderr
            synced = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
            assert synced.code == 0, synced.stderr
        synced = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
        assert synced.code == 0, synced.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert _slots(source_db) == [("strangler_shop",)]
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop")


def test_online_copy_refuses_a_table_without_replica_identity_before_creating_anything(
    source_db, target_db, tmp_path, cli
):
    make_shop(source_db, None, rows=10)
    source_db.execute("ALTER TABLE public.items REPLICA IDENTITY NOTHING")
    spec = _spec(tmp_path, source_db, target_db)
    refused = cli("copy", "shop", "-f", str(spec))
    assert refused.code == 1
    assert "public.items has REPLICA IDENTITY NOTHING" in refused.stderr
    assert 'ALTER TABLE "public"."items" REPLICA IDENTITY FULL' in refused.stderr
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'svc'") == [(0,)]
    assert _slots(source_db) == []


def test_online_copy_refuses_an_unlogged_table_in_plan_and_before_creating_anything(
    source_db, target_db, tmp_path, cli
):
    make_shop(source_db, None, rows=10)
    source_db.execute("ALTER TABLE public.items SET UNLOGGED")
    spec = _spec(tmp_path, source_db, target_db)
    planned = cli("plan", "shop", "-f", str(spec))
    # A finding that will stop the copy: plan says so with exit 1, as terraform would.
    assert planned.code == 1 and "UNLOGGED" in planned.stdout + planned.stderr
    refused = cli("copy", "shop", "-f", str(spec))
    assert refused.code == 1
    assert "public.items is UNLOGGED" in refused.stderr and "SET LOGGED" in refused.stderr
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'svc'") == [(0,)]
    assert _slots(source_db) == []
