"""Write cutover and rollback under load, with a sync running beside them: zero differences."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from strangler.errors import CheckFailed
from strangler.pg.sync import cdc, cutover
from strangler.pg.sync.gate import install_gate
from strangler.pg.sync.position import ensure_position
from strangler.pg.sync.slot import create_publication, exported_slot
from tests.cdc_world import WriteLoad, copier, differences, make_shop, route


def _background_sync(r: cdc.SyncRoute) -> tuple[threading.Thread, threading.Event, list]:
    stop, errors = threading.Event(), []

    def work() -> None:
        try:
            cdc.run(r, stop=stop)
        except cdc.SlotGone:
            pass  # the cutover dropped the slot under it, as it should
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t, stop, errors


@pytest.mark.parametrize("instances", ["two", "same"])
def test_cutover_and_rollback_under_load_lose_nothing(source_db, target_db, instances):
    target = target_db if instances == "two" else source_db
    make_shop(source_db, target)
    fwd, rev = route(source_db, target), route(source_db, target, "reverse")
    try:
        cdc.begin(fwd, copy=copier(fwd))
        # Before cutover the service schema refuses the application's writes.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="monolith still owns"):
            target.execute("INSERT INTO svc.orders (customer) VALUES ('too early')")
        for _ in range(2):
            thread, stop, errors = _background_sync(fwd)
            with WriteLoad(source_db.dsn):
                switch = cutover.cutover(fwd, rev)
            stop.set()
            thread.join()
            assert errors == []
            assert switch.window_seconds > 0
            assert differences(source_db, target) == {"orders": 0, "items": 0}
            with pytest.raises(
                psycopg.errors.ReadOnlySqlTransaction,
                match=r"writes to public\.orders are refused: shop's writes were cut over.*"
                r"strangler rollback shop --writes",
            ):
                source_db.execute("INSERT INTO public.orders (customer) VALUES ('refused')")
            # The service takes writes (its ids past the monolith's); reverse sync keeps the
            # monolith's tables current.
            thread, stop, errors = _background_sync(rev)
            with WriteLoad(target.dsn, schema="svc"):
                back = cutover.rollback(fwd, rev)
            stop.set()
            thread.join()
            assert errors == []
            assert back.direction == "forward"
            assert differences(source_db, target) == {"orders": 0, "items": 0}
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                target.execute("DELETE FROM svc.items")
            with WriteLoad(source_db.dsn):
                cdc.run(fwd, until_caught_up=True)
            cdc.run(fwd, until_caught_up=True)
            assert differences(source_db, target) == {"orders": 0, "items": 0}
    finally:
        cdc.end(fwd)
        cdc.end(rev)


SLOW_ITEMS = """
CREATE FUNCTION public.slow_statement() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(2.0); RETURN NULL; END $$;
CREATE TRIGGER zz_slow BEFORE UPDATE ON public.items FOR EACH STATEMENT
EXECUTE FUNCTION public.slow_statement();
"""


def _writer(db, query: str) -> tuple[threading.Thread, list]:
    failed: list = []

    def work() -> None:
        try:
            db.execute(query)
        except psycopg.Error as exc:
            failed.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t, failed


def test_a_writer_past_the_gate_but_not_yet_writing_is_waited_for(source_db, target_db):
    """The statement passed the gate's trigger and sleeps in a later statement trigger
    (triggers fire in name order), before any row, so it holds no xid yet: the cutover must
    wait for its commit and carry its change, not drop it."""
    make_shop(source_db, target_db)
    fwd, rev = route(source_db, target_db), route(source_db, target_db, "reverse")
    try:
        cdc.begin(fwd, copy=copier(fwd))
        with psycopg.connect(source_db.dsn, autocommit=True) as conn:
            install_gate(conn, fwd.service, "monolith", "public", fwd.tables, closed=False)
        source_db.execute(SLOW_ITEMS)
        writer, failed = _writer(source_db, "UPDATE public.items SET qty = 77 WHERE order_id = 1")
        time.sleep(0.3)  # inside the statement trigger's sleep
        switch = cutover.cutover(fwd, rev)
        writer.join()
        assert failed == []
        # it waited for the writer (the window's own stage; the new slot was made before it)
        assert switch.stages["wait"] > 0.3
        assert target_db.execute("SELECT qty FROM svc.items WHERE order_id = 1") == [(77,), (77,)]
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cdc.end(fwd)
        cdc.end(rev)


def test_a_writer_that_does_not_finish_undoes_the_cutover_and_is_named(source_db, target_db):
    make_shop(source_db, target_db)
    fwd, rev = route(source_db, target_db), route(source_db, target_db, "reverse")
    try:
        cdc.begin(fwd, copy=copier(fwd))
        with source_db.connect() as open_txn:
            # Before the gate exists, installing it waits on the open transaction: named.
            open_txn.execute("BEGIN")
            open_txn.execute("UPDATE public.orders SET note = 'open' WHERE id = 1")
            with pytest.raises(
                CheckFailed, match=r"write gate on public\.orders within 0\.3s.*\n  pid \d+"
            ):
                cutover.cutover(fwd, rev, writers_timeout=0.3)
            open_txn.execute("COMMIT")
            with psycopg.connect(source_db.dsn, autocommit=True) as conn:
                install_gate(conn, fwd.service, "monolith", "public", fwd.tables, closed=False)
            # With the gate in place, the cutover closes it, waits for the writer, gives up.
            open_txn.execute("BEGIN")
            open_txn.execute("UPDATE public.orders SET note = 'open' WHERE id = 1")
            with pytest.raises(CheckFailed, match=r"still open after 0\.3s:\n  pid \d+"):
                cutover.cutover(fwd, rev, writers_timeout=0.3)
            open_txn.execute("COMMIT")
        # Undone: the monolith takes writes and forward sync still carries them.
        source_db.execute("UPDATE public.orders SET note = 'after' WHERE id = 2")
        cdc.run(fwd, until_caught_up=True)
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert not cdc.status(rev).slot_exists
    finally:
        cdc.end(fwd)
        cdc.end(rev)


def _service_writes_reach_the_monolith(source_db, target, rev: cdc.SyncRoute) -> None:
    target.execute("INSERT INTO svc.orders (customer) VALUES ('after the switch')")
    cdc.run(rev, until_caught_up=True)
    assert differences(source_db, target) == {"orders": 0, "items": 0}


def test_a_cutover_killed_after_the_service_gate_opened_is_finished_not_repeated(
    source_db, target_db
):
    """Past the point of no return only the forward slot is left to drop; writes the service
    took meanwhile reach the monolith by reverse sync."""
    make_shop(source_db, target_db)
    fwd, rev = route(source_db, target_db), route(source_db, target_db, "reverse")
    try:
        cdc.begin(fwd, copy=copier(fwd))
        cutover.cutover(fwd, rev)
        # The state a kill between opening the gate and dropping the forward slot leaves.
        with psycopg.connect(source_db.dsn, autocommit=True) as src:
            create_publication(src, fwd.slot, "public", fwd.tables)
            with exported_slot(source_db.dsn, src, fwd.slot, export_snapshot=False):
                pass
        target_db.execute("INSERT INTO svc.orders (customer) VALUES ('taken before the kill')")
        done = cutover.cutover(fwd, rev, resume=True)
        assert done.resumed and done.window_seconds == 0.0
        assert not cdc.status(fwd).slot_exists and cdc.status(rev).slot_exists
        _service_writes_reach_the_monolith(source_db, target_db, rev)
    finally:
        cdc.end(fwd)
        cdc.end(rev)


def test_a_cutover_killed_before_the_service_gate_opened_simply_runs_again(source_db, target_db):
    make_shop(source_db, target_db)
    fwd, rev = route(source_db, target_db), route(source_db, target_db, "reverse")
    try:
        cdc.begin(fwd, copy=copier(fwd))
        # The state a kill inside the window leaves: monolith gate closed, forward sync
        # drained, the reverse slot made and even started, the service gate still closed.
        with (
            psycopg.connect(source_db.dsn, autocommit=True) as src,
            psycopg.connect(target_db.dsn, autocommit=True) as dst,
        ):
            install_gate(src, fwd.service, "monolith", "public", fwd.tables, closed=True)
            cdc.run(fwd, until_caught_up=True)
            cutover._prepare(rev, dst, src)
            ensure_position(src, rev.slot, cutover._current_lsn(dst))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            target_db.execute("INSERT INTO svc.orders (customer) VALUES ('not yet')")
        done = cutover.cutover(fwd, rev, resume=True)
        assert not done.resumed and done.window_seconds > 0
        assert set(done.stages) >= {"close", "drain", "position", "open"}
        assert not cdc.status(fwd).slot_exists
        _service_writes_reach_the_monolith(source_db, target_db, rev)
    finally:
        cdc.end(fwd)
        cdc.end(rev)
