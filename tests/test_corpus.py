"""The conformance corpus (issue 12): public schemas we did not write, each with a realistic
service boundary, through ``plan``, ``copy`` (same instance, another instance, PostgreSQL 15 to
18) and an online leg (writes during copy and sync, cutover, writes through the service role,
``rollback --writes``, writes through the monolith). Catalogs are compared object by object,
names included, and rows one by one. Sources: tests/corpus/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps import cutover as cutover_step
from strangler.steps import rollback_writes as rollback_step
from strangler.steps import sync as sync_step
from strangler.steps.copy import copy
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify
from tests.corpus.sources import CORPORA, Corpus, generate_rows, load
from tests.extract_world import normalized, rows_of
from tests.fix_pg import Db

ROWS = 400

SPEC = """\
version: 1
state: sqlite:///{tmp}/state.db
source: {{ dsn: "{source}", schema: public }}
services:
  svc:
    tables: {tables}
    target:
      {target}schema: corpus_svc
      role: {{ name: {role}, password: "pw" }}
    strategy: {strategy}
"""


def _spec(tmp: Path, corpus: Corpus, source: Db, target: Db | None, role: str,
          strategy: str = "copy") -> Path:  # fmt: skip
    path = tmp / "strangler.yaml"
    path.write_text(
        SPEC.format(
            tmp=tmp, source=source.dsn, tables=json.dumps(list(corpus.tables)), role=role,
            target=f"dsn: {json.dumps(target.dsn)}\n      " if target else "", strategy=strategy,
        )
    )  # fmt: skip
    return path


def _same(corpus: Corpus, source: Db, target_dsn: str, role: str) -> None:
    before = normalized(source.dsn, "public", list(corpus.tables))
    after = normalized(target_dsn, "corpus_svc", list(corpus.tables), drop_grantee=role)
    for t in before["tables"]:  # foreign keys to tables that stay are left out (leaving: drop)
        t["foreign_keys"] = tuple(
            fk for fk in t["foreign_keys"] if fk["ref_table"] in corpus.tables
        )
    assert before == after
    for table in corpus.tables:
        assert rows_of(source.dsn, "public", table) == rows_of(target_dsn, "corpus_svc", table)


def _populate(db: Db, corpus: Corpus) -> None:
    """The corpus's schema, and its own rows (a sample database) or generated ones."""
    load(db.dsn, corpus)
    if not corpus.ships_rows:
        generate_rows(db.dsn, None, ROWS)


def _expected(corpus: Corpus) -> dict[str, int]:
    if corpus.ships_rows:
        from tests.corpus import chinook

        return {t: chinook.counts()[t] for t in corpus.tables}
    return dict.fromkeys(corpus.tables, ROWS)


@pytest.fixture(params=sorted(CORPORA))
def corpus(request) -> Corpus:  # type: ignore[no-untyped-def]
    return CORPORA[request.param]


def test_plan_names_the_boundary(corpus: Corpus, source_db: Db, tmp_path: Path, cli) -> None:
    load(source_db.dsn, corpus)
    spec = _spec(tmp_path, corpus, source_db, None, f"r_{source_db.name}")
    planned = cli("plan", "svc", "-f", str(spec), "--output", "json")
    assert planned.code == 0, planned.stderr
    boundary = planned.json()["services"][0]["boundary"]
    assert boundary["error"] is None and boundary["blocking"] == 0
    out = sorted(f"{r['from']} → {r['to']}" for r in boundary["references"]
                 if r["kind"] == "foreign key out")  # fmt: skip
    assert out == sorted(corpus.foreign_keys_out)


@pytest.mark.parametrize("where", ["same", "other", "pg15"])
def test_copy_is_faithful(
    corpus: Corpus, where: str, request, source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    source = request.getfixturevalue("pg15_db") if where == "pg15" else source_db
    _populate(source, corpus)
    target = None if where == "same" else target_db
    role = f"r_{(target or source).name}"
    spec = load_spec(_spec(tmp_path, corpus, source, target, role))
    with Journal(spec.state_url(), operator="test", command="pytest") as journal:
        result = copy(Runbook(spec, journal, "svc"))
    assert result.figures is not None
    assert {t: c.target_rows for t, c in result.figures.tables.items()} == _expected(corpus)
    _same(corpus, source, (target or source).dsn, role)


def test_online_leg(corpus: Corpus, source_db: Db, target_db: Db, tmp_path: Path) -> None:
    _populate(source_db, corpus)
    role = f"r_{target_db.name}"
    spec = load_spec(_spec(tmp_path, corpus, source_db, target_db, role, "online"))
    moved = list(corpus.tables)
    with Journal(spec.state_url(), operator="test", command="pytest") as journal:
        rb = Runbook(spec, journal, "svc")
        try:
            copy(rb)
            generate_rows(source_db.dsn, moved, 50, start=ROWS + 1)  # the monolith writes on
            sync_step.apply(rb, until_caught_up=True)
            assert verify(rb).passed
            cutover_step.cutover(rb)
            # The service role writes with its own defaults: no key the monolith used.
            _as_role(target_db, role, moved, start=ROWS + 100)
            sync_step.apply(rb, until_caught_up=True)
            rollback_step.rollback_writes(rb, reason="corpus")
            generate_rows(source_db.dsn, moved, 50, start=ROWS + 200)
            sync_step.apply(rb, until_caught_up=True)
            for table in moved:
                assert rows_of(source_db.dsn, "public", table) == rows_of(
                    target_db.dsn, "corpus_svc", table
                ), table
            assert verify(rb).passed
        finally:
            sync_step.stop(rb)


def _as_role(db: Db, role: str, tables: list[str], *, start: int) -> None:
    """Rows written by the service role, as the service would: ids from its own sequences."""
    generate_rows(db.dsn, tables, 20, start=start, schema="corpus_svc", user=role, password="pw")
