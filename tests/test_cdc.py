"""Online sync against real PostgreSQL: the snapshot handoff and what real monoliths do."""

from __future__ import annotations

import psycopg
import pytest

from strangler.errors import CheckFailed
from strangler.pg.sync import cdc
from strangler.pg.sync.apply import SchemaChanged
from strangler.pg.sync.position import read_position
from tests.cdc_world import WriteLoad, copier, differences, make_shop, route


def _objects(db) -> tuple[list, list]:
    slots = db.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
    )
    pubs = db.execute("SELECT pubname FROM pg_publication")
    return slots, pubs


@pytest.fixture
def shop(source_db, target_db):
    make_shop(source_db, target_db)
    r = route(source_db, target_db)
    yield r
    cdc.end(r)


def test_snapshot_handoff_under_load_loses_and_doubles_nothing(source_db, target_db, shop):
    with WriteLoad(source_db.dsn) as load:
        cdc.begin(shop, copy=copier(shop))
        cdc.run(shop, until_caught_up=True)
    assert load.committed > 0
    cdc.run(shop, until_caught_up=True)
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    assert target_db.execute("SELECT count(*) FROM svc.orders")[0][0] > 200


@pytest.mark.parametrize("reader", ["stream", "peek"])
def test_real_monolith_cases(source_db, target_db, shop, reader):
    cdc.begin(shop, copy=copier(shop))
    src = source_db
    # A primary key that changes, deletes (with the FK cascade on the source), a rollback.
    src.execute("INSERT INTO public.orders (id, customer, total) VALUES (-1, 'pk', 1)")
    src.execute("UPDATE public.orders SET id = 100000 WHERE id = -1")
    src.execute("DELETE FROM public.orders WHERE id = 2")
    src.execute("UPDATE public.items SET line = 9 WHERE order_id = 3 AND line = 1")
    with src.connect() as conn:
        conn.autocommit = False
        conn.execute("INSERT INTO public.orders (customer) VALUES ('never')")
        conn.rollback()
    # A value stored out of line (TOAST), then an update that leaves it alone.
    src.execute(
        "UPDATE public.orders SET doc = (SELECT string_agg(md5(g::text || random()::text), '') "
        "FROM generate_series(1, 4000) g) WHERE id = 4"
    )
    src.execute("UPDATE public.orders SET note = 'toast kept' WHERE id = 4")
    # A large transaction.
    src.execute(
        "INSERT INTO public.orders (customer, total) "
        "SELECT 'big', g FROM generate_series(1, 30000) g"
    )
    cdc.run(shop, until_caught_up=True, reader=reader)
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    tgt = target_db
    assert tgt.execute("SELECT count(*) FROM svc.orders WHERE customer = 'never'") == [(0,)]
    assert tgt.execute("SELECT length(doc), note FROM svc.orders WHERE id = 4") == [
        (128000, "toast kept")
    ]
    assert tgt.execute("SELECT total_x2 FROM svc.orders WHERE id = 100000")[0][0] == 2
    # TRUNCATE is applied: the target matches the source.
    src.execute("TRUNCATE public.orders, public.items")
    src.execute("INSERT INTO public.orders (customer) VALUES ('after truncate')")
    last = cdc.run(shop, until_caught_up=True, reader=reader)
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    assert tgt.execute("SELECT customer FROM svc.orders") == [("after truncate",)]
    assert last.caught_up


def test_ddl_on_a_moved_table_stops_sync_and_applies_nothing_of_it(source_db, target_db, shop):
    cdc.begin(shop, copy=copier(shop))
    source_db.execute("INSERT INTO public.orders (customer) VALUES ('before ddl')")
    cdc.run(shop, until_caught_up=True)
    before = read_position(psycopg.connect(target_db.dsn, autocommit=True), shop.slot)
    source_db.execute("ALTER TABLE public.orders ADD COLUMN coupon text")
    source_db.execute("INSERT INTO public.orders (customer, coupon) VALUES ('after ddl', 'x')")
    with pytest.raises(SchemaChanged, match=r"public\.orders.*coupon"):
        cdc.run(shop, until_caught_up=True)
    assert target_db.execute("SELECT count(*) FROM svc.orders WHERE customer = 'after ddl'") == [
        (0,)
    ]
    after = read_position(psycopg.connect(target_db.dsn, autocommit=True), shop.slot)
    assert after is not None and before is not None and after["lsn"] == before["lsn"]
    # Apply the same DDL to the target and sync resumes where it stopped.
    target_db.execute("ALTER TABLE svc.orders ADD COLUMN coupon text")
    cdc.run(shop, until_caught_up=True)
    assert target_db.execute("SELECT coupon FROM svc.orders WHERE customer = 'after ddl'") == [
        ("x",)
    ]


def test_table_without_replica_identity_is_refused_and_nothing_changes(source_db, target_db):
    make_shop(source_db, target_db)
    source_db.execute("CREATE TABLE public.log (at timestamptz, line text)")
    source_db.execute("CREATE UNIQUE INDEX log_at ON public.log (at)")
    source_db.execute("ALTER TABLE public.log ALTER at SET NOT NULL")
    target_db.execute("CREATE TABLE svc.log (at timestamptz, line text)")
    r = route(source_db, target_db)
    r = cdc.SyncRoute(**{**r.__dict__, "tables": ("orders", "log")})
    with pytest.raises(CheckFailed) as err:
        cdc.begin(r, copy=copier(r))
    text = err.value.message
    assert "public.log has no primary key" in text
    assert 'ALTER TABLE "public"."log" REPLICA IDENTITY USING INDEX "log_at";' in text
    assert 'ALTER TABLE "public"."log" REPLICA IDENTITY FULL;' in text
    assert _objects(source_db) == ([], [])
    assert target_db.execute("SELECT to_regclass('_strangler.sync_position')") == [(None,)]
    # The monolith's own writes still work.
    source_db.execute("INSERT INTO public.log VALUES (now(), 'x')")
    source_db.execute("DELETE FROM public.log")


def test_end_removes_slot_publication_and_position(source_db, target_db, shop):
    cdc.begin(shop, copy=copier(shop))
    assert _objects(source_db) == ([("strangler_shop",)], [("strangler_shop",)])
    assert cdc.status(shop).slot_exists
    result = cdc.end(shop)
    assert result == {"slot": "strangler_shop", "slot_dropped": True, "publication_dropped": True}
    assert _objects(source_db) == ([], [])
    assert target_db.execute("SELECT count(*) FROM _strangler.sync_position") == [(0,)]


def test_slot_creation_names_the_blocking_session_instead_of_hanging(source_db, target_db):
    make_shop(source_db, target_db)
    r = route(source_db, target_db)
    with source_db.connect() as blocker:
        blocker.autocommit = False
        blocker.execute("SET application_name = 'the_blocker'")
        blocker.execute("INSERT INTO public.orders (customer) VALUES ('open')")
        pid = blocker.info.backend_pid
        with pytest.raises(CheckFailed) as err:
            cdc.begin(r, copy=copier(r), slot_timeout=1.0)
        blocker.rollback()
    assert f"pid {pid}" in err.value.message and "the_blocker" in err.value.message
    assert _objects(source_db) == ([], [])


def test_same_instance(source_db):
    make_shop(source_db, source_db)
    r = route(source_db, source_db)
    try:
        with WriteLoad(source_db.dsn):
            cdc.begin(r, copy=copier(r))
            cdc.run(r, until_caught_up=True)
        cdc.run(r, until_caught_up=True)
        assert differences(source_db, source_db) == {"orders": 0, "items": 0}
    finally:
        cdc.end(r)


def test_postgres15_source_to_18_target(pg15_db, target_db):
    make_shop(pg15_db, target_db)
    r = route(pg15_db, target_db)
    try:
        with WriteLoad(pg15_db.dsn):
            cdc.begin(r, copy=copier(r))
            cdc.run(r, until_caught_up=True)
        pg15_db.execute("DELETE FROM public.orders WHERE id < 5")
        pg15_db.execute("UPDATE public.items SET line = -line WHERE order_id < 9")
        cdc.run(r, until_caught_up=True)
        assert differences(pg15_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cdc.end(r)


def test_a_round_whose_changes_cancel_out_applies_nothing_and_goes_on(source_db, target_db):
    """A row inserted and deleted in the same round folds to nothing: the applier moves its
    position and goes on (it once sent COPY one empty line, "missing data for column keep",
    and sync stopped; seen under live writes in tests/test_verify_live.py)."""
    make_shop(source_db, target_db, rows=5)
    r = route(source_db, target_db)
    cdc.begin(r, copy=copier(r))
    try:
        source_db.execute(
            "INSERT INTO public.orders (id, customer, total, note) VALUES (900, 'x', 1, 'y');"
            "DELETE FROM public.orders WHERE id = 900"
        )
        cdc.run(r, until_caught_up=True)
        assert target_db.execute("SELECT count(*) FROM svc.orders WHERE id = 900") == [(0,)]
        source_db.execute("UPDATE public.orders SET note = 'after' WHERE id = 1")
        cdc.run(r, until_caught_up=True)
        assert target_db.execute("SELECT note FROM svc.orders WHERE id = 1") == [("after",)]
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cdc.end(r)
