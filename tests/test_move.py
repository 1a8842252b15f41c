"""``strategy: move`` against a real PostgreSQL: the plan says what moves and what the
monolith will see, the move is one locked transaction that gives way to the monolith's
transactions, the monolith's own queries keep working through the views, verification
compares view and table, and the rollback puts the catalogs back exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.pg.connect import connect
from strangler.pg.schema.move_sql import move_statements, run_in_lock
from strangler.spec import load_spec
from strangler.steps.move import read_plan
from strangler.steps.records import MoveRecord
from strangler.steps.rollback_schema import rollback_schema
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook
from tests.crash_points import commit_fails, outcome_of
from tests.fix_pg import Db
from tests.fix_spec import CliResult
from tests.move_world import MoveWorld, build, catalog_state, move_world

Cli = Callable[..., CliResult]

__all__ = ["move_world"]  # the fixture, imported for the tests below


def test_plan_shows_what_moves_and_what_the_monolith_will_see(
    cli: Cli, move_world: MoveWorld
) -> None:
    done = cli("plan", "order_service", "-f", str(move_world.spec), "-o", "json")
    assert done.code == 0, done.stderr
    (svc,) = done.json()["services"]
    assert [s["action"] for s in svc["steps"]][:3] == ["move", "verify", "shift_traffic"]
    move = svc["move"]
    assert move["error"] is None and not move["moved"]
    plan = move["plan"]
    moves = {m["table"]: m for m in plan["moves"]}
    orders = moves["public.orders → order_service.orders"]
    assert orders["monolith_sees"] == "view public.orders (auto-updatable, owner's rights)"
    assert f"{move_world.app}: UPDATE" in orders["grants"]
    assert plan["sequences_kept"] == ["public.orders_id_seq (serial of orders.id)"]
    assert plan["sequences_moved"] == ["order_service.order_items_id_seq (identity)"]
    assert plan["types_staying"] == ["public.order_status"]
    refs = {(r["kind"], r["from"]): r for r in plan["references"]}
    assert "follows the table" in refs[("view", "public.order_totals")]["breaks"]
    fk_in = next(r for (k, _), r in refs.items() if k == "foreign key in")
    assert fk_in["from"].startswith("public.invoices(order_id)")
    assert "resolves to the compatibility views" in refs[("function", "public.pay()")]["breaks"]
    warnings = " ".join(plan["warnings"])
    assert "ON CONFLICT ON CONSTRAINT" in warnings and "orders_code_key" in warnings
    assert "system columns (xmin, ctid)" in warnings
    text = cli("plan", "order_service", "-f", str(move_world.spec))
    assert "public.orders → order_service.orders" in text.stdout
    assert "none (strategy: move)" in text.stdout
    # The plan changed nothing.
    assert move_world.db.execute("SELECT to_regnamespace('order_service')") == [(None,)]


def test_plan_says_why_a_move_cannot_be_done(
    cli: Cli, move_world: MoveWorld, source_db: Db
) -> None:
    source_db.execute("CREATE SCHEMA order_service")
    done = cli("plan", "order_service", "-f", str(move_world.spec), "-o", "json")
    assert done.code == 0, done.stderr
    error = done.json()["services"][0]["move"]["error"]
    assert "already has a schema 'order_service' (empty)" in error
    moved = cli("move", "order_service", "-f", str(move_world.spec))
    assert moved.code == 2 and "already has a schema 'order_service'" in moved.stderr
    assert source_db.execute("SELECT to_regclass('public.orders')::text") == [("orders",)]


def test_dry_run_prints_every_statement_and_changes_nothing(
    cli: Cli, move_world: MoveWorld
) -> None:
    before = catalog_state(move_world.db)
    done = cli("move", "order_service", "--dry-run", "-f", str(move_world.spec))
    assert done.code == 0, done.stderr
    out = done.stdout
    assert 'ALTER TABLE "public"."orders" SET SCHEMA "order_service";' in out
    assert (
        'CREATE VIEW "public"."orders" AS SELECT "id", "customer_id", "code", "status", '
        '"total", "secret" FROM "order_service"."orders";'
    ) in out
    assert (
        'GRANT SELECT ("id", "customer_id", "code", "status", "total") ON "public"."orders" '
        f'TO "{move_world.app}";'
    ) in out
    assert 'ALTER SEQUENCE "public"."orders_id_seq" OWNED BY NONE;' in out
    assert "PASSWORD '***'" in out and "svc-" not in out
    assert catalog_state(move_world.db) == before


def _moved(cli: Cli, world: MoveWorld, *args: str) -> CliResult:
    done = cli("move", "order_service", "-f", str(world.spec), "-o", "json", *args)
    assert done.code == 0, done.stderr
    return done


def test_the_monolith_s_own_queries_work_through_the_views(cli: Cli, move_world: MoveWorld) -> None:
    world = move_world
    moved = _moved(cli, world).json()
    assert moved["move"]["attempts"] == 1 and moved["move"]["locked_ms"] < 60_000
    with world.as_app() as app:
        # inserts with RETURNING: the serial default draws from the kept sequence
        (oid, code) = app.execute(
            "INSERT INTO orders (customer_id, code) VALUES (1, 'n1') RETURNING id, code"
        ).fetchone()  # type: ignore[misc]
        assert (oid, code) == (201, "n1")
        # sequence use by name, as an ORM does
        assert app.execute("SELECT currval('orders_id_seq')").fetchone() == (201,)
        assert app.execute("SELECT nextval('orders_id_seq')").fetchone() == (202,)
        # an identity column through the view
        (item,) = app.execute(
            "INSERT INTO order_items (order_id, sku, qty) VALUES (%s, 'x', 2) RETURNING id",
            (oid,),
        ).fetchone()  # type: ignore[misc]
        assert item == 501
        # upserts on the columns
        up = app.execute(
            "INSERT INTO orders (customer_id, code, total) VALUES (1, 'n1', 5) "
            "ON CONFLICT (code) DO UPDATE SET total = orders.total + excluded.total "
            "RETURNING id, total"
        ).fetchone()
        assert up is not None and up[0] == oid and float(up[1]) == 5.0
        none = app.execute(
            "INSERT INTO orders (customer_id, code) VALUES (1, 'n1') ON CONFLICT (code) DO "
            "NOTHING RETURNING id"
        ).fetchall()
        assert none == []
        # updates and the monolith's enum, which stayed in public
        assert app.execute(
            "UPDATE orders SET status = 'shipped'::order_status WHERE code = 'n1' RETURNING status"
        ).fetchone() == ("shipped",)
        # a function of the monolith naming the table
        assert app.execute("SELECT pay('o7')").fetchone() == (1,)
        # the column grants came along: the secret stays secret
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT secret FROM orders LIMIT 1")
        # and the service's schema is not the monolith role's to read directly
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT 1 FROM order_service.orders LIMIT 1")
        # foreign keys: out of the moved table, and into it from a table that stays
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            app.execute("INSERT INTO orders (customer_id, code) VALUES (99, 'bad')")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            app.execute("INSERT INTO invoices (order_id) VALUES (999999)")
        app.execute("INSERT INTO invoices (order_id) VALUES (%s)", (oid,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            app.execute("DELETE FROM orders WHERE id = %s", (oid,))
        app.execute("DELETE FROM invoices WHERE order_id = %s", (oid,))
        # deletes, cascading to the items through the moved foreign key
        assert app.execute("DELETE FROM orders WHERE code = 'n1' RETURNING id").fetchall() == [
            (oid,)
        ]
        assert app.execute(
            "SELECT count(*) FROM order_items WHERE order_id = %s", (oid,)
        ).fetchone() == (0,)
        # the monolith's view followed the table
        totals = app.execute("SELECT sum(total) FROM order_totals").fetchone()
        assert totals is not None and float(totals[0]) == sum(g * 1.5 for g in range(1, 201))
    with world.as_service() as svc:
        # the service works in its own schema (its search_path), with the kept sequence
        (sid,) = svc.execute(
            "INSERT INTO orders (customer_id, code) VALUES (2, 's1') RETURNING id"
        ).fetchone()  # type: ignore[misc]
        assert sid > 202  # the same sequence (upserts and the failed insert drew from it too)
        assert svc.execute("SELECT count(*) FROM order_items").fetchone() == (500,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            svc.execute("SELECT 1 FROM public.customers")


def test_verify_compares_each_view_with_its_table(cli: Cli, move_world: MoveWorld) -> None:
    world = move_world
    _moved(cli, world)
    done = cli("verify", "order_service", "-f", str(world.spec), "-o", "json")
    assert done.code == 0, done.stdout + done.stderr
    report = done.json()
    sides = {(t["source"], t["target"]) for t in report["tables"]}
    assert sides == {
        ("order_service.orders", "public.orders"),
        ("order_service.order_items", "public.order_items"),
    }
    assert all(t["source_rows"] == t["target_rows"] for t in report["tables"])
    # A view that does not show the table as it is fails verification.
    world.db.execute(
        "CREATE OR REPLACE VIEW public.order_items AS SELECT id, order_id, sku, "
        "CASE WHEN id = 7 THEN qty + 1 ELSE qty END AS qty FROM order_service.order_items"
    )
    bad = cli("verify", "order_service", "-f", str(world.spec), "-o", "json")
    assert bad.code == 1, bad.stdout + bad.stderr
    (items,) = [t for t in bad.json()["tables"] if t["source"].endswith("order_items")]
    assert items["rows"] == [{"kind": "changed", "key": {"id": "7"}, "columns": ["qty"]}]


def test_rollback_moves_the_tables_back_and_the_catalogs_are_as_before(
    cli: Cli, move_world: MoveWorld
) -> None:
    world = move_world
    before = catalog_state(world.db)
    _moved(cli, world)
    during = catalog_state(world.db)
    assert during != before
    assert ("order_service",) in during["schemas"]
    refused = cli("rollback", "order_service", "--schema", "-f", str(world.spec))
    assert refused.code == 2 and "--reason" in refused.stderr
    dry = cli(
        "rollback", "order_service", "--schema", "--reason", "t", "--dry-run", "-f",
        str(world.spec),
    )  # fmt: skip
    assert dry.code == 0, dry.stderr
    assert 'ALTER TABLE "order_service"."orders" SET SCHEMA "public";' in dry.stdout
    assert catalog_state(world.db) == during
    # Without a terminal it asks for --yes, saying what a move's rollback does.
    asked = cli(
        "rollback", "order_service", "--schema", "--reason", "rehearsal", "-f", str(world.spec)
    )
    assert asked.code == 2 and "pass --yes" in asked.stderr
    assert "move the tables of order_service back" in asked.stderr
    assert catalog_state(world.db) == during
    done = cli(
        "rollback", "order_service", "--schema", "--reason", "rehearsal", "--yes", "-f",
        str(world.spec),
    )  # fmt: skip
    assert done.code == 0, done.stderr
    after = catalog_state(world.db)
    for key in before:
        assert sorted(set(after[key]) ^ set(before[key]), key=str) == [], key
    assert world.db.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (world.role,)) == [
        (0,)
    ]
    status = cli("status", "-f", str(world.spec), "-o", "json").json()
    assert status["services"][0]["phase"] == "planned"
    # and it moves again, as if nothing had happened
    _moved(cli, world)


def test_a_move_back_whose_outcome_was_lost_finishes_when_run_again(
    cli: Cli, move_world: MoveWorld
) -> None:
    """The journal's commit failed on the move back's outcome (a kill -9 there is the same):
    the tables were home and the schema gone, the journal still 'moved'. Before, the move's
    record had been cleared in a transaction of its own (the rerun refused: "no record of
    moving"); with the record kept, the rerun must not try to move tables that are home."""
    world = move_world
    before = catalog_state(world.db)
    _moved(cli, world)
    spec = load_spec(world.spec)
    with Journal(spec.state_url(), operator="t", command="rollback --schema") as journal:
        rb = Runbook(spec, journal, "order_service")
        moved_phase = rb.phase
        with commit_fails(journal, outcome_of("rollback_schema")) as fault:
            with pytest.raises(StranglerError, match="disk is full"):
                rollback_schema(rb, RollbackRequest("t", yes=True))
            assert fault.fired
        assert rb.phase is moved_phase
        assert rb.progress.load(MoveRecord) is not None, "cleared without the outcome"
    assert cli("resolve", "order_service", "-f", str(world.spec), "--reason", "disk").code == 0
    again = cli(
        "rollback", "order_service", "--schema", "--reason", "t", "--yes", "-f", str(world.spec)
    )
    assert again.code == 0, again.stderr
    after = catalog_state(world.db)
    for key in before:
        assert sorted(set(after[key]) ^ set(before[key]), key=str) == [], key
    status = cli("status", "-f", str(world.spec), "-o", "json").json()
    assert status["services"][0]["phase"] == "planned"


def _release_after_a_refused_attempt(world: MoveWorld, holder: psycopg.Connection[Any]) -> None:
    """End ``holder``'s transaction once the move has asked for its locks and given up."""
    deadline = time.monotonic() + 60
    with world.db.connect() as watch:
        while time.monotonic() < deadline:
            waiting = watch.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.01)
    time.sleep(0.4)  # past that attempt's lock_timeout
    holder.rollback()


def test_move_gives_way_to_open_transactions_then_names_them(
    cli: Cli, move_world: MoveWorld
) -> None:
    world = move_world
    before = catalog_state(world.db)
    holder = world.as_app()
    holder.autocommit = False
    holder.execute("SELECT count(*) FROM order_items")  # ACCESS SHARE, kept open
    try:
        # Meanwhile the monolith's other sessions are never held up for long: each attempt
        # gives its lock request up after the timeout.
        done = cli(
            "move", "order_service", "--lock-timeout", "0.2", "--attempts", "3", "-f",
            str(world.spec),
        )  # fmt: skip
        assert done.code == 1, done.stderr
        assert "could not lock the tables in 3 attempts of 0.2s (nothing changed)" in done.stderr
        assert world.app in done.stderr  # the session in the way, named
        assert catalog_state(world.db) == before
        # A transaction that ends while the move retries lets it through.
        release = threading.Thread(target=_release_after_a_refused_attempt, args=(world, holder))
        release.start()
        moved = _moved(cli, world, "--lock-timeout", "0.2", "--attempts", "50").json()
        release.join()
        assert moved["move"]["attempts"] > 1
    finally:
        holder.close()


def test_move_on_postgresql_15(cli: Cli, pg15_db: Db, tmp_path: Path) -> None:
    for world in build(pg15_db, tmp_path):
        _moved(cli, world)
        with world.as_app() as app:
            row = app.execute(
                "INSERT INTO orders (customer_id, code) VALUES (1, 'p15') "
                "ON CONFLICT (code) DO NOTHING RETURNING id"
            ).fetchone()
            assert row == (201,)
        done = cli(
            "rollback", "order_service", "--schema", "--reason", "t", "--yes", "-f",
            str(world.spec),
        )  # fmt: skip
        assert done.code == 0, done.stderr
        assert pg15_db.execute("SELECT to_regclass('public.orders')::text") == [("orders",)]


def test_row_level_security_still_sees_the_monolith_s_role(cli: Cli, move_world: MoveWorld) -> None:
    world = move_world
    world.db.execute(
        "ALTER TABLE public.order_items ENABLE ROW LEVEL SECURITY;"
        f"CREATE POLICY small ON public.order_items TO {world.app} USING (qty < 3) "
        "WITH CHECK (qty < 3)"
    )
    with world.as_app() as app:
        visible = app.execute("SELECT count(*) FROM order_items").fetchone()
    plan = cli("plan", "order_service", "-f", str(world.spec), "-o", "json").json()
    moves = {m["table"]: m for m in plan["services"][0]["move"]["plan"]["moves"]}
    assert moves["public.order_items → order_service.order_items"]["monolith_sees"] == (
        "view public.order_items (auto-updatable, security_invoker, for row-level security)"
    )
    _moved(cli, world)
    with world.as_app() as app:
        assert app.execute("SELECT count(*) FROM order_items").fetchone() == visible
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("INSERT INTO order_items (order_id, sku, qty) VALUES (1, 'big', 5)")
        app.execute("INSERT INTO order_items (order_id, sku, qty) VALUES (1, 'ok', 1)")


def test_row_level_security_with_column_grants_is_refused_before_anything_moves(
    cli: Cli, move_world: MoveWorld
) -> None:
    world = move_world
    world.db.execute("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY")
    before = catalog_state(world.db)
    plan = cli("plan", "order_service", "-f", str(world.spec), "-o", "json").json()
    error = plan["services"][0]["move"]["error"]
    assert "orders use both row-level security and column grants" in error
    done = cli("move", "order_service", "-f", str(world.spec))
    assert done.code == 2 and "row-level security and column grants" in done.stderr
    assert catalog_state(world.db) == before


@pytest.mark.parametrize("committed", [True, False])
def test_a_move_killed_halfway_is_recorded_or_run_again_never_repeated(
    cli: Cli, move_world: MoveWorld, committed: bool
) -> None:
    world = move_world
    spec = load_spec(world.spec)
    with Journal(spec.state_url(), operator="t", command="strangler move") as journal:
        rb = Runbook(spec, journal, "order_service")
        with connect(spec.source.dsn) as conn:
            plan = read_plan(rb, conn)
            if committed:  # the transaction committed, then the process died
                before, locked = move_statements(plan, "postgres")
                run_in_lock(conn, before, locked)
        journal.intent("order_service", "move", details={"moved": plan.moved().to_json()})
    done = cli("move", "order_service", "-f", str(world.spec), "-o", "json")
    assert done.code == 0, done.stderr
    assert done.json().get("recovered", False) is committed
    assert "move" in done.json() or committed
    status = cli("status", "-f", str(world.spec), "-o", "json").json()
    assert status["services"][0]["phase"] == "copied"
    assert world.db.execute(
        "SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewname = 'orders'"
    ) == [(1,)]
    history = cli("history", "order_service", "-f", str(world.spec), "-o", "json").json()
    statuses = [e["status"] for e in history["entries"] if e["step"] == "move"]
    assert statuses.count("ok") == 1 and "crashed" in statuses


PARTITIONED = """
CREATE TABLE public.events (id bigint NOT NULL, at date NOT NULL, what text,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2025 PARTITION OF public.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO public.events SELECT g, date '2025-06-01' + g, 'e' || g FROM generate_series(1, 400) g;
"""


def test_a_partitioned_table_moves_with_its_partitions(cli: Cli, move_world: MoveWorld) -> None:
    world = move_world
    world.db.execute(PARTITIONED + f"GRANT SELECT, INSERT ON public.events TO {world.app}")
    world.spec.write_text(world.spec.read_text().replace("[orders, order_items]", "[events]"))
    _moved(cli, world)
    where = world.db.execute(
        "SELECT c.relname, n.nspname, c.relkind::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname LIKE 'events%' AND c.relkind IN "
        "('r', 'p', 'v') ORDER BY 2, 1"
    )
    assert where == [
        ("events", "order_service", "p"),
        ("events_2025", "order_service", "r"),
        ("events_2026", "order_service", "r"),
        ("events", "public", "v"),
        ("events_2025", "public", "v"),
        ("events_2026", "public", "v"),
    ]
    with world.as_app() as app:
        app.execute("INSERT INTO events VALUES (1000, '2026-03-01', 'through the view')")
        assert app.execute("SELECT count(*) FROM events").fetchone() == (401,)
    assert world.db.execute("SELECT count(*) FROM order_service.events_2026 WHERE id = 1000") == [
        (1,)
    ]
    done = cli("verify", "order_service", "-f", str(world.spec), "-o", "json")
    assert done.code == 0, done.stdout
    back = cli(
        "rollback", "order_service", "--schema", "--reason", "t", "--yes", "-f", str(world.spec)
    )
    assert back.code == 0, back.stderr
    assert world.db.execute(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'events%' AND relkind IN ('r', 'p') "
        "AND relnamespace = 'public'::regnamespace"
    ) == [(3,)]
