"""``strangler sync SERVICE --rebuild``: the way back again after the reverse slot was lost.

The fault campaign of issue 15 invalidated the reverse slot (``max_slot_wal_keep_size``
exceeded while reverse sync was stopped) in three steps and found no way out inside
strangler: the service's writes since could not reach the monolith's old tables any more,
so ``rollback --writes`` would have lost them. The service's server is an instance of the
test's own here: the limit is server-wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strangler.journal import Journal
from strangler.pg.embedded import PgInstance
from strangler.pg.sync import cdc
from strangler.spec import load_spec
from strangler.steps.records import ReverseRebuild
from strangler.steps.runbook import Runbook
from strangler.steps.wiring import sync_route
from tests.cdc_world import WriteLoad, make_shop
from tests.faults.faults import invalidate
from tests.fix_pg import Db
from tests.test_online_copy import SPEC  # the shop, online, its service on another server

DIGEST = {
    "orders": "SELECT count(*), md5(coalesce(string_agg(o::text, ',' ORDER BY id), '')) "
    "FROM {s}.orders o",
    "items": "SELECT count(*), md5(coalesce(string_agg(i::text, ',' ORDER BY order_id, line), "
    "'')) FROM {s}.items i",
}


def _level(source: Db, service: Db) -> bool:
    """The monolith's old tables hold what the service's hold, by our own digest."""
    return all(
        source.execute(q.format(s="public")) == service.execute(q.format(s="svc"))
        for q in DIGEST.values()
    )


def _slot(service: Db) -> list[tuple[str, str]]:
    return service.execute(
        "SELECT slot_name, wal_status FROM pg_replication_slots WHERE slot_name LIKE 'strangler%'"
    )


@pytest.fixture
def cut_over(
    pg_root: Path, source_db: Db, tmp_path: Path, cli
) -> Iterator[tuple[Path, Db, PgInstance]]:
    """A shop copied, synced, verified and cut over to a service on its own server, the
    service writing since, and its reverse slot invalidated by the server."""
    inst = PgInstance.create(pg_root / "service-slot-lost").start()
    spec = tmp_path / "strangler.yaml"
    try:
        inst.create_database("shop")
        service = Db(inst, "shop")
        make_shop(source_db, None, rows=200)
        spec.write_text(SPEC.format(source=source_db.dsn, target=service.dsn))
        for step in (("copy",), ("sync", "--until-caught-up"), ("verify",), ("cutover",)):
            done = cli(step[0], "shop", "-f", str(spec), *step[1:])
            assert done.code == 0, done.stderr
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        service.execute("UPDATE svc.orders SET note = 'applied before the loss' WHERE id <= 10")
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        service.execute("UPDATE svc.orders SET note = 'lost with the slot' WHERE id > 190")
        service.execute("DELETE FROM svc.orders WHERE id BETWEEN 20 AND 25")
        invalidate(inst, "shop", "strangler_shop_rev")
        yield spec, service, inst
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop", "--yes", "--force", "--reason", "cleanup")
        inst.destroy()


def test_a_lost_reverse_slot_is_rebuilt_and_the_way_back_holds_every_write(
    cut_over: tuple[Path, Db, PgInstance], source_db: Db, cli
) -> None:
    spec, service, _ = cut_over
    f = ("-f", str(spec))
    lost = cli("sync", "shop", *f, "--until-caught-up")
    assert lost.code == 1 and "was invalidated" in lost.stderr
    assert "'strangler sync shop --rebuild'" in lost.stderr  # the hint names the way out
    assert not _level(source_db, service)
    # A table catch-up cannot find rows in (no key) is refused before anything changes.
    service.execute("ALTER TABLE svc.items REPLICA IDENTITY FULL")
    keyless = cli("sync", "shop", *f, "--rebuild", "--yes")
    assert keyless.code == 1 and "svc.items: REPLICA IDENTITY FULL" in keyless.stderr
    assert _slot(service) == [("strangler_shop_rev", "lost")]
    service.execute("ALTER TABLE svc.items REPLICA IDENTITY DEFAULT")
    # --dry-run says what it would do and changes nothing.
    dry = cli("sync", "shop", *f, "--rebuild", "--dry-run", "--output", "json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["would_rewrite"] == ["public.orders", "public.items"]
    assert _slot(service) == [("strangler_shop_rev", "lost")]
    # The service keeps writing through the rebuild: the stream after the new slot repeats
    # some of what the copy holds, and catches up the rest.
    with WriteLoad(service.dsn, schema="svc", clients=2, pause=0.01) as load:
        rebuilt = cli("sync", "shop", *f, "--rebuild", "--yes", "--output", "json")
        assert rebuilt.code == 0, rebuilt.stderr
        assert rebuilt.json()["rows"]["orders"] > 150 and rebuilt.json()["resumed"] is False
        assert _slot(service) == [("strangler_shop_rev", "reserved")]
        assert cli("sync", "shop", *f, "--until-caught-up").code == 0
    assert load.committed > 0 and not load.errors
    assert cli("sync", "shop", *f, "--until-caught-up").code == 0
    assert _level(source_db, service)
    # Healthy now: a second rebuild is refused, changing nothing.
    again = cli("sync", "shop", *f, "--rebuild", "--yes")
    assert again.code == 1 and "healthy" in again.stderr
    # The way back holds the service's writes, the lost ones included.
    back = cli("rollback", "shop", "--writes", *f, "--reason", "test", "--yes")
    assert back.code == 0, back.stderr
    lost_rows = "SELECT count(*) FROM {}.orders WHERE note = 'lost with the slot'"
    kept = source_db.execute(lost_rows.format("public"))
    assert kept == service.execute(lost_rows.format("svc")) and kept[0][0] > 0
    assert _level(source_db, service)


def test_a_rebuild_killed_after_its_new_slot_carries_on_with_it(
    cut_over: tuple[Path, Db, PgInstance], source_db: Db, cli
) -> None:
    """kill -9 after the new slot was made, before the old tables were copied: the same
    command again keeps that slot (its start is still before every read) and finishes."""
    spec, service, _ = cut_over
    loaded = load_spec(spec)
    route = sync_route(loaded, "shop", "reverse")
    with Journal(loaded.state_url(), operator="test", command="test") as journal:
        rb = Runbook(loaded, journal, "shop")
        rb.progress.save(ReverseRebuild(route.slot, journal.clock().isoformat()))
        cdc.end(route)
        cdc.begin(route, copy=None, gate=False)
    made = service.execute(
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'strangler_shop_rev'"
    )
    service.execute("INSERT INTO svc.orders (customer, total) VALUES ('after the slot', 1)")
    resumed = cli("sync", "shop", "-f", str(spec), "--rebuild", "--yes", "--output", "json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["resumed"] is True
    assert (
        service.execute(
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'strangler_shop_rev'"
        )
        == made
    )
    assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
    assert _level(source_db, service)
