"""Security of what strangler creates (issue 15), on real PostgreSQL.

- The service role reads and writes its own schema and nothing else: every table, view,
  sequence and function of the monolith is tried, and strangler's own machinery (the sync
  position, the write gate) is out of its reach too.
- The write gate cannot be bypassed by the monolith's application role: every way of writing
  (INSERT, UPDATE, DELETE, TRUNCATE, COPY, MERGE, ON CONFLICT, through a view, a function,
  a foreign key's cascade) is refused, and so is every way of switching the gate off.
- The endpoints strangler serves bind to loopback unless told otherwise.
- A journal on PostgreSQL is not writable by the service role.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from strangler.demo.monolith import build_monolith
from tests.fix_pg import Db
from tests.fix_spec import CliResult

Cli = Callable[..., CliResult]

PASSWORD = "svc-pw-" + uuid.uuid4().hex[:10]

SPEC = """\
version: 1
state: {state}
source: {{ dsn: "{source}", schema: public }}
services:
  order_service:
    tables: [orders, order_items, order_status_history]
    target:
      {target}schema: order_service
      role: {{ name: {role}, password: "${{SVC_PASSWORD}}" }}
    strategy: {strategy}
"""

# Monolith code the service role must not be able to use to reach the monolith's data.
MONOLITH_CODE = """
CREATE FUNCTION public.order_count() RETURNS bigint LANGUAGE sql AS
    'SELECT count(*) FROM public.orders';
CREATE FUNCTION public.rename_customer(i bigint, n text) RETURNS void LANGUAGE plpgsql AS
    $$ BEGIN UPDATE public.customers SET full_name = n WHERE id = i; END $$;
CREATE FUNCTION public.touch_orders() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE VIEW public.open_orders AS SELECT id, status FROM public.orders WHERE status = 'pending';
CREATE MATERIALIZED VIEW public.order_totals AS
    SELECT status, count(*) FROM public.orders GROUP BY 1;
"""

DENIED = (psycopg.errors.InsufficientPrivilege,)


def _world(
    tmp_path: Path, source: Db, target: Db | None, *, strategy: str = "copy", state: str = ""
) -> tuple[Path, str]:
    role = "svc_" + uuid.uuid4().hex[:8]
    with source.connect() as conn:
        build_monolith(conn, orders=50)
        conn.execute(MONOLITH_CODE)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        SPEC.format(
            state=state or "sqlite:///state.db",
            source=source.dsn,
            target=f'dsn: "{target.dsn}"\n      ' if target else "",
            role=role,
            strategy=strategy,
        )
    )
    return spec, role


def _as_role(db: Db, role: str) -> psycopg.Connection[Any]:
    dsn = db.instance.dsn(db.name, user=role, password=PASSWORD)
    return psycopg.connect(dsn, autocommit=True)


def _denied(conn: psycopg.Connection[Any], statement: sql.Composable | str) -> bool:
    """Whether ``statement`` is refused for lack of privilege (run in a rolled-back txn)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except DENIED:
        return True
    return False


def _relations(db: Db, schema: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = %s::regnamespace "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY 1",
            (schema,),
        )
    ]


def _functions(db: Db, schema: str) -> list[tuple[str, str, bool]]:
    """(name, identity arguments, is a trigger function)."""
    return [
        (r[0], r[1], r[2])
        for r in db.execute(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid), "
            "p.prorettype = 'trigger'::regtype FROM pg_proc p "
            "WHERE p.pronamespace = %s::regnamespace AND p.prokind = 'f' ORDER BY 1",
            (schema,),
        )
    ]


def test_the_service_role_reaches_its_own_schema_and_nothing_of_the_monolith(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    spec, role = _world(tmp_path, source_db, None)  # same instance: the monolith is right there
    done = cli("copy", "order_service", "-f", str(spec), env={"SVC_PASSWORD": PASSWORD})
    assert done.code == 0, done.stderr
    relations = _relations(source_db, "public")
    functions = _functions(source_db, "public")
    assert len(relations) >= 12 and len(functions) >= 3  # the test sees the whole monolith
    with _as_role(source_db, role) as conn:
        refused = []
        for name, kind in relations:
            rel = sql.Identifier("public", name)
            tries: list[sql.Composable] = [sql.SQL("SELECT * FROM {} LIMIT 1").format(rel)]
            if kind in ("r", "p"):
                tries += [
                    sql.SQL("DELETE FROM {}").format(rel),
                    sql.SQL("UPDATE {} SET id = id").format(rel),
                    sql.SQL("TRUNCATE {}").format(rel),
                    sql.SQL("INSERT INTO {} DEFAULT VALUES").format(rel),
                ]
            if kind == "S":
                tries = [sql.SQL("SELECT nextval({})").format(sql.Literal(f"public.{name}"))]
            if kind == "m":
                tries.append(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(rel))
            refused += [(name, t.as_string(conn)) for t in tries if not _denied(conn, t)]
        for name, args, trigger in functions:
            if trigger:
                continue  # a trigger function cannot be called directly by anyone
            call = sql.SQL("SELECT {}({})").format(
                sql.Identifier("public", name),
                sql.SQL(", ").join(
                    sql.Literal(1 if "bigint" in a else "x") for a in args.split(", ") if a
                ),
            )
            if not _denied(conn, call):
                refused.append((name, call.as_string(conn)))
        assert not _denied(conn, "CREATE TEMP TABLE scratch (x int)"), "its own session works"
        assert _denied(conn, "CREATE TABLE public.intruder (x int)")
        assert refused == [], f"the service role could use the monolith: {refused}"
        # Its own tables, fully.
        for table in ("orders", "order_items", "order_status_history"):
            rel = sql.Identifier("order_service", table)
            for stmt in (
                sql.SQL("SELECT * FROM {} LIMIT 1"),
                sql.SQL("UPDATE {} SET id = id"),
                sql.SQL("DELETE FROM {}"),
            ):
                assert not _denied(conn, stmt.format(rel)), stmt.format(rel).as_string(conn)
        assert _denied(conn, sql.SQL("TRUNCATE order_service.orders CASCADE")), "no TRUNCATE"


def test_the_service_role_cannot_touch_strangers_machinery(
    cli: Cli, source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """The sync position and the write gate live beside the service's tables; the service's
    own role must not be able to move the position or open the gate."""
    spec, role = _world(tmp_path, source_db, target_db, strategy="online")
    env = {"SVC_PASSWORD": PASSWORD}
    assert cli("copy", "order_service", "-f", str(spec), env=env).code == 0
    try:
        with _as_role(target_db, role) as conn:
            for stmt in (
                "UPDATE _strangler.sync_position SET lsn = '0/0'",
                "DELETE FROM _strangler.sync_position",
                "INSERT INTO _strangler.sync_position (slot, lsn) VALUES ('x', '0/0')",
                "CREATE OR REPLACE FUNCTION _strangler.writes_order_service_service() "
                "RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
                "DROP TRIGGER strangler_write_gate ON order_service.orders",
                "ALTER TABLE order_service.orders DISABLE TRIGGER ALL",
                "SET session_replication_role = replica",
            ):
                assert _denied(conn, stmt), stmt
            # And the gate holds against it until the cutover.
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM order_service.orders")
    finally:
        assert cli("sync", "order_service", "--stop", "--yes", "-f", str(spec), env=env).code == 0


BYPASSES = [
    ("insert", "INSERT INTO public.orders (customer_id, total) VALUES (1, 1)"),
    ("update", "UPDATE public.orders SET total = total + 1"),
    ("delete", "DELETE FROM public.order_status_history"),
    ("truncate", "TRUNCATE public.order_status_history"),
    ("copy", "COPY public.order_status_history (order_id, status, changed_at) FROM STDIN"),
    ("on conflict", "INSERT INTO public.orders (id, customer_id, total) VALUES (1, 1, 1) "
     "ON CONFLICT (id) DO UPDATE SET total = 2"),
    ("merge", "MERGE INTO public.orders o USING (SELECT 1 AS id) s ON o.id = s.id "
     "WHEN MATCHED THEN UPDATE SET total = 3"),
    ("view", "UPDATE public.pending_orders SET status = 'paid'"),
    ("function", "SELECT public.cancel_all()"),
    ("cascade", "DELETE FROM public.promos"),
]  # fmt: skip

SWITCH_OFFS = [
    "SET session_replication_role = replica",
    "ALTER TABLE public.orders DISABLE TRIGGER strangler_write_gate",
    "DROP TRIGGER strangler_write_gate ON public.orders",
    "CREATE OR REPLACE FUNCTION _strangler.writes_order_service_monolith() RETURNS trigger "
    "LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
]

APP_SETUP = """
CREATE TABLE public.promos (id int PRIMARY KEY);
INSERT INTO public.promos VALUES (1);
ALTER TABLE public.order_items ADD COLUMN promo_id int REFERENCES public.promos ON DELETE CASCADE;
UPDATE public.order_items SET promo_id = 1 WHERE id % 5 = 0;
CREATE VIEW public.pending_orders AS SELECT id, status FROM public.orders WHERE status = 'pending';
CREATE FUNCTION public.cancel_all() RETURNS void LANGUAGE sql SECURITY DEFINER AS
    'UPDATE public.orders SET status = ''cancelled''';
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {app};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app};
"""


@pytest.mark.parametrize("instances", ["two", "same"])
def test_the_write_gate_cannot_be_bypassed_by_the_monoliths_role(
    cli: Cli, source_db: Db, target_db: Db, tmp_path: Path, instances: str
) -> None:
    target = target_db if instances == "two" else None
    spec, _ = _world(tmp_path, source_db, target, strategy="online")
    app = "app_" + uuid.uuid4().hex[:8]
    source_db.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        .format(sql.Identifier(app), sql.Literal(PASSWORD))
        .as_string(None)
    )
    source_db.execute(APP_SETUP.format(app=app))
    env = {"SVC_PASSWORD": PASSWORD}
    done = cli("run", "order_service", "--until", "writes_cut_over", "-f", str(spec), env=env)
    assert done.code == 0, done.stdout + done.stderr
    try:
        with _as_role(source_db, app) as conn:
            got = {}
            for name, stmt in BYPASSES:
                try:
                    with conn.transaction(force_rollback=True):
                        if name == "copy":
                            with conn.cursor().copy(stmt) as copy:
                                copy.write_row((1, "paid", "2024-01-01"))
                        else:
                            conn.execute(stmt)
                    got[name] = "went through"
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    got[name] = "refused" if "cut over" in str(exc) else str(exc)
                except psycopg.Error as exc:
                    got[name] = f"{type(exc).__name__}: {exc}"
            assert got == {name: "refused" for name, _ in BYPASSES}
            for stmt in SWITCH_OFFS:
                assert _denied(conn, stmt), stmt
    finally:
        cli(
            "rollback",
            "order_service",
            "--writes",
            "--reason",
            "test",
            "--yes",
            "-f",
            str(spec),
            env=env,
        )
        cli("sync", "order_service", "--stop", "--yes", "-f", str(spec), env=env)


def test_the_endpoints_strangler_serves_bind_to_loopback() -> None:
    from strangler.metrics_export import serve
    from strangler.traffic.proxy import LocalProxy

    with serve(0) as metrics:
        assert metrics.port
        _only_loopback(metrics.port)
    proxy = LocalProxy("http://127.0.0.1:9", "http://127.0.0.1:9", "/x*").start()
    try:
        _only_loopback(proxy.port)
    finally:
        proxy.stop()


def _only_loopback(port: int) -> None:
    """Something listens on 127.0.0.1:port and nothing on another address of this host."""
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    others = {
        info[4][0]
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        if not info[4][0].startswith("127.")
    }
    for address in others:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
            pass


def test_the_rehearsal_proxy_refuses_to_listen_beyond_loopback(cli: Cli) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "strangler.traffic.proxy", "--listen", "0.0.0.0:0",
         "--monolith", "http://127.0.0.1:9", "--service", "http://127.0.0.1:9", "--route", "/x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "127.0.0.1 only" in done.stderr


def test_a_postgres_journal_is_not_writable_by_the_service_role(
    cli: Cli, source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    # The journal shares the service's database: the place a team would put it.
    spec, role = _world(tmp_path, source_db, target_db, state=target_db.dsn)
    done = cli("copy", "order_service", "-f", str(spec), env={"SVC_PASSWORD": PASSWORD})
    assert done.code == 0, done.stderr
    tables = [r[0] for r in target_db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'strangler'::regnamespace "
        "AND relkind = 'r' ORDER BY 1"
    )]  # fmt: skip
    assert "strangler_entries" in tables and "strangler_services" in tables
    with _as_role(target_db, role) as conn:
        for table in tables:
            rel = sql.Identifier("strangler", table)
            for stmt in (
                sql.SQL("DELETE FROM {}").format(rel),
                sql.SQL("UPDATE {} SET service = service").format(rel),
                sql.SQL("TRUNCATE {}").format(rel),
            ):
                assert _denied(conn, stmt), stmt.as_string(conn)
        assert _denied(conn, "CREATE TABLE strangler.intruder (x int)")
        assert _denied(
            conn,
            "INSERT INTO strangler.strangler_services (service, phase, updated_at) "
            "VALUES ('x', 'decommissioned', 'now')",
        )
