"""The boundary inside code (issue 12): a trigger function, default, check or generated
expression the service will run that reads or writes tables staying behind is a finding of
``plan`` (with how sure it is), and ``copy`` stops before any row unless the spec accepts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.extract_world import write_service_spec
from tests.fix_pg import Db

MONOLITH = """
CREATE TABLE customers (id serial PRIMARY KEY, name text, region text);
CREATE TABLE audit (id serial PRIMARY KEY, line text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, total numeric, note text);
CREATE TABLE order_lines (id serial PRIMARY KEY, order_id int, qty int);
CREATE FUNCTION touch_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- names only moved tables: carried as it is
  NEW.total := coalesce((SELECT sum(qty) FROM order_lines WHERE order_id = NEW.id), 0);
  RETURN NEW;
END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch_total();
INSERT INTO customers (name, region) VALUES ('a', 'eu');
INSERT INTO orders (customer_id, total) SELECT 1, g FROM generate_series(1, 5) g;
"""


def _monolith(db: Db, extra: str) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(MONOLITH)
        conn.execute(extra)


def _boundary(cli: Any, spec: Path) -> dict[str, Any]:
    done = cli("plan", "order_service", "-f", str(spec), "--output", "json")
    section: dict[str, Any] = done.json()["services"][0]["boundary"]
    assert section["error"] is None
    # Plan exits 1 exactly when a finding will stop a step (terraform's error exit).
    stops = [r for r in section["references"] if r["action"] == "cannot carry"]
    assert done.code == (1 if stops else 0), done.stderr
    return section


def _findings(section: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (r["kind"], r["from"], r["to"], r["action"], r["certainty"])
        for r in section["references"]
        if r["action"] in ("breaks", "accepted", "carried")
    }


def _schemas(db: Db) -> list[str]:
    return [r[0] for r in db.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'svc'")]


TABLES = ["orders", "order_lines"]


def test_a_carried_trigger_function_writing_a_table_left_behind_breaks(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _monolith(
        source_db,
        """
        CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE region text;
        BEGIN
          SELECT c.region INTO region FROM customers c WHERE c.id = NEW.customer_id;
          INSERT INTO audit (line) VALUES ('order ' || NEW.id || ' in ' || region);
          PERFORM 1 FROM public.orders WHERE id = NEW.id;  -- the old table, by its schema
          EXECUTE format('UPDATE %I SET line = line WHERE id = 0', 'audit');
          RETURN NEW;
        END $$;
        CREATE TRIGGER orders_audit AFTER INSERT ON orders
          FOR EACH ROW EXECUTE FUNCTION orders_audit();
        """,
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES,
                                 schema="svc")  # fmt: skip
    section = _boundary(cli, spec)
    found = _findings(section)
    of = "public.orders_audit() (trigger of orders)"
    assert ("trigger function", of, "public.customers", "breaks", "parsed") in found
    assert ("trigger function", of, "public.audit", "breaks", "parsed") in found
    assert ("trigger function", of, "public.orders", "breaks", "parsed") in found
    # the clean one is carried, and the plan says so
    assert ("trigger function", "public.touch_total()", "orders", "carried", "parsed") in found
    breaks = {r["breaks"] for r in section["references"] if r["to"] == "public.audit"}
    assert any("writes public.audit, which stays behind" in b for b in breaks), breaks
    assert any("relation does not exist" in b for b in breaks), breaks
    assert section["blocking"] >= 3
    text = cli("plan", "order_service", "-f", str(spec)).stdout
    assert "orders_audit" in text and "breaks" in text

    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 2, refused.stderr
    assert "public.orders_audit()" in refused.stderr and "reaches_behind: accept" in refused.stderr
    assert _schemas(target_db) == []  # nothing changed, not even the schema

    # accepted: carried, and the service's INSERT then fails exactly as the plan said
    with spec.open("a") as f:
        f.write("    code: { reaches_behind: accept }\n")
    accepted = _findings(_boundary(cli, spec))
    assert ("trigger function", of, "public.audit", "accepted", "parsed") in accepted
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 0, done.stderr
    with pytest.raises(psycopg.errors.UndefinedTable, match="customers"):
        target_db.execute("SET search_path = svc; INSERT INTO orders (customer_id) VALUES (1)")


def test_sql_built_at_run_time_is_a_possible_finding(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _monolith(
        source_db,
        """
        CREATE FUNCTION orders_stats() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          EXECUTE 'UPDATE ' || quote_ident('audit') || ' SET line = line WHERE id = $1'
            USING NEW.id;
          RETURN NEW;
        END $$;
        CREATE TRIGGER orders_stats AFTER INSERT ON orders
          FOR EACH ROW EXECUTE FUNCTION orders_stats();
        """,
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES,
                                 schema="svc")  # fmt: skip
    found = _findings(_boundary(cli, spec))
    assert ("trigger function", "public.orders_stats() (trigger of orders)", "public.audit",
            "breaks", "possible") in found  # fmt: skip


def test_a_default_or_generated_column_reaching_behind_through_pg_depend(
    source_db: Db, tmp_path: Path, cli: Any
) -> None:
    # Same instance: functions of another schema stay where they are and are called in place;
    # their SQL-standard bodies' dependencies are recorded by PostgreSQL.
    _monolith(
        source_db,
        """
        CREATE SCHEMA util;
        CREATE FUNCTION util.home_region(c int) RETURNS text LANGUAGE sql STABLE
          BEGIN ATOMIC SELECT region FROM public.customers WHERE id = c; END;
        CREATE FUNCTION util.weight(q int) RETURNS int LANGUAGE sql IMMUTABLE
          RETURN q * 2;
        CREATE FUNCTION util.lines(o int) RETURNS int LANGUAGE sql IMMUTABLE
          BEGIN ATOMIC SELECT count(*)::int FROM public.audit WHERE id = o; END;
        ALTER TABLE orders ADD COLUMN region text DEFAULT util.home_region(1);
        ALTER TABLE order_lines ADD COLUMN weight int GENERATED ALWAYS AS (util.weight(qty)) STORED;
        ALTER TABLE order_lines ADD COLUMN audited int GENERATED ALWAYS AS (util.lines(id)) STORED;
        """,
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, None, tables=TABLES, schema="svc")
    found = _findings(_boundary(cli, spec))
    assert ("expression", "orders default → util.home_region()", "public.customers", "breaks",
            "certain") in found  # fmt: skip
    assert ("expression", "order_lines generated column → util.lines()", "public.audit",
            "breaks", "certain") in found  # fmt: skip
    assert not any("util.weight()" in f[1] for f in found)  # reaches nothing: no finding
    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 2 and "util.home_region()" in refused.stderr
    assert _schemas(source_db) == []


def test_a_carried_trigger_calling_a_monolith_function_breaks(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _monolith(
        source_db,
        """
        CREATE FUNCTION note_for(o int) RETURNS text LANGUAGE sql AS $$ SELECT 'n' || o $$;
        CREATE FUNCTION orders_note() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.note := note_for(NEW.id); RETURN NEW; END $$;
        CREATE TRIGGER orders_note BEFORE INSERT ON orders
          FOR EACH ROW EXECUTE FUNCTION orders_note();
        CREATE SCHEMA util;
        CREATE FUNCTION util.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RETURN NEW; END $$;
        CREATE TRIGGER lines_stamp BEFORE INSERT ON order_lines
          FOR EACH ROW EXECUTE FUNCTION util.stamp();
        """,
    )
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES,
                                 schema="svc")  # fmt: skip
    section = _boundary(cli, spec)
    found = _findings(section)
    assert ("trigger function", "public.orders_note() (trigger of orders)", "public.note_for()",
            "breaks", "parsed") in found  # fmt: skip
    # another instance: a trigger function of another schema is not there at all
    cannot = {(r["kind"], r["to"]) for r in section["references"] if r["action"] == "cannot carry"}
    assert ("trigger", "util.stamp()") in cannot
