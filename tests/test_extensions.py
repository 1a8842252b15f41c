"""Extensions the moved tables use (issue 12): in the monolith's own schema and in one of
their own; types, operator classes and functions of them in columns, indexes, defaults and a
carried trigger function. ``plan`` lists what the target lacks with the exact statement,
``copy`` refuses before the service schema exists (so before any row), creates them when the
spec allows, and every reference then points to where the extension lives on the target."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.extract_world import normalized, rows_of
from tests.fix_pg import Db

WORLD = """
CREATE EXTENSION citext;
CREATE EXTENSION pg_trgm;
CREATE EXTENSION btree_gin;
CREATE SCHEMA ext;
CREATE EXTENSION hstore SCHEMA ext;
CREATE FUNCTION score() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.score := similarity(NEW.name, 'strangler'); RETURN NEW; END $$;
CREATE TABLE people (
    id serial PRIMARY KEY,
    email citext UNIQUE NOT NULL,
    emails citext[],
    name text NOT NULL,
    attrs ext.hstore DEFAULT ext.hstore('k', 'v'),
    score real
);
CREATE INDEX people_name_trgm ON people USING gin (name gin_trgm_ops);
CREATE INDEX people_id_gin ON people USING gin (id);
CREATE INDEX people_attrs ON people USING gist (attrs);
CREATE TRIGGER people_score BEFORE INSERT OR UPDATE ON people
  FOR EACH ROW EXECUTE FUNCTION score();
INSERT INTO people (email, emails, name)
SELECT 'P' || g || '@Example.org', ARRAY['A' || g || '@x.org']::citext[], 'name ' || g
FROM generate_series(1, 300) g;
"""

SPEC = """\
version: 1
state: sqlite:///{tmp}/state.db
source: {{ dsn: "{source}", schema: public }}
services:
  people:
    tables: [people]
    target:
      {target}schema: people_svc
      role: {{ name: {role}, password: "pw" }}
{extra}"""


def _spec(tmp_path: Path, source: Db, target: Db | None, role: str, extra: str = "") -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(
        SPEC.format(
            tmp=tmp_path, source=source.dsn, role=role, extra=extra,
            target=f"dsn: {json.dumps(target.dsn)}\n      " if target else "",
        )
    )  # fmt: skip
    return path


def _service_writes(dsn: str, role: str) -> None:
    """The service role inserts through the carried trigger (an extension's function, found
    at run time through the role's search_path) and uses the extension's index and type."""
    with psycopg.connect(dsn, user=role, password="pw", autocommit=True) as app:
        app.execute("INSERT INTO people (email, name) VALUES ('NEW@example.org', 'strangler')")
        row = app.execute(
            "SELECT score, email = 'new@EXAMPLE.org' FROM people WHERE name % 'strangler'"
        ).fetchone()
        assert row == (1.0, True)


def test_plan_lists_missing_extensions_and_copy_refuses_before_anything(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    source_db.execute(WORLD)
    spec = _spec(tmp_path, source_db, target_db, f"people_{target_db.name}")
    planned = cli("plan", "people", "-f", str(spec), "--output", "json")
    assert planned.code == 0, planned.stderr
    found = {e["extension"]: e for e in planned.json()["services"][0]["boundary"]["extensions"]}
    assert sorted(found) == ["btree_gin", "citext", "hstore", "pg_trgm"]
    assert found["citext"]["target"] == (
        'missing; run: CREATE EXTENSION IF NOT EXISTS "citext" WITH SCHEMA "public";'
    )
    assert any("gin_trgm_ops" in u for u in found["pg_trgm"]["uses"])
    assert found["hstore"]["monolith"].endswith("in schema ext")
    refused = cli("copy", "people", "-f", str(spec))
    assert refused.code == 2, refused.stderr
    assert 'CREATE EXTENSION IF NOT EXISTS "pg_trgm" WITH SCHEMA "public";' in refused.stderr
    assert "extensions: {create: true}" in refused.stderr
    assert target_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'people_svc'") == [
        (0,)
    ]
    assert target_db.execute("SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'") == [
        (0,)
    ]


def test_copy_creates_them_and_every_reference_resolves_on_the_target(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    source_db.execute(WORLD)
    role = f"people_{target_db.name}"
    spec = _spec(tmp_path, source_db, target_db, role, "    extensions: { create: true }\n")
    copied = cli("copy", "people", "-f", str(spec), "--output", "json")
    assert copied.code == 0, copied.stderr
    # hstore lived in schema ext on the monolith; the target has no such schema, so it went
    # to public, and every reference to it resolves there.
    assert target_db.execute(
        "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n "
        "ON n.oid = e.extnamespace WHERE extname <> 'plpgsql' ORDER BY 1"
    ) == [
        ("btree_gin", "public"),
        ("citext", "public"),
        ("hstore", "public"),
        ("pg_trgm", "public"),
    ]
    assert normalized(source_db.dsn, "public", ["people"]) == normalized(
        target_db.dsn, "people_svc", ["people"], drop_grantee=role
    )
    assert rows_of(source_db.dsn, "public", "people") == rows_of(
        target_db.dsn, "people_svc", "people"
    )
    _service_writes(target_db.dsn, role)


def test_same_instance_refers_to_the_monoliths_extensions(
    source_db: Db, tmp_path: Path, cli
) -> None:
    source_db.execute(WORLD)
    role = f"people_{source_db.name}"
    spec = _spec(tmp_path, source_db, None, role)
    copied = cli("copy", "people", "-f", str(spec))
    assert copied.code == 0, copied.stderr
    assert normalized(source_db.dsn, "public", ["people"]) == normalized(
        source_db.dsn, "people_svc", ["people"], drop_grantee=role
    )
    _service_writes(source_db.dsn, role)
