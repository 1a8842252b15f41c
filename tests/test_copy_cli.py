"""strangler copy / plan / rollback --schema through the real CLI: rights, errors, boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.pg.embedded import free_port
from strangler.pg.sync.gate import install_gate
from tests.extract_world import RICH_TABLES, build_rich, write_service_spec
from tests.fix_pg import Db


def _schemas(db: Db) -> list[str]:
    return [
        r[0] for r in db.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'order_service'")
    ]


def _spec_password(spec: Path) -> str:
    line = next(x for x in spec.read_text().splitlines() if "password" in x)
    return line.split('password: "')[1].split('"')[0]


def test_copy_then_the_role_has_least_privilege(source_db: Db, tmp_path: Path, cli: Any) -> None:
    build_rich(source_db.dsn, n=50)
    source_db.execute("ALTER TABLE audit_log REPLICA IDENTITY DEFAULT")
    spec, role = write_service_spec(tmp_path, source_db.dsn, None)
    done = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    # the table without a primary key copies, with a warning for online sync
    (warning,) = done.json()["warnings"]
    assert "'audit_log' has no primary key" in warning and "replica identity" in warning
    assert done.json()["tables"]["audit_log"]["target_rows"] == 30
    pw = _spec_password(spec)
    dsn = psycopg.conninfo.make_conninfo(source_db.dsn, user=role, password=pw)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # its own tables, unqualified (search_path), read and write
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (50,)
        conn.execute("INSERT INTO empty_one (v) VALUES (1)")
        for forbidden in (
            "SELECT * FROM public.customers",
            "SELECT * FROM public.orders",
            "TRUNCATE order_service.orders",
            "CREATE TABLE order_service.mine (x int)",
            "DROP TABLE order_service.audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_empty_tables_get_sequences_that_start_right(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=30)
    source_db.execute("SELECT setval('\"Order Items_id_seq\"', 5000)")
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    assert cli("copy", "order_service", "-f", str(spec)).code == 0
    with target_db.connect() as conn:
        conn.execute("SET search_path TO order_service")
        # the empty table's sequence was never used: it starts at its start value
        assert conn.execute("INSERT INTO empty_one (v) VALUES (1) RETURNING id").fetchone() == (1,)
        # identity past the copied maximum (START 100 INCREMENT 2, 30 rows: 100..158)
        row = conn.execute("INSERT INTO orders (total) VALUES (1) RETURNING id").fetchone()
        assert row == (160,)
        # past the monolith's sequence even where it ran ahead of the rows
        row = conn.execute('INSERT INTO "Order Items" (order_id) VALUES (100) RETURNING id')
        assert row.fetchone() == (5001,)


def test_dry_run_prints_the_sql_and_changes_nothing(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=10)
    only_here = "auditor_" + source_db.name  # roles the target server does not have
    cols_only = "clerk_" + source_db.name
    source_db.execute(f"CREATE ROLE {only_here}; GRANT SELECT ON orders TO {only_here}")
    source_db.execute(f"CREATE ROLE {cols_only}; GRANT SELECT (note) ON price_bands TO {cols_only}")
    target_db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') "
        "THEN CREATE ROLE reporting NOLOGIN; END IF; END $$"
    )
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    done = cli("copy", "order_service", "-f", str(spec), "--dry-run")
    for r in (only_here, cols_only):
        source_db.execute(f"DROP OWNED BY {r}; DROP ROLE {r}")
    assert done.code == 0, done.stderr
    assert f"-- warning: the target has no role {only_here}, {cols_only}" in done.stdout
    assert not [x for x in done.stdout.splitlines() if x.startswith("GRANT") and cols_only in x]
    # collations, range types (and their subtype_diff function), column grants
    for line in (
        'CREATE COLLATION "order_service"."c_sort" (provider = libc, '
        "lc_collate = 'C', lc_ctype = 'C');",
        'COMMENT ON COLLATION "order_service"."c_sort" IS \'byte order\';',
        'CREATE FUNCTION "order_service"."price_diff"(a numeric, b numeric) RETURNS double '
        'precision LANGUAGE "sql" IMMUTABLE STRICT PARALLEL SAFE RETURN ((a - b))::double '
        "precision;",
        'CREATE TYPE "order_service"."price_range" AS RANGE (subtype = numeric, subtype_diff = '
        '"order_service"."price_diff", multirange_type_name = "order_service"."price_multirange");',
        'CREATE TYPE "order_service"."code_range" AS RANGE (subtype = text, subtype_opclass = '
        "text_pattern_ops, collation = c_sort, multirange_type_name = "
        '"order_service"."code_bands");',
        'GRANT SELECT ("id", "label") ON "order_service"."price_bands" TO "reporting";',
        'GRANT INSERT ("note") ON "order_service"."price_bands" TO "reporting" WITH GRANT OPTION;',
        'GRANT UPDATE ("status", "name") ON "order_service"."orders" TO "reporting";',
    ):
        assert line in done.stdout.splitlines(), line
    assert 'CREATE SCHEMA "order_service";' in done.stdout
    assert f"CREATE ROLE \"{role}\" LOGIN PASSWORD '***';" in done.stdout
    assert "CREATE INDEX orders_open_idx ON orders USING btree (status)" in done.stdout
    assert _spec_password(spec) not in done.stdout
    assert _schemas(target_db) == []
    assert target_db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)) == []
    status = cli("status", "-f", str(spec), "--output", "json").json()
    assert status["services"][0]["phase"] == "planned"


def test_schema_only_then_copy(source_db: Db, target_db: Db, tmp_path: Path, cli: Any) -> None:
    build_rich(source_db.dsn, n=10)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    assert cli("copy", "order_service", "-f", str(spec), "--schema-only").code == 0
    assert target_db.execute("SELECT count(*) FROM order_service.orders") == [(0,)]
    twice = cli("copy", "order_service", "-f", str(spec), "--schema-only")
    assert twice.code == 1 and "'schema_ready'" in twice.stderr
    assert "strangler copy order_service" in twice.stderr
    status = cli("status", "-f", str(spec), "--output", "json").json()
    assert status["services"][0]["phase"] == "schema_ready"
    dry = cli("copy", "order_service", "-f", str(spec), "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "CREATE SCHEMA" not in dry.stdout
    assert 'ADD CONSTRAINT "orders_pkey" PRIMARY KEY USING INDEX "orders_pkey"' in dry.stdout
    assert "CREATE UNIQUE INDEX orders_pkey ON orders USING btree (id)" in dry.stdout
    done = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["tables"]["orders"]["target_rows"] == 10


def test_a_copy_made_again_leaves_stranglers_own_write_gate_behind(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    """Once writes are gated, the monolith's moved tables carry strangler's gate triggers,
    whose function lives in the monolith's ``_strangler`` schema. A copy made again then (the
    way back from a slot the server invalidated: rollback --schema, copy) took them for the
    monolith's own triggers and created them on the service's server, where that function
    does not exist: the copy failed after moving every row (issue 15's fault campaign)."""
    build_rich(source_db.dsn, n=10)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    gates = "SELECT count(*) FROM pg_trigger WHERE tgname = 'strangler_write_gate'"
    with source_db.connect() as conn:
        install_gate(conn, "order_service", "monolith", "public", RICH_TABLES, closed=False)
    installed = source_db.execute(gates)
    assert installed[0][0] >= len(RICH_TABLES)  # partitions too
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 0, done.stderr
    assert target_db.execute(gates) == [(0,)]
    assert source_db.execute(gates) == installed  # the monolith's stay


# ------------------------------------------------------------------------------- bad input


def _nothing_changed(target: Db, spec: Path, cli: Any) -> None:
    assert _schemas(target) == []
    status = cli("status", "-f", str(spec), "--output", "json").json()
    assert status["services"][0]["phase"] == "planned"


@pytest.mark.parametrize(
    "table", ["no_such_table", "orders; DROP TABLE customers", 'orders" CASCADE --', "ORDERS"]
)
def test_missing_or_hostile_table_is_bad_input(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any, table: str
) -> None:
    build_rich(source_db.dsn, n=5)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=["orders", table])
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 2, done.stderr
    assert "has no table" in done.stderr and repr(table) in done.stderr
    _nothing_changed(target_db, spec, cli)
    assert source_db.execute("SELECT count(*) FROM customers") == [(50,)]


def test_target_schema_holding_data_is_refused(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=5)
    target_db.execute("CREATE SCHEMA order_service; CREATE TABLE order_service.orders (x int)")
    target_db.execute("INSERT INTO order_service.orders VALUES (42)")
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 2
    assert "already has a schema 'order_service' holding orders" in done.stderr
    assert target_db.execute("SELECT x FROM order_service.orders") == [(42,)]


def test_unreachable_host_and_wrong_credentials(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=5)
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    spec, _ = write_service_spec(tmp_path, source_db.dsn, down)
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 3 and "could not be reached" in done.stderr
    wrong = psycopg.conninfo.make_conninfo(target_db.dsn, password="wrong-pass-9876")
    spec, _ = write_service_spec(tmp_path, source_db.dsn, wrong)
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 3 and "refused the credentials" in done.stderr
    assert "wrong-pass-9876" not in done.stderr + done.stdout
    _nothing_changed(target_db, spec, cli)


def test_a_default_calling_a_monolith_function_cannot_be_carried(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=5)
    source_db.execute(
        "CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'X' $$; "
        "ALTER TABLE orders ADD COLUMN code text DEFAULT next_code()"
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 2
    assert "cannot carry" in done.stderr and "public.next_code()" in done.stderr
    _nothing_changed(target_db, spec, cli)


# ------------------------------------------------------------------------ plan and rollback


def test_plan_shows_the_boundary_and_what_breaks(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=5)
    source_db.execute(
        "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN UPDATE orders SET total = total WHERE customer_id = NEW.id; RETURN NEW; END $$; "
        "CREATE TRIGGER customers_bump AFTER UPDATE ON customers "
        "FOR EACH ROW EXECUTE FUNCTION bump()"
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    done = cli("plan", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    section = done.json()["services"][0]["boundary"]
    found = {(r["kind"], r["from"], r["to"], r["action"]) for r in section["references"]}
    assert ("foreign key out", "orders(customer_id)", "public.customers(id)", "dropped") in found
    assert any(
        k == "foreign key in" and f.startswith("public.invoices(order_id)") for k, f, *_ in found
    )
    assert ("view", "public.order_names", "orders (moved)", "left alone") in found
    assert ("function", "public.bump()", "orders", "left alone") in found
    assert ("trigger", "public.customers [customers_bump]", "orders", "left alone") in found
    assert ("trigger function", "public.touch()", "orders", "carried") in found
    assert section["tables_without_primary_key"] == ["audit_log"]
    text = cli("plan", "order_service", "-f", str(spec))
    assert "boundary" in text.stdout and "public.invoices" in text.stdout
    assert "blocks dropping orders" in text.stdout


def test_plan_without_a_database_still_plans(tmp_path: Path, cli: Any) -> None:
    spec, _ = write_service_spec(tmp_path, f"postgresql://u@127.0.0.1:{free_port()}/m", None)
    done = cli("plan", "-f", str(spec), "--output", "json")
    assert done.code == 1  # terraform-like: an unreachable database is a finding (issue 14)
    assert "could not be reached" in done.json()["services"][0]["boundary"]["error"]
    assert done.json()["findings"][0]["where"] == "monolith"
    offline = cli("plan", "-f", str(spec), "--offline", "--output", "json")
    assert offline.code == 0 and offline.json()["findings"] == []


def test_rollback_schema_drops_only_while_unwritten(
    source_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=20)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, None)
    assert cli("copy", "order_service", "-f", str(spec)).code == 0
    source_db.execute("UPDATE order_service.audit_log SET line = 'changed' WHERE line = 'line 3'")
    refused = cli(
        "rollback", "order_service", "--schema", "--reason", "test", "--yes", "-f", str(spec)
    )
    assert refused.code == 1
    assert "audit_log has 1 row(s) written after the copy" in refused.stderr
    assert _schemas(source_db) == ["order_service"]
    source_db.execute("DELETE FROM order_service.empty_one")  # nothing there: still unwritten
    source_db.execute("DELETE FROM order_service.audit_log WHERE line = 'changed'")
    refused = cli(
        "rollback", "order_service", "--schema", "--reason", "test", "--yes", "-f", str(spec)
    )
    assert refused.code == 1 and "audit_log has 29 rows, the copy left 30" in refused.stderr


def test_rollback_schema_after_a_clean_copy(source_db: Db, tmp_path: Path, cli: Any) -> None:
    build_rich(source_db.dsn, n=20)
    spec, role = write_service_spec(tmp_path, source_db.dsn, None)
    assert cli("copy", "order_service", "-f", str(spec)).code == 0
    dry = cli("rollback", "order_service", "--schema", "--dry-run", "-f", str(spec), "-o", "json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["sql"] == ['DROP SCHEMA "order_service" CASCADE;', f'DROP ROLE "{role}";']
    assert _schemas(source_db) == ["order_service"]
    done = cli(
        "rollback", "order_service", "--schema", "--reason", "redo", "--yes", "-f", str(spec)
    )
    assert done.code == 0, done.stderr
    assert _schemas(source_db) == []
    assert source_db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)) == []
    status = cli("status", "-f", str(spec), "--output", "json").json()
    assert status["services"][0]["phase"] == "planned"
    # and the copy can start over from scratch
    again = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["resumed"] is False
    assert RICH_TABLES[0] in again.json()["tables"]
