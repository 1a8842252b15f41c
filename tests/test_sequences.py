"""Every sequence a moved column uses (issue 12): serial and identity, ``DEFAULT nextval(…)``
without OWNED BY, one shared by two moved tables, one a carried trigger function calls, one
shared with a table that stays. Carried, set at the copy, moved at the cutover and at
``rollback --writes``: after each, the side that takes the writes inserts into every moved
table with its defaults and never meets a key the other side used."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps import cutover as cutover_step
from strangler.steps import rollback_writes as rollback_step
from strangler.steps import sync as sync_step
from strangler.steps.copy import copy
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify
from tests.fix_pg import Db

WORLD = """
CREATE SEQUENCE global_ids;
CREATE SEQUENCE ticket_numbers START 1000;
CREATE SEQUENCE shared_with_stay;
CREATE TABLE notes (id bigint PRIMARY KEY DEFAULT nextval('global_ids'), body text);
CREATE TABLE tags (id bigint PRIMARY KEY DEFAULT nextval('global_ids'), label text);
CREATE FUNCTION number_ticket() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.id := nextval('ticket_numbers'); RETURN NEW; END $$;
CREATE TABLE tickets (id bigint PRIMARY KEY, subject text);
CREATE TRIGGER number_ticket BEFORE INSERT ON tickets FOR EACH ROW
  EXECUTE FUNCTION number_ticket();
CREATE TABLE counters (id bigint PRIMARY KEY DEFAULT nextval('shared_with_stay'), n int);
CREATE TABLE legacy (id bigint PRIMARY KEY DEFAULT nextval('shared_with_stay'), x text);
CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE serials (id serial PRIMARY KEY, v text);
"""

MOVED = ["notes", "tags", "tickets", "counters", "ident", "serials"]

INSERT_ONE = {
    "notes": "INSERT INTO {s}.notes (body) VALUES ('x')",
    "tags": "INSERT INTO {s}.tags (label) VALUES ('x')",
    "tickets": "INSERT INTO {s}.tickets (subject) VALUES ('x')",
    "counters": "INSERT INTO {s}.counters (n) VALUES (1)",
    "ident": "INSERT INTO {s}.ident (v) VALUES ('x')",
    "serials": "INSERT INTO {s}.serials (v) VALUES ('x')",
}

SPEC = """\
version: 1
state: sqlite:///{tmp}/state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: {tables}
    target:
      dsn: "{target}"
      schema: svc
      role: {{ name: shop_app_{tag}, password: "pw" }}
    strategy: online
{extra}"""


def _insert_all(conn: psycopg.Connection, schema: str, times: int) -> None:
    for _ in range(times):
        for table in MOVED:
            conn.execute(INSERT_ONE[table].format(s=schema))


def _spec(tmp_path: Path, source: Db, target: Db, extra: str = "") -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(
        SPEC.format(
            tmp=tmp_path, source=source.dsn, target=target.dsn, tables=json.dumps(MOVED),
            tag=target.name, extra=extra,
        )
    )  # fmt: skip
    return path


def test_a_sequence_shared_with_a_table_that_stays_is_a_finding_of_plan_and_stops_copy(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    source_db.execute(WORLD)
    spec = _spec(tmp_path, source_db, target_db)
    planned = cli("plan", "shop", "-f", str(spec), "--output", "json")
    # A reference copy cannot carry stops a step: plan exits 1, as terraform does on errors.
    assert planned.code == 1, planned.stderr
    refs = [r for r in planned.json()["services"][0]["boundary"]["references"]]
    shared = [r for r in refs if r["kind"] == "sequence"]
    assert shared == [
        {
            "kind": "sequence",
            "from": "public.shared_with_stay",
            "to": "public.legacy(id) (stays)",
            "breaks": shared[0]["breaks"],
            "action": "cannot carry",
            "certainty": "certain",
        }
    ]
    assert "sequences: {shared: copy}" in shared[0]["breaks"]
    refused = cli("copy", "shop", "-f", str(spec))
    assert refused.code == 2, refused.stderr
    assert "public.shared_with_stay" in refused.stderr
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'svc'") == [(0,)]


def test_every_sequence_is_carried_set_and_moved_both_ways(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    source_db.execute(WORLD)
    with source_db.connect() as conn:
        _insert_all(conn, "public", 5)
        conn.execute("INSERT INTO public.legacy (x) SELECT 'l' FROM generate_series(1, 7)")
    spec_path = _spec(tmp_path, source_db, target_db, "    sequences: { shared: copy }\n")
    spec = load_spec(spec_path)
    journal = Journal(spec.state_url(), operator="test", command="pytest")
    rb = Runbook(spec, journal, "shop")
    role = f"shop_app_{target_db.name}"
    try:
        copy(rb)
        carried = target_db.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'svc' ORDER BY 1"
        )
        assert [r[0] for r in carried] == [
            "global_ids", "ident_id_seq", "serials_id_seq", "shared_with_stay", "ticket_numbers",
        ]  # fmt: skip
        # The monolith draws more ids after the copy; sync brings the rows, not the sequences.
        with source_db.connect() as conn:
            _insert_all(conn, "public", 3)
        sync_step.apply(rb, until_caught_up=True)
        assert verify(rb).passed
        cutover_step.cutover(rb)
        # The service role writes with its defaults: no id the monolith used comes again.
        with psycopg.connect(target_db.dsn, user=role, password="pw", autocommit=True) as app:
            _insert_all(app, "svc", 4)
        sync_step.apply(rb, until_caught_up=True)
        rollback_step.rollback_writes(rb, reason="test")
        # And back on the monolith: no id the service used comes again.
        with source_db.connect() as conn:
            _insert_all(conn, "public", 4)
        sync_step.apply(rb, until_caught_up=True)
        for table in MOVED:
            a = source_db.execute(f"SELECT count(*), count(DISTINCT id) FROM public.{table}")
            b = target_db.execute(f"SELECT count(*), count(DISTINCT id) FROM svc.{table}")
            assert a == b == [(16, 16)], table
    finally:
        sync_step.stop(rb)
        journal.close()
