"""Schema features real monoliths hold (issue 12): table inheritance, tables of no columns or
only generated ones, PostgreSQL 18's NOT NULL constraint names, row-level security, large
objects, and publications, subscriptions or event triggers that involve the moved tables."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.extract_world import normalized, rows_of, write_service_spec
from tests.fix_pg import Db


def _run(db: Db, text: str) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(text)


def _plan(cli: Any, spec: Path) -> dict[str, Any]:
    done = cli("plan", "order_service", "-f", str(spec), "--output", "json")
    section: dict[str, Any] = done.json()["services"][0]["boundary"]
    assert section["error"] is None
    # Plan exits 1 exactly when a finding will stop a step (terraform's error exit).
    stops = [r for r in section["references"] if r["action"] == "cannot carry"]
    assert done.code == (1 if stops else 0), done.stderr
    return section


def _refs(section: dict[str, Any], kind: str) -> list[dict[str, str]]:
    return [r for r in section["references"] if r["kind"] == kind]


def _schemas(db: Db) -> list[str]:
    q = "SELECT nspname FROM pg_namespace WHERE nspname = 'order_service'"
    return [r[0] for r in db.execute(q)]


def _only(dsn: str, schema: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            f'SELECT t::text FROM ONLY "{schema}"."{table}" t ORDER BY 1'
        ).fetchall()


INHERITANCE = """
CREATE TABLE vehicles (id int PRIMARY KEY, name text NOT NULL CHECK (name <> ''),
                       wheels int DEFAULT 4);
CREATE TABLE trucks (payload int) INHERITS (vehicles);
ALTER TABLE trucks ALTER COLUMN wheels SET DEFAULT 6;
ALTER TABLE trucks ADD PRIMARY KEY (id);
CREATE TABLE bikes (id int CONSTRAINT bikes_id_required NOT NULL) INHERITS (vehicles);
INSERT INTO vehicles (id, name) SELECT g, 'car ' || g FROM generate_series(1, 20) g;
INSERT INTO trucks (id, name, payload) SELECT g, 'truck ' || g, g * 10 FROM generate_series(1, 7) g;
INSERT INTO bikes (id, name, wheels) SELECT g, 'bike ' || g, 2 FROM generate_series(100, 104) g;
"""


def test_an_inheritance_tree_moves_whole(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(source_db, INHERITANCE)
    part = ["vehicles", "trucks"]  # bikes inherits from vehicles and would stay
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=part)
    found = {(r["from"], r["to"], r["action"]) for r in _refs(_plan(cli, spec), "inheritance")}
    assert ("vehicles", "public.bikes (stays)", "cannot carry") in found
    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 2 and "bikes" in refused.stderr
    assert _schemas(target_db) == []

    tables = ["vehicles", "trucks", "bikes"]
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=tables)
    found = {(r["from"], r["action"]) for r in _refs(_plan(cli, spec), "inheritance")}
    assert found == {("trucks", "carried"), ("bikes", "carried")}
    done = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    # each table holds its own rows (nothing copied twice through the parent)
    assert done.json()["tables"]["vehicles"] == {"source_rows": 20, "target_rows": 20}
    for t in tables:
        assert _only(source_db.dsn, "public", t) == _only(target_db.dsn, "order_service", t), t
    assert target_db.execute(
        "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent ORDER BY 1"
    ) == [("bikes", "vehicles"), ("trucks", "vehicles")]
    assert normalized(source_db.dsn, "public", tables) == normalized(
        target_db.dsn, "order_service", tables, drop_grantee=role
    )
    _run(target_db, "INSERT INTO order_service.trucks (id, name) VALUES (99, 't')")
    assert target_db.execute("SELECT wheels FROM order_service.trucks WHERE id = 99") == [(6,)]


@pytest.mark.parametrize("where", ["same", "other"])
def test_tables_of_no_columns_or_only_generated_ones(
    where: str, source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(
        source_db,
        "CREATE TABLE marks (); INSERT INTO marks SELECT FROM generate_series(1, 3);"
        "CREATE TABLE ones (one int GENERATED ALWAYS AS (1) STORED);"
        "INSERT INTO ones SELECT FROM generate_series(1, 2);",
    )
    target = target_db if where == "other" else source_db
    spec, _ = write_service_spec(
        tmp_path, source_db.dsn, target_db.dsn if where == "other" else None,
        tables=["marks", "ones"],
    )  # fmt: skip
    done = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["tables"] == {
        "marks": {"source_rows": 3, "target_rows": 3},
        "ones": {"source_rows": 2, "target_rows": 2},
    }
    assert target.execute("SELECT count(*), sum(one) FROM order_service.ones") == [(2, 2)]


NOT_NULLS = """
CREATE TABLE plain (id int CONSTRAINT plain_id_required NOT NULL, note text NOT NULL);
ALTER TABLE plain RENAME TO accounts;  -- names stay as they were: accounts keeps plain_…
CREATE TABLE events (id int NOT NULL, at int CONSTRAINT at_required NOT NULL)
  PARTITION BY RANGE (at);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);
CREATE TABLE events_2 (id int CONSTRAINT events_2_own NOT NULL, at int NOT NULL);
ALTER TABLE events ATTACH PARTITION events_2 FOR VALUES FROM (10) TO (20);
INSERT INTO accounts VALUES (1, 'a');
INSERT INTO events VALUES (1, 1), (2, 12);
"""

_NN = """
SELECT c.relname, con.conname FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'n' AND c.relnamespace = %s::regnamespace ORDER BY 1, 2
"""


def test_not_null_constraint_names_are_kept(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(source_db, NOT_NULLS)
    tables = ["accounts", "events"]
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=tables)
    done = cli("copy", "order_service", "-f", str(spec))
    assert done.code == 0, done.stderr
    names = source_db.execute(_NN, ("public",))
    assert ("events_2", "events_2_own") in names and ("accounts", "plain_id_required") in names
    assert target_db.execute(_NN, ("order_service",)) == names
    moved = ["accounts", "events", "events_1", "events_2"]
    assert normalized(source_db.dsn, "public", moved) == normalized(
        target_db.dsn, "order_service", moved, drop_grantee=role
    )


RLS = """
CREATE TABLE notes (id int PRIMARY KEY, tenant text NOT NULL, body text);
INSERT INTO notes SELECT g, 't' || (g % 3), 'body ' || g FROM generate_series(1, 30) g;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON notes FOR SELECT TO PUBLIC
  USING (tenant = current_setting('app.tenant', true));
CREATE POLICY tenant_writes ON notes AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (tenant <> '');
"""


def test_row_level_security_is_carried_and_never_filters_the_copy(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(source_db, RLS)
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=["notes"])
    found = {(r["from"], r["action"]) for r in _refs(_plan(cli, spec), "row-level security")}
    assert found == {("notes", "carried")}
    done = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["tables"]["notes"] == {"source_rows": 30, "target_rows": 30}
    assert target_db.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE oid = 'order_service.notes'::regclass"
    ) == [(True, True)]
    assert normalized(source_db.dsn, "public", ["notes"]) == normalized(
        target_db.dsn, "order_service", ["notes"], drop_grantee=role
    )


def test_a_monolith_role_the_policies_filter_cannot_copy(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    # The owner under FORCE ROW LEVEL SECURITY sees only the rows its policies allow: a copy
    # that read as it would move none of these 30 rows and count 0 = 0.
    owner = "own_" + uuid.uuid4().hex[:8]
    _run(
        source_db,
        f"CREATE ROLE {owner} LOGIN PASSWORD 'pw'; GRANT CREATE ON SCHEMA public TO {owner};"
        f"SET ROLE {owner};" + RLS,
    )
    as_owner = make_conninfo(source_db.dsn, user=owner, password="pw")
    spec, _ = write_service_spec(tmp_path, as_owner, target_db.dsn, tables=["notes"])
    refs = _refs(_plan(cli, spec), "row-level security")
    assert [(r["to"], r["action"]) for r in refs] == [(f"role {owner}", "cannot carry")]
    assert "BYPASSRLS" in refs[0]["breaks"]
    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 2
    assert f"monolith role {owner} is subject to its policies" in refused.stderr
    assert _schemas(target_db) == []


LARGE_OBJECTS = """
CREATE TABLE scans (id int PRIMARY KEY, image oid);
INSERT INTO scans SELECT g, lo_from_bytea(0, ('scan ' || g)::bytea) FROM generate_series(1, 3) g;
"""


def test_large_objects_are_shared_in_place_or_refused_across_instances(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(source_db, LARGE_OBJECTS)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=["scans"])
    refs = _refs(_plan(cli, spec), "large objects")
    assert [(r["from"], r["to"], r["action"]) for r in refs] == [
        ("scans(image)", "3 large object(s)", "cannot carry")
    ]
    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 2 and "large objects" in refused.stderr
    assert _schemas(target_db) == []
    same, _ = write_service_spec(tmp_path, source_db.dsn, None, tables=["scans"])
    assert [r["action"] for r in _refs(_plan(cli, same), "large objects")] == ["left alone"]
    assert cli("copy", "order_service", "-f", str(same)).code == 0
    assert rows_of(source_db.dsn, "public", "scans") == rows_of(
        source_db.dsn, "order_service", "scans"
    )


def test_publications_subscriptions_and_event_triggers_are_reported(
    source_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(
        source_db,
        """
        CREATE TABLE orders (id int PRIMARY KEY, total int);
        CREATE TABLE customers (id int PRIMARY KEY);
        CREATE PUBLICATION to_warehouse FOR TABLE orders, customers;
        CREATE FUNCTION ddl_audit() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM count(*) FROM orders; END $$;
        CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION ddl_audit();
        """,
    )
    try:
        spec, _ = write_service_spec(tmp_path, source_db.dsn, None, tables=["orders"])
        section = _plan(cli, spec)
        pubs = _refs(section, "publication")
        assert [(r["from"], r["to"], r["action"]) for r in pubs] == [
            ("publication to_warehouse", "orders (moved)", "left alone")
        ]
        events = _refs(section, "event trigger")
        assert [(r["from"], r["to"]) for r in events] == [
            ("event trigger audit_ddl", "public.ddl_audit()")
        ]
        assert "strangler runs" in events[0]["breaks"] and "orders" in events[0]["breaks"]
    finally:
        _run(source_db, "DROP EVENT TRIGGER audit_ddl")


def test_online_sync_refuses_an_inheritance_tree_before_creating_anything(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    _run(source_db, INHERITANCE)
    tables = ["vehicles", "trucks", "bikes"]
    spec, _ = write_service_spec(
        tmp_path, source_db.dsn, target_db.dsn, tables=tables, strategy="online"
    )
    planned = cli("plan", "order_service", "-f", str(spec))
    assert planned.code == 1 and "inheritance tree" in planned.stdout + planned.stderr
    refused = cli("copy", "order_service", "-f", str(spec))
    assert refused.code == 1 and "strategy: copy" in refused.stderr
    assert _schemas(target_db) == []
    assert source_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]
