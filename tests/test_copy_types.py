"""Types and collations of the monolith's own schema: ICU collations, ranges in binary COPY,
what cannot be carried (issue 3). The rich world of tests/extract_world.py covers the rest."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from strangler.errors import BadInput
from strangler.pg.copy.chunks import binary_safe
from strangler.pg.schema.catalog import read_catalog
from tests.extract_world import (
    build_rich,
    copy_service,
    normalized,
    rows_of,
    runbook,
    schema_facts,
    write_service_spec,
)
from tests.fix_pg import Db

ICU_WORLD = """
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE people (id integer PRIMARY KEY, name text COLLATE ci NOT NULL, nick text);
CREATE UNIQUE INDEX people_name_key ON people (name);
INSERT INTO people SELECT g, 'Name ' || g, CASE WHEN g % 2 = 0 THEN 'NICK ' || g END
FROM generate_series(1, 50) g;
"""


def _icu_missing(db: Db) -> str | None:
    """Why ``db``'s server cannot make ICU collations, or None when it can."""
    with db.connect() as conn:
        conn.execute("BEGIN")
        try:
            conn.execute("CREATE COLLATION icu_probe (provider = icu, locale = 'und')")
        except psycopg.errors.FeatureNotSupported as exc:
            return f"PostgreSQL {conn.info.server_version // 10000} here: {exc}"
        finally:
            conn.execute("ROLLBACK")
    return None


@pytest.mark.parametrize(
    "servers",
    [
        pytest.param(("pg15_db", None), marks=pytest.mark.pg15, id="15-same-instance"),
        pytest.param(("source_db", "target_db"), id="18-to-18"),
        pytest.param(("pg15_db", "target_db"), marks=pytest.mark.pg15, id="15-to-18"),
    ],
)
def test_icu_collation_is_carried(
    servers: tuple[str, str | None], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source: Db = request.getfixturevalue(servers[0])
    target: Db = request.getfixturevalue(servers[1]) if servers[1] else source
    for db in {source.instance.data_dir: source, target.instance.data_dir: target}.values():
        if why := _icu_missing(db):
            pytest.skip(f"ICU collations need ICU on both servers; {why}")
    source.execute(ICU_WORLD)
    spec, role = write_service_spec(
        tmp_path, source.dsn, None if target is source else target.dsn, tables=["people"]
    )
    _, journal, rb = runbook(spec)
    copy_service(rb, jobs=2, chunk_rows=20)
    journal.close()
    before = normalized(source.dsn, "public", ["people"])
    after = normalized(target.dsn, "order_service", ["people"], drop_grantee=role)
    assert [(c["name"], c["provider"], c["deterministic"]) for c in before["collations"]] == [
        ("ci", "i", False)
    ]
    assert before == after
    assert schema_facts(target.dsn, "order_service")["leaks"] == []
    assert rows_of(source.dsn, "public", "people") == rows_of(target.dsn, "order_service", "people")
    # the service's copy compares as the monolith's does: case-insensitively
    with pytest.raises(psycopg.errors.UniqueViolation):
        target.execute("INSERT INTO order_service.people VALUES (999, 'NAME 1')")


@pytest.mark.pg15
def test_icu_collation_to_a_server_without_icu_says_so(
    pg15_db: Db, target_db: Db, tmp_path: Path
) -> None:
    if why := _icu_missing(pg15_db):
        pytest.skip(f"the monolith needs ICU for this test; {why}")
    if _icu_missing(target_db) is None:
        pytest.skip("the target server has ICU; test_icu_collation_is_carried covers it")
    pg15_db.execute(ICU_WORLD)
    spec, _ = write_service_spec(tmp_path, pg15_db.dsn, target_db.dsn, tables=["people"])
    _, journal, rb = runbook(spec)
    with pytest.raises(BadInput, match=r"cannot create collation:ci .*ICU.*nothing was changed"):
        copy_service(rb, jobs=1)
    journal.close()
    assert target_db.execute("SELECT to_regnamespace('order_service')") == [(None,)]


def test_ranges_over_built_ins_travel_as_binary(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """A range's binary form holds only its bounds' values; an array of ranges names the
    range type's OID, which is the monolith's own, so it travels as text."""
    build_rich(source_db.dsn, n=60)
    source_db.execute("CREATE TABLE price_lists (id integer PRIMARY KEY, bands price_range[])")
    source_db.execute(
        "INSERT INTO price_lists SELECT g, ARRAY[price_range(g, g + 1), 'empty'] "
        "FROM generate_series(1, 30) g"
    )
    with psycopg.connect(source_db.dsn, autocommit=True) as conn:
        cat = read_catalog(conn, "public", ["price_bands", "price_lists", "orders"])
        assert binary_safe(conn, cat) == {
            "price_bands": True,  # ranges, multiranges, a domain over text
            "price_lists": False,
            "orders": False,  # composite
        }
    for tables, formats in ((["price_bands"], ["binary"]), (["price_lists"], ["text"])):
        target_db.execute("DROP SCHEMA IF EXISTS order_service CASCADE")
        spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=tables)
        (tmp_path / "state.db").unlink(missing_ok=True)
        _, journal, rb = runbook(spec)
        result = copy_service(rb, jobs=2, chunk_rows=20)
        journal.close()
        assert result["formats"] == formats
        assert rows_of(source_db.dsn, "public", tables[0]) == rows_of(
            target_db.dsn, "order_service", tables[0]
        )


def test_a_range_with_a_canonical_function_cannot_be_carried(source_db: Db) -> None:
    # Only a C function can be a range's canonical function; set one in the catalog instead
    # of building an extension (a throwaway database, the server itself is real).
    source_db.execute(
        "CREATE TYPE slots AS RANGE (subtype = integer); "
        "UPDATE pg_range SET rngcanonical = 'int4range_canonical'::regproc "
        "WHERE rngtypid = 'slots'::regtype; "
        "CREATE TABLE bookings (id integer PRIMARY KEY, slot slots)"
    )
    with (
        psycopg.connect(source_db.dsn, autocommit=True) as conn,
        pytest.raises(BadInput, match="range type 'slots' has a canonical function"),
    ):
        read_catalog(conn, "public", ["bookings"])


def test_collations_and_ranges_of_other_schemas_are_named_not_copied(source_db: Db) -> None:
    source_db.execute(
        "CREATE SCHEMA shared; CREATE COLLATION shared.bytes (locale = 'C'); "
        "CREATE TYPE shared.span AS RANGE (subtype = integer); "
        "CREATE TABLE things (id integer PRIMARY KEY, label text COLLATE shared.bytes, "
        "during shared.span)"
    )
    with psycopg.connect(source_db.dsn, autocommit=True) as conn:
        cat = read_catalog(conn, "public", ["things"])
    assert cat.collations == () and cat.types == ()
    assert cat.foreign_types == ("shared.bytes (collation)", "shared.span")
    label = next(c for c in cat.tables[0].columns if c.name == "label")
    assert label.collation == "shared.bytes"


def test_a_default_calling_a_range_constructor_is_carried_again_elsewhere(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    """The boundary looks at the moved tables' own expressions only: a same-instance copy's
    tables of the same names (their defaults call that schema's range constructors) do not
    stop the next copy of the monolith's tables."""
    build_rich(source_db.dsn, n=10)
    for target in (None, target_db.dsn):
        (tmp_path / "state.db").unlink(missing_ok=True)
        spec, _ = write_service_spec(tmp_path, source_db.dsn, target, tables=["price_bands"])
        _, journal, rb = runbook(spec)
        copy_service(rb, jobs=1)
        journal.close()
        assert rows_of(source_db.dsn, "public", "price_bands") == rows_of(
            target or source_db.dsn, "order_service", "price_bands"
        )
    default = target_db.execute(
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
        "WHERE adrelid = 'order_service.price_bands'::regclass"
    )
    assert default == [("order_service.price_range((0)::numeric, (1)::numeric)",)]


def test_a_subtype_diff_with_a_quoted_name_and_a_string_body_is_carried(
    source_db: Db, tmp_path: Path
) -> None:
    source_db.execute(
        'CREATE FUNCTION "Gap"(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE '
        "AS $$ BEGIN RETURN a - b; END $$; "
        'CREATE TYPE "Span" AS RANGE (subtype = float8, subtype_diff = "Gap"); '
        'CREATE TABLE spans (id integer PRIMARY KEY, s "Span", ss "Span"[]); '
        "INSERT INTO spans SELECT g, '[1,2)', ARRAY['(,3]']::\"Span\"[] "
        "FROM generate_series(1, 5) g"
    )
    spec, role = write_service_spec(tmp_path, source_db.dsn, None, tables=["spans"])
    _, journal, rb = runbook(spec)
    copy_service(rb, jobs=1)
    journal.close()
    before = normalized(source_db.dsn, "public", ["spans"])
    assert [(f["name"], f["language"]) for f in before["type_functions"]] == [("Gap", "plpgsql")]
    assert before == normalized(source_db.dsn, "order_service", ["spans"], drop_grantee=role)
    assert schema_facts(source_db.dsn, "order_service")["leaks"] == []
    assert rows_of(source_db.dsn, "public", "spans") == rows_of(
        source_db.dsn, "order_service", "spans"
    )
