"""Names PostgreSQL allows are names strangler takes (issue 12): a source schema that needs
quoting (mixed case, a space, a dot, a double quote) and tables with a newline or mixed case
in their names, copied to the same and to another instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.copy import copy
from strangler.steps.runbook import Runbook
from tests.extract_world import normalized, rows_of
from tests.fix_pg import Db

SCHEMA = 'Odd "Schema".v1'
TABLES = ["line\nbreak", "MixedCase"]

WORLD = """
CREATE SCHEMA "Odd ""Schema"".v1";
SET search_path TO "Odd ""Schema"".v1";
CREATE TABLE "MixedCase" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Val" text);
CREATE INDEX "MixedCase val" ON "MixedCase" ("Val");
CREATE TABLE "line
break" (id serial PRIMARY KEY, ref int REFERENCES "MixedCase" (id), note text);
INSERT INTO "MixedCase" ("Val") SELECT 'v' || g FROM generate_series(1, 50) g;
INSERT INTO "line
break" (ref, note) SELECT g, 'n' || g FROM generate_series(1, 50) g;
"""


@pytest.mark.parametrize("where", ["same", "other"])
def test_names_that_need_quoting_are_carried(
    where: str, source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    source_db.execute(WORLD)
    target = target_db if where == "other" else None
    spec_path = tmp_path / "strangler.yaml"
    spec_path.write_text(
        f"""version: 1
state: sqlite:///{tmp_path}/state.db
source: {{ dsn: {json.dumps(source_db.dsn)}, schema: {json.dumps(SCHEMA)} }}
services:
  odd:
    tables: {json.dumps(TABLES)}
    target: {{ {"dsn: " + json.dumps(target.dsn) + ", " if target else ""}schema: "Svc Two" }}
"""
    )
    spec = load_spec(spec_path)
    with Journal(spec.state_url(), operator="test", command="pytest") as journal:
        result = copy(Runbook(spec, journal, "odd"))
    assert result.figures is not None
    assert {t: c.target_rows for t, c in result.figures.tables.items()} == dict.fromkeys(TABLES, 50)
    dsn = (target or source_db).dsn
    assert normalized(source_db.dsn, SCHEMA, TABLES) == normalized(dsn, "Svc Two", TABLES)
    for table in TABLES:
        assert rows_of(source_db.dsn, SCHEMA, table) == rows_of(dsn, "Svc Two", table)
