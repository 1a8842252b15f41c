"""Verification against real servers: every column type, every key kind, every kind of damage.

Each test creates the same tables on two databases with SQL, damages the target on purpose and
asserts the exact report: which rows are missing, extra or changed, and which columns.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.errors import BadInput
from tests.verify_helpers import both, digest, run

KINDS_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
  id int PRIMARY KEY,
  i2 smallint, i8 bigint, f4 real, f8 double precision, n numeric(12,2),
  t text, vc varchar(20), ch char(4), bo boolean, d date, ts timestamp, tstz timestamptz,
  iv interval, j jsonb, js json, ai int[], at text[], af float8[], by bytea, u uuid, m mood,
  mo money, ip inet
);
INSERT INTO kinds
SELECT g, g % 100, g::int8 * 1000000007, g / 3.0, g / 7.0, g / 3.0,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 't' || g END, 'v' || g, 'c' || (g % 10), g % 2 = 0,
       date '2020-01-01' + g, timestamp '2020-01-01' + g * interval '1 minute',
       timestamptz '2020-01-01 00:00+00' + g * interval '1 second', g * interval '1 hour',
       jsonb_build_object('k', g, 'a', jsonb_build_array(g, 'x')), json_build_object('k', g),
       ARRAY[g, g + 1], ARRAY['a' || g, NULL], ARRAY[g / 3.0::float8],
       decode(md5(g::text), 'hex'), md5(g::text)::uuid,
       (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
       g * 1.5, ('10.0.' || (g % 250) || '.1')::inet
FROM generate_series(1, 3000) g;
"""

# One damaged row per column type: (id, column, SQL expression for the new value).
COLUMN_DAMAGE = [
    (11, "i2", "i2 + 1"),
    (12, "i8", "i8 + 1"),
    (13, "f4", "f4 * 1.0000001"),
    (14, "f8", "f8 + 1e-12"),
    (15, "n", "n + 0.01"),
    (16, "t", "t || ' '"),
    (17, "vc", "upper(vc)"),
    (18, "ch", "'zz'"),
    (19, "bo", "NOT bo"),
    (21, "d", "d + 1"),
    (22, "ts", "ts + interval '1 microsecond'"),
    (23, "tstz", "tstz + interval '1 microsecond'"),
    (24, "iv", "iv + interval '1 microsecond'"),
    (25, "j", "j || '{\"z\": 1}'"),
    (26, "js", "'{\"k\":26}'"),  # same value, other text: json keeps its text
    (27, "ai", "ai || 0"),
    (28, "at", "ARRAY['a28', 'NULL']"),  # NULL element against the text 'NULL'
    (29, "af", "ARRAY[1e-300::float8]"),
    (31, "by", "by || '\\x00'::bytea"),
    (32, "u", "'00000000-0000-0000-0000-000000000032'"),
    (33, "m", "'happy'"),
    (34, "mo", "mo + '0.01'::money"),
    (35, "ip", "'10.9.9.9'"),
]


@pytest.fixture
def kinds(source_db, target_db):
    both([source_db, target_db], KINDS_DDL)
    return source_db, target_db


@pytest.mark.parametrize("whole_first", [True, False])
def test_identical_tables_of_every_type_verify_clean(kinds, tmp_path: Path, whole_first) -> None:
    src, tgt = kinds
    report = run(src, tgt, ["kinds"], tmp_path, whole_first=whole_first)
    table = report.tables[0]
    assert report.passed, report.to_dict()
    assert (table.source_rows, table.target_rows) == (3000, 3000)
    # Whole table first: one hash per side proves equal tables; otherwise every chunk.
    assert (table.chunks == 1) if whole_first else (table.chunks > 1)
    assert table.rows_fetched == 0
    assert table.method == "chunk checksums + bisection by primary key (id)"


@pytest.mark.parametrize(
    "tuning",
    [
        {},
        {"chunk_rows": 1000, "leaf_rows": 4, "fanout": 3},
        {"native_hash": False},  # the row-text hash of servers older than 14
    ],
)
def test_every_column_type_change_is_named(kinds, tmp_path: Path, tuning) -> None:
    src, tgt = kinds
    with tgt.connect() as conn:
        for row_id, column, expr in COLUMN_DAMAGE:
            conn.execute(f"UPDATE svc.kinds SET {column} = {expr} WHERE id = {row_id}")
        conn.execute("UPDATE svc.kinds SET t = 'x' WHERE id = 40")  # NULL → value
        conn.execute("UPDATE svc.kinds SET t = NULL WHERE id = 41")  # value → NULL
        conn.execute("UPDATE svc.kinds SET t = '' WHERE id = 50")  # NULL → empty string
        conn.execute("UPDATE svc.kinds SET t = 'NULL' WHERE id = 60")  # NULL → the text 'NULL'
        conn.execute("UPDATE svc.kinds SET n = 0, bo = NULL WHERE id = 42")  # two columns
        conn.execute("DELETE FROM svc.kinds WHERE id IN (100, 2999)")
        conn.execute("INSERT INTO svc.kinds (id) VALUES (3001), (0)")
    report = run(src, tgt, ["kinds"], tmp_path, **tuning)
    expected = {("changed", f"id={i}", (c,)) for i, c, _ in COLUMN_DAMAGE}
    expected |= {("changed", f"id={i}", ("t",)) for i in (40, 41, 50, 60)}
    expected |= {("changed", "id=42", ("n", "bo"))}
    expected |= {("missing", "id=100", ()), ("missing", "id=2999", ())}
    expected |= {("extra", "id=3001", ()), ("extra", "id=0", ())}
    assert digest(report) == expected
    assert report.tables[0].counts() == {"missing": 2, "extra": 2, "changed": 28}
    assert not report.passed


@pytest.mark.parametrize("native_hash", [True, False])
def test_output_settings_and_numeric_scale_do_not_matter(
    source_db, target_db, tmp_path, native_hash
) -> None:
    both([source_db, target_db], KINDS_DDL)
    # The target prints everything differently, and stores total with another scale.
    for setting, value in [
        ("timezone", "Asia/Kolkata"),
        ("datestyle", "SQL, DMY"),
        ("intervalstyle", "sql_standard"),
        ("extra_float_digits", "-3"),
        ("bytea_output", "escape"),
    ]:
        target_db.execute(f"ALTER DATABASE {target_db.name} SET {setting} = '{value}'")
    target_db.execute("ALTER TABLE svc.kinds ALTER COLUMN n TYPE numeric(20,6)")
    report = run(source_db, target_db, ["kinds"], tmp_path, native_hash=native_hash)
    assert report.passed, report.to_dict()


@pytest.mark.parametrize("native_hash", [True, False])
def test_presentation_differences_hash_alike_and_value_differences_do_not(
    source_db, target_db, tmp_path, native_hash
) -> None:
    # Same values in other types (a domain, wider integers and numerics, double for real),
    # then values equal under PostgreSQL's = that are different copies: -0 against 0.
    # An enum copied as text hashes as its label on both sides.
    source_db.execute(
        "CREATE DOMAIN amount AS numeric(12,2) CHECK (VALUE >= 0);"
        "CREATE TYPE state AS ENUM ('new', 'paid');"
        "CREATE TABLE t (id int PRIMARY KEY, a amount, i int4, r real, f float8, c char(4),"
        " s state, v varchar(9));"
        "INSERT INTO t SELECT g, g / 4.0, g, g / 8.0, 0, 'x' || g,"
        " (ARRAY['new', 'paid'])[1 + g % 2]::state, 'v' || g FROM generate_series(1, 300) g"
    )
    target_db.execute(
        "CREATE SCHEMA svc;"
        "CREATE TABLE svc.t (id int8 PRIMARY KEY, a numeric, i int8, r float8, f float8, c text,"
        " s text, v text);"
        "INSERT INTO svc.t SELECT g, g / 4.0, g, g / 8.0, 0, 'x' || g,"
        " (ARRAY['new', 'paid'])[1 + g % 2], 'v' || g FROM generate_series(1, 300) g"
    )
    clean = run(source_db, target_db, ["t"], tmp_path, native_hash=native_hash)
    assert clean.passed, clean.to_dict()
    target_db.execute("UPDATE svc.t SET f = '-0' WHERE id = 7")
    target_db.execute("UPDATE svc.t SET a = a + 0.001 WHERE id = 8")
    damaged = run(source_db, target_db, ["t"], tmp_path, native_hash=native_hash)
    assert digest(damaged) == {("changed", "id=7", ("f",)), ("changed", "id=8", ("a",))}


@pytest.mark.parametrize("native_hash", [True, False])
def test_values_swapped_between_columns_or_moved_between_rows_are_found(
    source_db, target_db, tmp_path, native_hash
) -> None:
    # Per-column hashes are combined with a seed per position: a swap must not cancel out.
    both(
        [source_db, target_db],
        "CREATE TABLE t (id int PRIMARY KEY, x int, y int, a text, b text);"
        "INSERT INTO t SELECT g, g, g * 2, 'a' || g, NULL FROM generate_series(1, 200) g;",
    )
    target_db.execute("UPDATE svc.t SET x = y, y = x WHERE id = 5")
    target_db.execute("UPDATE svc.t SET a = NULL, b = a WHERE id = 6")
    target_db.execute("UPDATE svc.t SET x = CASE id WHEN 7 THEN 8 ELSE 7 END WHERE id IN (7, 8)")
    report = run(source_db, target_db, ["t"], tmp_path, native_hash=native_hash)
    assert digest(report) == {
        ("changed", "id=5", ("x", "y")),
        ("changed", "id=6", ("a", "b")),
        ("changed", "id=7", ("x",)),
        ("changed", "id=8", ("x",)),
    }


KEY_KINDS = {
    "int": ("id int PRIMARY KEY", "g", ["id"]),
    "bigint": ("id bigint PRIMARY KEY", "1000000000000 + g::int8 * 1000003", ["id"]),
    "uuid": ("id uuid PRIMARY KEY", "md5(g::text)::uuid", ["id"]),
    # Mixed case, accents and digits: any collation would order these differently from bytes.
    "text": (
        "id text PRIMARY KEY",
        "(ARRAY['a','B','é','Z','_','ä'])[1 + g % 6] || g",
        ["id"],
    ),
    "composite": (
        "order_id int, line text, PRIMARY KEY (order_id, line)",
        "g / 3, 'L' || (g % 3)",
        ["order_id", "line"],
    ),
}


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
@pytest.mark.parametrize("tuning", [{}, {"chunk_rows": 400, "leaf_rows": 8, "fanout": 4}])
def test_each_key_kind_names_exact_rows(source_db, target_db, tmp_path, kind, tuning) -> None:
    cols, key_expr, key = KEY_KINDS[kind]
    both(
        [source_db, target_db],
        f"CREATE TABLE k ({cols}, v text, n numeric);"
        f"INSERT INTO k SELECT {key_expr}, CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || g END, g "
        "FROM generate_series(1, 2000) g;",
    )
    keys = {
        n: source_db.execute(f"SELECT {', '.join(f'{k}::text' for k in key)} FROM k WHERE n = {n}")[
            0
        ]
        for n in (50, 700, 1400, 1999)
    }
    where = {n: " AND ".join(f"{k} = %s" for k in key) for n in keys}
    with target_db.connect() as conn:
        conn.execute(f"UPDATE svc.k SET v = 'changed' WHERE {where[50]}", keys[50])
        conn.execute(f"UPDATE svc.k SET v = 'was null' WHERE {where[1400]}", keys[1400])
        conn.execute(f"DELETE FROM svc.k WHERE {where[700]}", keys[700])
        conn.execute(
            "INSERT INTO svc.k SELECT * FROM (SELECT "
            + KEY_KINDS[kind][1].replace("g", "5001")
            + ", 'new', 5001) s"
        )
    inserted = target_db.execute(
        f"SELECT {', '.join(f'{k}::text' for k in key)} FROM svc.k WHERE n = 5001"
    )[0]

    def text(values: tuple[str, ...]) -> str:
        return ", ".join(f"{k}={v}" for k, v in zip(key, values, strict=True))

    report = run(source_db, target_db, ["k"], tmp_path, **tuning)
    assert source_db.execute("SELECT v FROM k WHERE n = 1400") == [(None,)]
    assert digest(report) == {
        ("changed", text(keys[50]), ("v",)),
        ("changed", text(keys[1400]), ("v",)),
        ("missing", text(keys[700]), ()),
        ("extra", text(inserted), ()),
    }


def test_composite_key_with_few_leading_values_is_cut_on_the_next_column(
    source_db, target_db, tmp_path
) -> None:
    # Two tenants hold every row: the leading column alone cannot cut a range below 1500
    # rows, so bisection must fix the tenant and cut on id.
    both(
        [source_db, target_db],
        "CREATE TABLE acct (tenant text, id int, v text, PRIMARY KEY (tenant, id));"
        "INSERT INTO acct SELECT (ARRAY['acme', 'Zeta'])[1 + g % 2], g, 'v' || g "
        "FROM generate_series(1, 3000) g;",
    )
    tuning = {"chunk_rows": 100_000, "leaf_rows": 8, "fanout": 4}
    clean = run(source_db, target_db, ["acct"], tmp_path, **tuning)
    assert clean.passed and clean.tables[0].rows_fetched == 0
    with target_db.connect() as conn:
        conn.execute("UPDATE svc.acct SET v = 'x' WHERE tenant = 'acme' AND id = 1000")
        conn.execute("DELETE FROM svc.acct WHERE tenant = 'Zeta' AND id = 2001")
        conn.execute("INSERT INTO svc.acct VALUES ('new', 1, 'n')")  # a tenant only here
    report = run(source_db, target_db, ["acct"], tmp_path, **tuning)
    assert digest(report) == {
        ("changed", "tenant=acme, id=1000", ("v",)),
        ("missing", "tenant=Zeta, id=2001", ()),
        ("extra", "tenant=new, id=1", ()),
    }
    # Only small leaves crossed the network, not the 1500 rows of a tenant on each side.
    assert report.tables[0].rows_fetched < 100


def test_table_without_key_uses_a_weaker_multiset_hash(source_db, target_db, tmp_path) -> None:
    both(
        [source_db, target_db],
        "CREATE TABLE log (a int, b text);"
        "INSERT INTO log SELECT g % 50, 'x' FROM generate_series(1, 500) g;",
    )
    clean = run(source_db, target_db, ["log"], tmp_path)
    assert clean.passed
    assert clean.tables[0].weaker
    assert "no primary key" in clean.tables[0].method
    assert "(weaker)" in clean.markdown()

    # Replace one row with a duplicate of another: same count, different multiset.
    target_db.execute(
        "DELETE FROM svc.log WHERE ctid = (SELECT min(ctid) FROM svc.log WHERE a = 1)"
    )
    target_db.execute("INSERT INTO svc.log VALUES (2, 'x')")
    dup = run(source_db, target_db, ["log"], tmp_path)
    table = dup.tables[0]
    assert not dup.passed
    assert (table.source_rows, table.target_rows) == (500, 500)
    assert table.rows == []
    assert table.problems == [
        "whole-table multiset hash differs (source 500 rows, target 500); "
        "without a primary key the differing rows cannot be named"
    ]


def test_duplicate_key_in_a_target_without_the_constraint(source_db, target_db, tmp_path) -> None:
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);"
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g"
    )
    target_db.execute(
        "CREATE SCHEMA svc; CREATE TABLE svc.t (id int, v text);"
        "INSERT INTO svc.t SELECT g, 'v' || g FROM generate_series(1, 300) g;"
        "INSERT INTO svc.t VALUES (5, 'v5'), (6, 'other')"
    )
    report = run(source_db, target_db, ["t"], tmp_path)
    assert digest(report) == {("extra", "id=5", ()), ("extra", "id=6", ())}
    assert report.tables[0].counts() == {"missing": 0, "extra": 2, "changed": 0}


def test_counts_and_checksum_modes(source_db, target_db, tmp_path) -> None:
    both(
        [source_db, target_db],
        "CREATE TABLE t (id int PRIMARY KEY, v text);"
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;",
    )
    target_db.execute("UPDATE svc.t SET v = 'x' WHERE id = 500")
    counts = run(source_db, target_db, ["t"], tmp_path, mode="counts")
    assert counts.passed  # counts are blind to a changed value; that is why they are not proof
    assert counts.tables[0].method == "row counts"
    checksum = run(source_db, target_db, ["t"], tmp_path, mode="checksum", chunk_rows=100)
    table = checksum.tables[0]
    assert not checksum.passed
    assert table.rows == []
    assert len(table.differing_chunks) == 1
    chunk = table.differing_chunks[0]
    assert int(chunk.low or 0) <= 500 < int(chunk.high or 0)
    assert (chunk.source_rows, chunk.target_rows) == (100, 100)


def test_schema_differences_are_reported(source_db, target_db, tmp_path) -> None:
    both(
        [source_db, target_db],
        "CREATE TABLE t (id int PRIMARY KEY, v text, w int);"
        "INSERT INTO t SELECT g, 'v', g FROM generate_series(1, 10) g;",
    )
    target_db.execute("ALTER TABLE svc.t DROP COLUMN w; ALTER TABLE svc.t ADD COLUMN z int")
    source_db.execute("CREATE TABLE gone (id int PRIMARY KEY)")
    spec_tables = ["t", "gone"]
    report = run(source_db, target_db, spec_tables, tmp_path)
    t, gone = report.tables
    assert t.problems == [
        "column w is missing from the target",
        "column z exists only in the target",
    ]
    assert gone.problems == ["table svc.gone in the target does not exist"]
    assert not report.passed


def test_bad_table_and_mode_are_refused(source_db, target_db, tmp_path) -> None:
    with pytest.raises(BadInput, match="does not move table"):
        run(source_db, target_db, ["t"], tmp_path, only=["nope"])
    with pytest.raises(BadInput, match="unknown --mode"):
        run(source_db, target_db, ["t"], tmp_path, mode="fast")


@pytest.mark.pg15
def test_across_major_versions(pg15_db, target_db, tmp_path) -> None:
    both([pg15_db, target_db], KINDS_DDL)
    clean = run(pg15_db, target_db, ["kinds"], tmp_path)
    assert clean.passed, clean.to_dict()
    with target_db.connect() as conn:
        for row_id, column, expr in COLUMN_DAMAGE:
            conn.execute(f"UPDATE svc.kinds SET {column} = {expr} WHERE id = {row_id}")
        conn.execute("DELETE FROM svc.kinds WHERE id = 7")
    damaged = run(pg15_db, target_db, ["kinds"], tmp_path)
    expected = {("changed", f"id={i}", (c,)) for i, c, _ in COLUMN_DAMAGE}
    assert digest(damaged) == expected | {("missing", "id=7", ())}


def test_text_keys_are_cut_byte_wise_whatever_the_collation() -> None:
    # The test servers run with the C locale only, so this checks the SQL itself: chunk
    # boundaries and range filters of a collatable key compare under COLLATE "C".
    from strangler.verify.canonical import Column, TableShape
    from strangler.verify.chunks import KeyRange, Plan, bucket_expr, range_filter

    shape = TableShape("s", "t", (Column("id", "text", "text", True),), ("id",))
    where = range_filter(shape, "id", KeyRange("a", "b")).as_string(None)
    assert where == """"id" COLLATE "C" >= 'a'::text AND "id" COLLATE "C" < 'b'::text"""
    bucket = bucket_expr(shape, "id", Plan(bounds=("m",))).as_string(None)
    assert bucket.startswith('width_bucket("id" COLLATE "C", ')
    ints = TableShape("s", "t", (Column("id", "integer", "int4", False),), ("id",))
    assert "COLLATE" not in range_filter(ints, "id", KeyRange("1", None)).as_string(None)


def test_unreadable_target_is_a_clear_error_without_the_password(
    source_db, target_db, tmp_path
) -> None:
    both([source_db, target_db], "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
    target_db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'verify_reader') THEN "
        "CREATE ROLE verify_reader LOGIN PASSWORD 'Sup3r-secret-pw'; END IF; END $$;"
        "GRANT USAGE ON SCHEMA svc TO verify_reader"
    )
    from strangler.errors import CheckFailed
    from strangler.steps.verify import verify_service
    from tests.verify_helpers import make_spec

    reader = target_db.instance.dsn(
        target_db.name, user="verify_reader", password="Sup3r-secret-pw"
    )
    spec = make_spec(source_db.dsn, reader, ["t"], tmp_path / "s.db")
    with pytest.raises(CheckFailed, match="could not verify t: permission denied") as refused:
        verify_service(spec, "svc")
    assert "Sup3r-secret-pw" not in str(refused.value)
    assert refused.value.hint is not None and "SELECT" in refused.value.hint


def test_classify_pairs_rows_by_key_and_hash() -> None:
    from strangler.verify.rows import classify

    src = {("1",): ["a"], ("2",): ["b"], ("3",): ["c"], ("10",): ["x"]}
    tgt = {("1",): ["a"], ("2",): ["B"], ("3",): ["c", "c"], ("4",): ["d"], ("10",): ["x"]}
    found = [(r.kind, r.key) for r in classify(("id",), src, tgt)]
    assert found == [
        ("changed", {"id": "2"}),
        ("extra", {"id": "3"}),  # the same row twice where no key forbids it
        ("extra", {"id": "4"}),
    ]
    assert [(r.kind, r.key) for r in classify(("id",), tgt, src)][-1] == ("missing", {"id": "4"})


WIDTHS_DDL = """
CREATE TABLE wide (id int PRIMARY KEY, body text NOT NULL, doc jsonb NOT NULL);
CREATE TABLE narrow (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL);
INSERT INTO wide SELECT g, repeat(md5(g::text), 6), jsonb_build_object('g', g, 'm', md5(g::text))
FROM generate_series(1, 4000) g;
INSERT INTO narrow SELECT g, g % 7, g % 11 FROM generate_series(1, 4000) g;
ANALYZE wide, narrow;
"""


def test_the_first_scan_follows_the_row_width(source_db, target_db, tmp_path: Path) -> None:
    """Wide rows are numbered in chunks at once (a difference costs no second scan), narrow
    rows hashed whole first (equal costs one plain scan); both find every difference."""
    both([source_db, target_db], WIDTHS_DDL)
    equal = run(source_db, target_db, ["wide", "narrow"], tmp_path)
    assert equal.passed, equal.to_dict()
    first = {t.source: (t.first_pass, t.chunks) for t in equal.tables}
    assert first["public.wide"][0] == "chunks" and first["public.wide"][1] > 1
    assert first["public.narrow"] == ("whole table", 1)
    with target_db.connect() as conn:
        for table in ("wide", "narrow"):
            col = "body" if table == "wide" else "a"
            conn.execute(
                f"UPDATE svc.{table} SET {col} = "
                + ("body || 'x'" if table == "wide" else "a + 1")
                + " WHERE id IN (5, 1500, 3999)"
            )
            conn.execute(f"DELETE FROM svc.{table} WHERE id = 2000")
    found = run(source_db, target_db, ["wide", "narrow"], tmp_path)
    col = {"wide": "body", "narrow": "a"}
    for table in found.tables:
        name = table.source.removeprefix("public.")
        assert {(r.kind, r.key_text(), r.columns) for r in table.rows} == {
            ("changed", "id=5", (col[name],)),
            ("changed", "id=1500", (col[name],)),
            ("changed", "id=3999", (col[name],)),
            ("missing", "id=2000", ()),
        }
        assert table.first_pass == ("chunks" if name == "wide" else "whole table")
    forced = run(source_db, target_db, ["narrow"], tmp_path, whole_first=False)
    assert forced.tables[0].first_pass == "chunks" and len(forced.tables[0].rows) == 4
