"""Sync as the rest of strangler sees it: spec limits, plan, status warnings, traffic gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.errors import CheckFailed, SlotGone, SpecError
from strangler.journal import Journal
from strangler.pg.embedded import PgInstance
from strangler.pg.sync import cdc
from strangler.phases import Action, Phase
from strangler.spec import load_spec, parse_spec_text
from strangler.steps.runbook import Runbook
from strangler.steps.wiring import sync_route
from tests.cdc_world import make_shop
from tests.faults.faults import invalidate
from tests.fix_pg import Db

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: {schema} }}
    strategy: {strategy}
{sync}"""


def _text(source="postgresql://h/m", target="postgresql://h/s", *, schema="svc", sync="",
          strategy="online") -> str:  # fmt: skip
    return SPEC.format(source=source, target=target, schema=schema, sync=sync, strategy=strategy)


def _spec_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec_text(text)
    return str(info.value)


def test_sync_limits_parse_postgres_sizes_and_bad_values_are_named() -> None:
    spec = parse_spec_text(_text(sync="    sync: { max_retained_wal: 1GB, max_lag: 512kB }\n"))
    sync = spec.service("shop").sync
    assert sync is not None and sync.max_retained_wal == 1 << 30 and sync.max_lag == 512 << 10
    assert (
        parse_spec_text(_text(sync="    sync: { max_retained_wal: 4096 }\n"))
        .service("shop")
        .sync.max_retained_wal
        == 4096
    )  # type: ignore[union-attr]
    bad = _spec_error(_text(sync="    sync: { max_retained_wal: lots }\n"))
    assert "max_retained_wal" in bad and "'lots' is not a size" in bad and "1GB" in bad
    assert "must be more than zero" in _spec_error(_text(sync="    sync: { max_lag: 0MB }\n"))
    assert "max_retained_wal" in _spec_error(_text(sync="    sync: { max_retained_wal: 1 GiB }\n"))
    wrong = _spec_error(_text(sync="    sync: { max_lag: 1MB }\n", strategy="copy"))
    assert "services.shop.sync applies to strategy: online only" in wrong


def test_plan_says_which_mechanism_carries_the_changes_and_why(
    source_db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=10)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(_text(source_db.dsn, "postgresql://127.0.0.1:1/x"))
    sync = cli("plan", "shop", "-f", str(spec), "--output", "json").json()["services"][0]["sync"]
    assert sync["mechanism"].startswith("logical decoding (pgoutput), decoded and applied")
    assert "START_REPLICATION" in sync["mechanism"] and "restart point" in sync["why"]
    assert sync["native_possible"] is False and "not applicable" in sync["native"]
    assert sync["monolith"] == "wal_level = logical" and sync["warnings"] == []
    spec.write_text(_text(source_db.dsn, "postgresql://127.0.0.1:1/x", schema="public"))
    same = cli("plan", "shop", "-f", str(spec), "--output", "json").json()["services"][0]["sync"]
    assert same["native_possible"] is True and same["native"].startswith("possible here")
    source_db.execute("ALTER TABLE public.items REPLICA IDENTITY NOTHING")
    text = cli("plan", "shop", "-f", str(spec)).stdout
    assert "refusing to start sync" in text and "REPLICA IDENTITY NOTHING" in text
    spec.write_text(_text(source_db.dsn, strategy="copy"))
    copy = cli("plan", "shop", "-f", str(spec), "--output", "json").json()["services"][0]["sync"]
    assert copy["mechanism"] == "none (strategy: copy)"


def test_status_warns_when_the_slot_retains_more_wal_than_allowed(
    source_db, target_db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=100)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        _text(source_db.dsn, target_db.dsn, sync="    sync: { max_retained_wal: 64kB }\n")
    )
    try:
        assert cli("copy", "shop", "-f", str(spec)).code == 0
        quiet = cli("status", "-f", str(spec), "--output", "json").json()["services"][0]
        assert quiet["sync"]["slot_exists"] and quiet["warnings"] == []
        source_db.execute(
            "INSERT INTO public.orders (customer, note) "
            "SELECT 'c', repeat('x', 200) FROM generate_series(1, 3000)"
        )
        row = cli("status", "-f", str(spec), "--output", "json").json()["services"][0]
        (warning,) = row["warnings"]
        assert "slot strangler_shop retains" in warning and "max_retained_wal (65,536)" in warning
        text = cli("status", "-f", str(spec))
        assert "warning:" in text.stderr and "strangler sync shop" in text.stderr
        status = cli("sync", "shop", "-f", str(spec), "--status", "--output", "json").json()
        (again,) = status["warnings"]
        assert again.startswith("slot strangler_shop retains") and "(65,536)" in again
        # Applying lets the slot advance; the warning goes away once the slot may also move
        # its restart point (at the next running-transactions record; one is logged here
        # instead of waiting for the server's own, every 15 s).
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        source_db.execute("SELECT pg_log_standby_snapshot()")
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        assert (
            cli("sync", "shop", "-f", str(spec), "--status", "--output", "json").json()["warnings"]
            == []
        )
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop", "--yes")


def test_traffic_needs_a_reverse_sync_that_exists_and_keeps_up(
    source_db, target_db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=100)
    path = tmp_path / "strangler.yaml"
    path.write_text(_text(source_db.dsn, target_db.dsn, sync="    sync: { max_lag: 64kB }\n"))
    for command in (("copy",), ("sync", "--until-caught-up"), ("verify",), ("cutover",)):
        done = cli(command[0], "shop", "-f", str(path), *command[1:])
        assert done.code == 0, (command, done.stderr)
    spec = load_spec(path)
    journal = Journal(spec.state_url(), operator="test", command="test")
    try:
        # The application now writes to the service; nothing applies it to the monolith yet.
        target_db.execute(
            "INSERT INTO svc.orders (customer, note) "
            "SELECT 'c', repeat('x', 200) FROM generate_series(1, 3000)"
        )
        behind = Runbook(spec, journal, "shop")
        with pytest.raises(CheckFailed, match=r"reverse sync is [\d,]+ bytes of WAL behind"):
            behind.step(Action.SHIFT_TRAFFIC, weight=5).__enter__()
        assert cli("sync", "shop", "-f", str(path), "--until-caught-up").code == 0
        rb = Runbook(spec, journal, "shop")
        with rb.step(Action.SHIFT_TRAFFIC, weight=5):
            pass
        assert rb.phase is Phase.TRAFFIC
        # Stopping it at 5 % gives up the way back: refused unless forced (issue 13).
        assert cli("sync", "shop", "-f", str(path), "--stop", "--yes").code == 1
        stop = ("--stop", "--yes", "--force", "--reason", "test: the way back goes")
        assert cli("sync", "shop", "-f", str(path), *stop).code == 0
        gone = Runbook(spec, journal, "shop")
        with pytest.raises(CheckFailed, match="reverse sync slot 'strangler_shop_rev' does not"):
            gone.step(Action.SHIFT_TRAFFIC, weight=20).__enter__()
    finally:
        journal.close()
        cli("sync", "shop", "-f", str(path), "--stop", "--yes", "--force", "--reason", "cleanup")


def test_a_slot_the_server_invalidated_is_refused_with_the_way_back(
    pg_root: Path, target_db, tmp_path: Path, cli
) -> None:
    """``max_slot_wal_keep_size`` exceeded while sync was stopped: the slot still exists but
    nothing can be read from it. Status says so, sync (and ``cdc.run``, which verify, cutover
    and decommission drain through) refuses naming the cause and the way back, and that way
    (rollback --schema, copy again) ends with the service level with the monolith. Before
    issue 15 the lost slot passed for a healthy one. Its own server: the limit is server-wide."""
    inst = PgInstance.create(pg_root / "slot-lost").start()
    spec = tmp_path / "strangler.yaml"
    try:
        inst.create_database("shop")
        source = Db(inst, "shop")
        make_shop(source, None, rows=50)
        spec.write_text(_text(source.dsn, target_db.dsn))
        assert cli("copy", "shop", "-f", str(spec)).code == 0
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        assert cli("verify", "shop", "-f", str(spec)).code == 0
        source.execute("UPDATE public.orders SET note = 'changed while sync was stopped'")
        invalidate(inst, "shop", "strangler_shop")
        # A cutover is refused by its evidence, naming the cause, before any gate closes
        # (the campaign saw it fail halfway with PostgreSQL's bare error).
        cut = cli("cutover", "shop", "-f", str(spec))
        assert cut.code == 1 and "was invalidated" in cut.stderr
        assert "strangler rollback shop --schema" in cut.stderr
        source.execute("UPDATE public.orders SET note = 'the monolith still takes writes'")
        status = cli("sync", "shop", "-f", str(spec), "--status", "--output", "json").json()
        assert status["slot_exists"] and status["slot_lost"]
        assert any("was invalidated" in w for w in status["warnings"])
        refused = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
        assert refused.code == 1
        assert "invalidated" in refused.stderr and "max_slot_wal_keep_size" in refused.stderr
        assert "strangler rollback shop --schema" in refused.stderr
        with pytest.raises(SlotGone, match="was invalidated"):
            cdc.run(sync_route(load_spec(spec), "shop"), until_caught_up=True)
        # The way back the hint names.
        back = ("rollback", "shop", "--schema", "-f", str(spec), "--reason", "t", "--yes")
        assert cli(*back).code == 0
        assert cli("copy", "shop", "-f", str(spec)).code == 0
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        digest = "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM {}.orders o"
        assert source.execute(digest.format("public")) == target_db.execute(digest.format("svc"))
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop", "--yes")
        inst.destroy()


def test_lag_counts_only_the_moved_tables_changes_not_the_monoliths_other_wal(
    source_db, target_db
) -> None:
    """A running sync moves its position over WAL that holds nothing of the moved tables
    (the walsender's keepalives say how far it decoded), so a monolith busy elsewhere shows
    no lag; marks, which would also move it, are switched off here (issue 12)."""
    import threading
    import time

    from strangler.pg.sync import cdc
    from tests.cdc_world import copier, route

    make_shop(source_db, target_db, rows=50)
    source_db.execute("CREATE TABLE public.noise (id bigserial PRIMARY KEY, v text)")
    r = route(source_db, target_db)
    cdc.begin(r, copy=copier(r))
    stop = threading.Event()
    worker = threading.Thread(
        target=cdc.run, kwargs={"route": r, "stop": stop, "mark_every": 3600.0}, daemon=True
    )
    worker.start()
    try:
        before = source_db.execute("SELECT pg_current_wal_insert_lsn()")[0][0]
        source_db.execute(
            "INSERT INTO public.noise (v) SELECT repeat('n', 100) FROM generate_series(1, 100000)"
        )
        noise = source_db.execute("SELECT pg_current_wal_insert_lsn() - %s", (before,))[0][0]
        assert noise > 8 << 20  # far more than the lag allowed below
        source_db.execute("INSERT INTO public.orders (customer) VALUES ('moved table')")
        deadline = time.monotonic() + 60
        while cdc.status(r).lag_bytes > 1 << 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cdc.status(r).lag_bytes <= 1 << 20
        assert target_db.execute("SELECT count(*) FROM svc.orders WHERE customer = 'moved table'")
    finally:
        stop.set()
        worker.join()
        cdc.end(r)
