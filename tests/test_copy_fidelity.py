"""The copy carries every feature: catalogs compared object by object, and every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.pg.extract import copy_service
from strangler.phases import Phase
from tests.extract_world import (
    RICH_TABLES,
    build_rich,
    normalized,
    rows_of,
    runbook,
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
    for table in ALL:
        assert rows_of(source.dsn, "public", table) == rows_of(
            target_dsn, "order_service", table
        ), table
    assert result["tables"]["orders"] == {"source_rows": 500, "target_rows": 500}
    assert result["tables"]["empty_one"] == {"source_rows": 0, "target_rows": 0}
    # composites and arrays of the monolith's enum cannot travel as binary between instances
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
