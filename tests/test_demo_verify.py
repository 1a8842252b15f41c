"""The demo's verify act on the demo's own servers, with a copy made here by plain COPY
(the copy act belongs to another capability; this test must not depend on it)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from rich.console import Console

from strangler.demo.act_verify import act_verify
from strangler.demo.world import DemoOptions, demo_world
from strangler.phases import Action
from strangler.steps.runbook import Runbook

_COLUMNS = """
SELECT a.attname,
       CASE WHEN t.typtype = 'e' THEN 'text'
            WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
            ELSE format_type(a.atttypid, a.atttypmod) END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


def _copy_by_hand(world, tables: list[str]) -> None:
    with world.connect_monolith() as src, world.connect_service() as dst:
        dst.execute("CREATE SCHEMA order_service")
        for table in tables:
            cols = src.execute(_COLUMNS, (f"public.{table}",)).fetchall()
            dst.execute(
                sql.SQL("CREATE TABLE order_service.{} ({}, PRIMARY KEY (id))").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in cols
                    ),
                )
            )
            out_sql = sql.SQL("COPY public.{} TO STDOUT").format(sql.Identifier(table))
            in_sql = sql.SQL("COPY order_service.{} FROM STDIN").format(sql.Identifier(table))
            with src.cursor().copy(out_sql) as out, dst.cursor().copy(in_sql) as into:
                for chunk in out:
                    into.write(chunk)


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    # Under /tmp with open permissions, as fix_pg does: the servers' own user must reach it
    # (pytest's tmp_path lives in a private folder that other sessions also rotate).
    root = Path(tempfile.mkdtemp(prefix="strangler-demo-verify-", dir="/tmp"))
    root.chmod(0o755)
    yield root / "demo"
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_verify_act_names_exactly_the_damaged_rows(demo_dir: Path) -> None:
    console = Console(record=True, width=200)
    options = DemoOptions(directory=demo_dir, scale=300, strategy="copy")
    with demo_world(options, console) as world:
        act_verify(world)
        assert world.facts["verify"] == "skipped: no copy"
        tables = list(world.spec.service("order_service").tables)
        _copy_by_hand(world, tables)
        with world.journal() as journal:
            rb = Runbook(world.spec, journal, "order_service")
            for action in (Action.CREATE_SCHEMA, Action.COPY):
                with rb.step(action):
                    pass
        act_verify(world)
        with world.journal() as journal:
            assert journal.state("order_service").phase == "verified"
            verdicts = [e.status for e in journal.history("order_service") if e.kind == "event"]
    assert world.facts["verify"] == (
        "clean True, damaged rows found 4 of 4, clean after repair True"
    )
    assert verdicts == ["passed", "failed", "passed"]
    text = console.export_text()
    assert "changed  id=8  columns: notes" in text
    assert "missing  id=100" in text
