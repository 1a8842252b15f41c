"""The batched apply against real PostgreSQL: folded rounds, the fallbacks, divergence."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from strangler.pg.copy.rows import Endpoints, copy_tables
from strangler.pg.sync import cdc
from strangler.pg.sync.apply import Applier, Diverged
from strangler.pg.sync.position import emit_mark, read_position

SCHEMA = """
CREATE DOMAIN {s}.positive AS int NOT NULL CHECK (VALUE > 0);
CREATE TABLE {s}.acct (
    id     bigint PRIMARY KEY,
    email  text NOT NULL UNIQUE,
    score  {s}.positive,
    name   varchar(20),
    doc    text
);
CREATE TABLE {s}.audit (who text, what text);
"""


def _route(source: Any, target: Any) -> cdc.SyncRoute:
    return cdc.SyncRoute(
        service="bank",
        direction="forward",
        source_dsn=source.dsn,
        source_schema="public",
        target_dsn=target.dsn,
        target_schema="svc",
        tables=("acct", "audit"),
        source_role="monolith",
        target_role="service",
    )


@pytest.fixture
def bank(source_db, target_db):
    source_db.execute(SCHEMA.format(s="public"))
    source_db.execute("ALTER TABLE public.audit REPLICA IDENTITY FULL")
    source_db.execute(
        "INSERT INTO public.acct SELECT g, 'e' || g, g, 'n' || g FROM generate_series(1, 100) g"
    )
    source_db.execute("INSERT INTO public.audit VALUES ('a', 'x'), ('a', 'x'), ('b', 'y')")
    target_db.execute("CREATE SCHEMA svc")
    target_db.execute(SCHEMA.format(s="svc"))
    route = _route(source_db, target_db)
    ends = Endpoints(source_db.dsn, "public", target_db.dsn, "svc")

    def copy(snapshot: str | None) -> None:
        assert snapshot is not None
        copy_tables(ends, route.tables, snapshot=snapshot)

    cdc.begin(route, copy=copy)
    yield route
    cdc.end(route)


def _rows(db: Any, schema: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    acct = db.execute(f"SELECT id, email, score, name, md5(doc) FROM {schema}.acct ORDER BY id")
    audit = db.execute(f"SELECT who, what FROM {schema}.audit ORDER BY who, what")
    return acct, audit


def _drain(applier: Applier) -> None:
    # The test servers commit asynchronously: a mark flushes the WAL the rounds must read.
    mark = emit_mark(applier.source)
    while applier.run_round().position < mark:
        pass


def _applier(route: cdc.SyncRoute, src: Any, dst: Any) -> Applier:
    return cdc.applier(route, src, dst)


def test_rounds_are_folded_and_the_fallbacks_keep_the_target_equal(
    source_db, target_db, bank
) -> None:
    src = source_db
    with bank.connect_source() as s, bank.connect_target() as t:
        applier = _applier(bank, s, t)
        # One round: inserts, updates, deletes (a NOT NULL domain column is NULL in the
        # staged delete rows), a key that moves, a big value stored out of line, and a
        # table without a key (identical rows: exactly one of them goes).
        src.execute(
            "INSERT INTO public.acct SELECT g, 'e' || g, g, 'new' FROM generate_series(101, 160) g"
        )
        src.execute("UPDATE public.acct SET name = 'upd' WHERE id BETWEEN 20 AND 40")
        src.execute("DELETE FROM public.acct WHERE id BETWEEN 50 AND 54")
        src.execute("UPDATE public.acct SET id = 1001 WHERE id = 1")
        src.execute(
            "UPDATE public.acct SET doc = (SELECT string_agg(md5(g::text || random()::text), '')"
            " FROM generate_series(1, 4000) g) WHERE id = 10"
        )
        src.execute("DELETE FROM public.audit WHERE ctid = (SELECT min(ctid) FROM public.audit)")
        src.execute("INSERT INTO public.audit VALUES ('c', 'tab\there\nnewline \\ backslash')")
        _drain(applier)
        assert _rows(target_db, "svc") == _rows(src, "public")
        assert applier.folded >= 1  # acct went through the stage
        assert applier.replayed >= 1  # audit (REPLICA IDENTITY FULL) change by change
        folded, replayed = applier.folded, applier.replayed

        # A later round changes id 10 without touching its TOASTed value: the stage keeps it.
        src.execute("UPDATE public.acct SET name = 'toast kept' WHERE id = 10")
        _drain(applier)
        assert target_db.execute("SELECT length(doc), name FROM svc.acct WHERE id = 10") == [
            (128000, "toast kept")
        ]
        assert (applier.folded, applier.replayed) == (folded + 1, replayed)

        # Unique values swapped between two rows in one transaction: the set-based UPDATE
        # trips the unique index, so the round's acct changes are replayed in order.
        with src.connect() as conn, conn.transaction():
            conn.execute("UPDATE public.acct SET email = 'tmp' WHERE id = 2")
            conn.execute("UPDATE public.acct SET email = 'e2' WHERE id = 3")
            conn.execute("UPDATE public.acct SET email = 'e3' WHERE id = 2")
        _drain(applier)
        assert _rows(target_db, "svc") == _rows(src, "public")
        assert applier.replayed == replayed + 1
        assert target_db.execute("SELECT email FROM svc.acct WHERE id IN (2, 3) ORDER BY id") == [
            ("e3",),
            ("e2",),
        ]


@pytest.mark.parametrize("change", ["UPDATE public.acct SET name = 'x'", "DELETE FROM public.acct"])
def test_a_row_missing_on_the_target_stops_the_round_and_applies_nothing(
    source_db, target_db, bank, change
) -> None:
    with psycopg.connect(target_db.dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # past the write gate
        conn.execute("DELETE FROM svc.acct WHERE id = 5")
    with bank.connect_target() as t:
        before = read_position(t, bank.slot)
    source_db.execute("INSERT INTO public.acct VALUES (500, 'e500', 1, 'same round')")
    source_db.execute(change + " WHERE id = 5")
    with (
        bank.connect_source() as s,
        bank.connect_target() as t,
        pytest.raises(Diverged, match=r"svc\.acct touched 0 row\(s\) where the stream changes 1"),
    ):
        _drain(_applier(bank, s, t))
    assert target_db.execute("SELECT count(*) FROM svc.acct WHERE id = 500") == [(0,)]
    with bank.connect_target() as t:
        assert read_position(t, bank.slot) == before


def test_a_table_staged_twice_in_one_round_is_staged_afresh(source_db, target_db, bank) -> None:
    """A TRUNCATE between two runs of changes to acct flushes acct's stage in the middle of
    the round; its rows must not be moved a second time."""
    src = source_db
    src.execute("UPDATE public.acct SET name = 'first' WHERE id <= 5")
    src.execute("TRUNCATE public.audit")
    src.execute("UPDATE public.acct SET name = 'second' WHERE id BETWEEN 6 AND 10")
    src.execute("DELETE FROM public.acct WHERE id = 11")
    with bank.connect_source() as s, bank.connect_target() as t:
        applier = _applier(bank, s, t)
        _drain(applier)
        assert applier.replayed == 0
    assert _rows(target_db, "svc") == _rows(src, "public")


def test_one_change_that_needs_order_is_replayed_alone_and_the_rest_folded(
    source_db, target_db, bank
) -> None:
    """A key moved on a row whose TOASTed value is unchanged cannot be folded (its new row is
    not known in full); it goes in order on its own, while the thousands of changes around
    it in the same transaction stay folded (issue 12)."""
    src = source_db
    src.execute(
        "INSERT INTO public.acct SELECT g, 'e' || g, 1, 'x' FROM generate_series(101, 3100) g"
    )
    src.execute(
        "UPDATE public.acct SET doc = (SELECT string_agg(md5(g::text || random()::text), '')"
        " FROM generate_series(1, 4000) g) WHERE id = 10"
    )
    with bank.connect_source() as s, bank.connect_target() as t:
        applier = _applier(bank, s, t)
        _drain(applier)
        folded, replayed = applier.folded, applier.replayed_changes
        with src.connect() as conn, conn.transaction():
            conn.execute("UPDATE public.acct SET name = 'before' WHERE id > 100")
            conn.execute("UPDATE public.acct SET id = 100010, name = 'moved' WHERE id = 10")
            conn.execute("UPDATE public.acct SET score = score + 1 WHERE id > 100")
        _drain(applier)
        assert _rows(target_db, "svc") == _rows(src, "public")
        assert target_db.execute("SELECT length(doc) FROM svc.acct WHERE id = 100010") == [
            (128000,)
        ]
        assert applier.replayed_changes - replayed == 1
        assert applier.folded - folded == 2  # before the odd change, and after it
