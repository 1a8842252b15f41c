"""A monolith schema that uses every feature the copy must carry, and helpers to compare."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import psycopg

from strangler.journal import Journal
from strangler.pg.schema.catalog import read_catalog
from strangler.spec import Spec, load_spec
from strangler.steps.copy import copy
from strangler.steps.runbook import Runbook

RICH_TABLES = ["orders", "Order Items", "events", "audit_log", "empty_one", "price_bands"]

RICH_SCHEMA = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
        CREATE ROLE reporting NOLOGIN;
    END IF;
END $$;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
-- libc collations built on C/POSIX exist on every server; ICU has its own test
CREATE COLLATION c_sort (locale = 'C');
COMMENT ON COLLATION c_sort IS 'byte order';
CREATE COLLATION posix_sort (lc_collate = 'POSIX', lc_ctype = 'POSIX');
CREATE DOMAIN sku AS text COLLATE c_sort CONSTRAINT sku_not_blank CHECK (VALUE <> '');
CREATE FUNCTION price_diff(a numeric, b numeric) RETURNS float8
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE RETURN (a - b)::float8;
CREATE TYPE price_range AS RANGE (subtype = numeric, subtype_diff = price_diff);
COMMENT ON TYPE price_range IS 'a band of prices';
CREATE TYPE code_range AS RANGE (subtype = text, collation = c_sort,
                                 subtype_opclass = text_pattern_ops,
                                 multirange_type_name = code_bands);
CREATE TYPE float_range AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE DOMAIN posint AS integer DEFAULT 1 CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE TYPE address AS (street text, zip text, moods mood[]);
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
  $f$ BEGIN NEW.updated_at := now(); RETURN NEW; END $f$;
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 2) PRIMARY KEY,
  customer_id bigint REFERENCES customers (id),
  status mood NOT NULL DEFAULT 'ok',
  qty posint,
  ship address,
  tags text[] NOT NULL DEFAULT '{}',
  moods mood[],
  name text COLLATE "C",
  total numeric(10, 2) CONSTRAINT orders_total_check CHECK (total >= 0),
  total_with_tax numeric GENERATED ALWAYS AS (total * 1.2) STORED,
  during tstzrange,
  price_history price_range[],
  weights float_range,
  updated_at timestamptz DEFAULT now(),
  CONSTRAINT orders_name_key UNIQUE (name) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT orders_ship_key UNIQUE (id, status) INCLUDE (qty)
    WITH (fillfactor = 70),
  CONSTRAINT orders_no_overlap EXCLUDE USING gist (during WITH &&)
) WITH (fillfactor = 90);
ALTER TABLE orders ADD CONSTRAINT orders_qty_small CHECK (qty < 1000) NOT VALID;
COMMENT ON TABLE orders IS 'One order; it''s moving.';
COMMENT ON COLUMN orders.status IS 'where the order is';
COMMENT ON CONSTRAINT orders_total_check ON orders IS 'no refunds here';
CREATE INDEX orders_open_idx ON orders (status) WHERE status <> 'sad';
CREATE INDEX orders_lower_name_idx ON orders (lower(name));
CREATE UNIQUE INDEX orders_customer_incl_idx ON orders (customer_id, id) INCLUDE (status);
COMMENT ON INDEX orders_open_idx IS 'open orders';
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER orders_touch_off BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE orders DISABLE TRIGGER orders_touch_off;
GRANT SELECT ON orders TO reporting;
GRANT UPDATE (status, name) ON orders TO reporting;
CREATE TABLE "Order Items" (
  id serial PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  "Note; DROP TABLE customers" text
);
CREATE INDEX "Order Items_order_idx" ON "Order Items" (order_id);
CREATE TABLE events (
  id bigint NOT NULL, at timestamptz NOT NULL, payload jsonb, PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_rest PARTITION OF events DEFAULT;
CREATE INDEX events_payload_idx ON events USING gin (payload);
CREATE TABLE audit_log (at timestamptz NOT NULL DEFAULT now(), line text);
ALTER TABLE audit_log REPLICA IDENTITY FULL;
CREATE TABLE empty_one (id bigserial PRIMARY KEY, v integer);
CREATE TABLE price_bands (
  id integer PRIMARY KEY,
  band price_range NOT NULL DEFAULT price_range(0, 1),
  bands price_multirange,
  codes code_range,
  code_set code_bands,
  label text COLLATE c_sort,
  sku sku,
  note text
);
CREATE INDEX price_bands_note_idx ON price_bands (note COLLATE posix_sort);
CREATE INDEX price_bands_band_idx ON price_bands USING gist (band);
GRANT SELECT (id, label), UPDATE (note) ON price_bands TO reporting;
GRANT INSERT (note) ON price_bands TO reporting WITH GRANT OPTION;
CREATE VIEW order_names AS SELECT id, name FROM orders;
CREATE TABLE invoices (id serial PRIMARY KEY, order_id bigint REFERENCES orders (id));
"""

RICH_DATA = """
INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 50) g;
INSERT INTO orders (customer_id, status, qty, ship, tags, moods, name, total, during,
                    price_history, weights)
SELECT 1 + g % 50, (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], 1 + g % 20,
       CASE WHEN g % 5 = 0 THEN NULL ELSE ROW('street ' || g, lpad(g::text, 5, '0'),
            ARRAY['ok','happy']::mood[])::address END,
       CASE WHEN g % 2 = 0 THEN ARRAY['a', 'b c', NULL] ELSE '{}' END,
       CASE WHEN g % 3 = 0 THEN ARRAY['sad']::mood[] END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'name ' || g || E'\\t"quoted"' END,
       g * 1.5,
       tstzrange(timestamptz '2024-01-01' + g * interval '1 hour',
                 timestamptz '2024-01-01' + (g + 1) * interval '1 hour'),
       CASE WHEN g % 4 = 0 THEN ARRAY[price_range(1, g), 'empty', NULL]::price_range[] END,
       CASE WHEN g % 6 <> 0 THEN float_range(g / 3.0, NULL, '()') END
FROM generate_series(1, {n}) g;
INSERT INTO price_bands (id, band, bands, codes, code_set, label, sku, note)
SELECT g,
       CASE g % 4 WHEN 0 THEN 'empty'::price_range WHEN 1 THEN price_range(g, NULL)
                  ELSE price_range(g * 0.5, g + 10.25, '[]') END,
       CASE WHEN g % 3 <> 0 THEN price_multirange(price_range(0, g), price_range(g + 5, g + 9)) END,
       code_range('a' || g, 'b' || g),
       code_bands(code_range('A', 'B'), code_range('a' || g, NULL)),
       CASE WHEN g % 5 <> 0 THEN 'Label ' || g END,
       'SKU-' || g,
       'note ' || g
FROM generate_series(1, {n}) g;
INSERT INTO "Order Items" (order_id, "Note; DROP TABLE customers")
SELECT o.id, 'note ' || i FROM orders o, generate_series(1, 2) i;
INSERT INTO events
SELECT g, timestamptz '2023-12-01' + g * interval '1 day', jsonb_build_object('g', g)
FROM generate_series(1, 100) g;
INSERT INTO audit_log (line) SELECT 'line ' || g FROM generate_series(1, 30) g;
"""


def build_rich(dsn: str, n: int = 500) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RICH_SCHEMA.encode())
        conn.execute(RICH_DATA.replace("{n}", str(int(n))).encode())
        conn.execute("ANALYZE")


def write_service_spec(
    tmp: Path,
    source_dsn: str,
    target_dsn: str | None,
    *,
    tables: list[str] | None = None,
    schema: str = "order_service",
    role: str | None = None,
    leaving: str = "drop",
    strategy: str = "copy",  # online makes the copy create a sync slot (tests/test_online_copy)
) -> tuple[Path, str]:
    role = role or "svc_" + uuid.uuid4().hex[:10]
    import json

    text = f"""version: 1
state: sqlite:///{tmp}/state.db
source:
  dsn: {json.dumps(source_dsn)}
  schema: public
services:
  order_service:
    tables: {json.dumps(tables or RICH_TABLES)}
    target:
      {"dsn: " + json.dumps(target_dsn) if target_dsn else ""}
      schema: {json.dumps(schema)}
      role: {{ name: {json.dumps(role)}, password: "pw-{uuid.uuid4().hex[:8]}" }}
    strategy: {strategy}
    foreign_keys: {{ leaving: {leaving} }}
"""
    path = tmp / "strangler.yaml"
    path.write_text(text)
    return path, role


def runbook(spec_path: Path) -> tuple[Spec, Journal, Runbook]:
    spec = load_spec(spec_path)
    journal = Journal(spec.state_url(), operator="test", command="pytest")
    return spec, journal, Runbook(spec, journal, "order_service")


def normalized(dsn: str, schema: str, tables: list[str], *, drop_grantee: str | None = None) -> Any:
    """The catalog of ``tables`` with everything instance-specific taken out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cat = read_catalog(conn, schema, tables)
    data = dataclasses.asdict(cat)
    data.pop("schema")
    data.pop("server_version")
    for ty in data["types"]:
        ty.pop("oids")
    for t in data["tables"]:
        for key in ("oid", "estimated_rows", "bytes"):
            t.pop(key)
        for c in t["columns"]:
            c.pop("type_oid")
        t["grants"] = [g for g in t["grants"] if g["grantee"] != drop_grantee]
        for fk in t["foreign_keys"]:
            fk["ref_schema"] = fk["ref_schema"] == schema or fk["ref_schema"]
        for trg in t["triggers"]:
            trg["function_schema"] = trg["function_schema"] == schema
    return data


def rows_of(dsn: str, schema: str, table: str, order: str = "1") -> list[tuple[Any, ...]]:
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(
            sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
                sql.Identifier(schema, table), sql.SQL(order)
            )
        ).fetchall()


# What the service schema holds and leans on, read straight from pg_catalog (not through
# strangler's catalog reader, so a reader that overlooks something cannot hide it).
_FACTS = {
    "collations": """
        SELECT collname, collprovider::text, collcollate, collctype, collisdeterministic
        FROM pg_collation WHERE collnamespace = %(schema)s::regnamespace ORDER BY 1""",
    "ranges": """
        SELECT t.typname, format_type(r.rngsubtype, NULL), oc.opcname, co.collname,
               p.proname, mt.typname
        FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid
        JOIN pg_opclass oc ON oc.oid = r.rngsubopc
        LEFT JOIN pg_collation co ON co.oid = r.rngcollation
        LEFT JOIN pg_proc p ON p.oid = r.rngsubdiff
        JOIN pg_type mt ON mt.oid = r.rngmultitypid
        WHERE t.typnamespace = %(schema)s::regnamespace ORDER BY 1""",
    "column_acls": """
        SELECT c.relname, a.attname, coalesce(g.rolname, 'PUBLIC'), x.privilege_type,
               x.is_grantable
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        CROSS JOIN LATERAL aclexplode(a.attacl) x LEFT JOIN pg_roles g ON g.oid = x.grantee
        WHERE c.relnamespace = %(schema)s::regnamespace AND x.grantee <> c.relowner
          AND coalesce(g.rolname, '') <> %(skip)s
        ORDER BY 1, 2, 3, 4""",
    # what objects of the schema depend on in another user schema (same instance: the monolith)
    "leaks": """
        SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid),
               pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
        FROM pg_depend d
        CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, d.refobjsubid) r
        WHERE r.schema NOT IN (%(schema)s, 'pg_catalog', 'information_schema')
          AND CASE d.classid
            WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = d.objid)
            WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef ad
                JOIN pg_class c ON c.oid = ad.adrelid WHERE ad.oid = d.objid)
            WHEN 'pg_constraint'::regclass
                THEN (SELECT connamespace FROM pg_constraint WHERE oid = d.objid)
            WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = d.objid)
            WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = d.objid)
            WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger tg
                JOIN pg_class c ON c.oid = tg.tgrelid WHERE tg.oid = d.objid)
          END = %(schema)s::regnamespace
        ORDER BY 1, 2""",
}


def schema_facts(dsn: str, schema: str, *, skip_role: str = "") -> dict[str, list[Any]]:
    """Collations, range types and column privileges of ``schema``, and what of another
    schema its objects depend on, straight from pg_catalog."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        p = {"schema": schema, "skip": skip_role}
        return {k: conn.execute(q.encode(), p).fetchall() for k, q in _FACTS.items()}


def copy_service(rb: Runbook, **kw: Any) -> dict[str, Any]:
    """``strangler copy`` through the library, as the JSON the CLI prints."""
    return copy(rb, **kw).to_dict()
