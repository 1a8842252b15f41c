"""Write cutover and rollback under load, with a sync running beside them: zero differences."""

from __future__ import annotations

import threading

import psycopg
import pytest

from strangler.pg import cdc, cutover
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
