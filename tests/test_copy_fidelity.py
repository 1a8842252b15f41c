"""The copy carries every feature: catalogs compared object by object, and every row."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from strangler.pg.copy.chunks import binary_safe, plan_chunks
from strangler.pg.copy.rows import load_rows
from strangler.pg.schema.catalog import read_catalog
from strangler.phases import Phase
from strangler.steps.create_schema import create_schema
from strangler.steps.wiring import endpoints
from tests.extract_world import (
    RICH_TABLES,
    build_rich,
    copy_service,
    normalized,
    rows_of,
    runbook,
    schema_facts,
    write_service_spec,
)
from tests.fix_pg import Db

ALL = [*RICH_TABLES, "events_2024", "events_rest"]


def _without_leaving_fks(cat: dict) -> dict:  # type: ignore[type-arg]
    for t in cat["tables"]:
        t["foreign_keys"] = tuple(fk for fk in t["foreign_keys"] if fk["ref_table"] != "customers")
    return cat


def _check(source: Db, target_dsn: str, tmp_path: Path, *, same: bool) -> None:
    build_rich(source.dsn)
    spec_path, role = write_service_spec(tmp_path, source.dsn, None if same else target_dsn)
    _, journal, rb = runbook(spec_path)
    result = copy_service(rb, jobs=2, chunk_rows=100)
    assert rb.phase == Phase.COPIED
    before = _without_leaving_fks(normalized(source.dsn, "public", RICH_TABLES))
    after = normalized(target_dsn, "order_service", RICH_TABLES, drop_grantee=role)
    assert before["types"] == after["types"]
    assert before["sequences"] == after["sequences"]
    assert before["trigger_functions"] == after["trigger_functions"]
    for b, a in zip(before["tables"], after["tables"], strict=True):
        for key in b:
            assert b[key] == a[key], (b["name"], key)
    assert before == after
    # the world uses what is compared (an empty list on both sides would compare equal)
    assert [c["name"] for c in before["collations"]] == ["c_sort", "posix_sort"]
    ranges = {t["name"]: t for t in before["types"] if t["kind"] == "r"}
    assert ranges["price_range"]["subtype_diff"] == "price_diff"
    assert ranges["code_range"]["collation"] == "c_sort"
    assert ranges["code_range"]["multirange"] == "code_bands"
    assert ranges["code_range"]["opclass"] == "text_pattern_ops"
    assert ranges["float_range"]["subtype_diff"] == "float8mi"
    assert [f["name"] for f in before["type_functions"]] == ["price_diff"]
    bands = next(t for t in before["tables"] if t["name"] == "price_bands")
    assert {(g["privilege"], g["columns"]) for g in bands["grants"]} == {
        ("SELECT", ("id", "label")),
        ("UPDATE", ("note",)),
        ("INSERT", ("note",)),
    }
    # and the same, read without strangler's catalog reader
    src = schema_facts(source.dsn, "public")
    dst = schema_facts(target_dsn, "order_service", skip_role=role)
    assert dst["leaks"] == [], "the service schema depends on the monolith's"
    for key in ("collations", "ranges", "column_acls"):
        assert src[key] == dst[key], key
    assert len(src["ranges"]) == 3 and len(src["column_acls"]) == 6
    for table in ALL:
        assert rows_of(source.dsn, "public", table) == rows_of(
            target_dsn, "order_service", table
        ), table
    assert result["tables"]["orders"] == {"source_rows": 500, "target_rows": 500}
    assert result["tables"]["empty_one"] == {"source_rows": 0, "target_rows": 0}
    # the target has planner statistics
    with psycopg.connect(target_dsn) as conn:
        row = conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'order_service.orders'::regclass"
        )
        assert row.fetchone() == (500,)
    # composites and arrays of the monolith's enum travel as text between instances
    assert result["formats"] == (["sql"] if same else ["binary", "text"])
    journal.close()


def test_same_instance_carries_everything(source_db: Db, tmp_path: Path) -> None:
    _check(source_db, source_db.dsn, tmp_path, same=True)


def test_new_instance_carries_everything(source_db: Db, target_db: Db, tmp_path: Path) -> None:
    target_db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') "
        "THEN CREATE ROLE reporting NOLOGIN; END IF; END $$"
    )
    _check(source_db, target_db.dsn, tmp_path, same=False)


@pytest.mark.pg15
def test_postgres15_to_18_carries_everything(pg15_db: Db, target_db: Db, tmp_path: Path) -> None:
    target_db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') "
        "THEN CREATE ROLE reporting NOLOGIN; END IF; END $$"
    )
    _check(pg15_db, target_db.dsn, tmp_path, same=False)


def test_binary_the_target_rejects_falls_back_to_text(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """A column whose binary form differs on the target (here bigint → integer, as between
    server versions whose types differ): the target refuses the binary stream, and each chunk
    is copied again as text, in a clean transaction."""
    build_rich(source_db.dsn, n=40)
    table = "Order Items"
    spec_path, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=[table])
    _, journal, rb = runbook(spec_path)
    create_schema(rb)
    target_db.execute('ALTER TABLE order_service."Order Items" ALTER COLUMN order_id TYPE integer')
    ends = endpoints(rb.spec, rb.name)
    with psycopg.connect(source_db.dsn, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        catalog = read_catalog(conn, "public", [table])
        assert binary_safe(conn, catalog) == {table: True}
        chunks = plan_chunks(conn, catalog, 20)
        done = load_rows(
            ends, catalog, chunks, snapshot=snap, jobs=2, redo=set(),
            binary={table: True}, on_done=lambda d: None,
        )  # fmt: skip
    assert len(done) == 4
    assert {d.format for d in done} == {"text"}
    assert sum(d.rows for d in done) == 80
    assert rows_of(source_db.dsn, "public", table) == rows_of(target_db.dsn, "order_service", table)
    journal.close()
