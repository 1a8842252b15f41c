"""Everything about the tables a service takes with it, read from pg_catalog.

The trick that makes the schema remap safe: every definition the server deparses for us
(defaults, CHECK and index expressions, column types, trigger definitions) is read with
``search_path`` set to the source schema alone. PostgreSQL then writes names of objects in
that schema *unqualified* and everything else (pg_catalog aside) qualified. The DDL module
runs those definitions with ``search_path`` set to the target schema, where the same types,
sequences and tables are recreated first, so unqualified names land in the service's schema
without strangler ever editing SQL text. Foreign keys are rebuilt from their parts instead,
because one that leaves the service must keep naming the monolith's table.

Usage::

    with connect(dsn) as conn:
        cat = read_catalog(conn, "public", ["orders", "order_items"])
    cat.table("orders").primary_key
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from strangler.errors import BadInput
from strangler.pg.own import OWN_SCHEMAS
from strangler.pg.schema.catalog_queries import (
    COLUMN_GRANTS,
    COLUMNS,
    CONSTRAINTS,
    GRANTS,
    INDEXES,
    NOT_NULLS,
    POLICIES,
    SEQUENCES,
    TABLES,
    TRIGGER_FUNCTIONS,
    TRIGGERS,
)
from strangler.pg.schema.catalog_types import (
    CollationDef,
    TypeDef,
    TypeFunction,
    read_collations,
    read_types,
)
from strangler.pg.schema.extensions import extension_schemas

__all__ = [
    "Catalog",
    "CollationDef",
    "Column",
    "Constraint",
    "ForeignKey",
    "Grant",
    "Index",
    "RowPolicy",
    "Sequence",
    "Table",
    "Trigger",
    "TriggerFunction",
    "TypeDef",
    "TypeFunction",
    "read_catalog",
    "sequences_called",
]


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str  # format_type() under the source search_path
    type_oid: int
    not_null: bool
    default: str | None  # pg_get_expr of the default; None for generated columns
    identity: str  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    generated: str  # '' | 's' (STORED) | 'v' (VIRTUAL, PostgreSQL 18)
    generation_expr: str | None
    collation: str | None  # its name under the source search_path, if not the type's
    comment: str | None
    inherited: bool  # a partition's (or inheritance child's) column comes from its parent
    not_null_name: str | None = None  # its NOT NULL constraint's name (PostgreSQL 18)


@dataclass(frozen=True)
class Constraint:
    """PRIMARY KEY, UNIQUE, CHECK or EXCLUDE, with the server's own definition text."""

    name: str
    kind: str  # p u c x
    definition: str
    validated: bool
    inherited: bool  # created by the parent (partitions) or inherited CHECK
    comment: str | None
    columns: tuple[str, ...]
    # PRIMARY KEY / UNIQUE: their index as pg_get_indexdef prints it, and its name, so the
    # copy can build it in parallel with the table's other indexes and attach it after.
    index_definition: str | None = None
    index_name: str | None = None
    deferrable: bool = False
    deferred: bool = False


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    match: str  # f p s
    on_update: str  # a r c n d
    on_delete: str
    deferrable: bool
    deferred: bool
    validated: bool
    inherited: bool
    comment: str | None


@dataclass(frozen=True)
class Index:
    """A plain index (not one that backs a constraint)."""

    name: str
    definition: str  # pg_get_indexdef(pretty): table unqualified when in the source schema
    comment: str | None
    inherited: bool  # attached to a partitioned parent's index


@dataclass(frozen=True)
class Sequence:
    name: str
    type_sql: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owner_table: str | None  # OWNED BY table.column (serial) or identity
    owner_column: str | None
    identity: bool
    # moved (table, column) pairs whose defaults draw from it (serial or not, shared or not)
    used_by: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Trigger:
    name: str
    definition: str
    enabled: str  # O (origin) D (disabled) R (replica) A (always)
    function: str  # the function's name, for the boundary analysis
    function_schema: str


@dataclass(frozen=True)
class TriggerFunction:
    """A trigger function in the source schema, carried along so the trigger can follow."""

    name: str
    language: str
    body: str
    security_definer: bool
    volatility: str


@dataclass(frozen=True)
class RowPolicy:
    """A row-level security policy (CREATE POLICY), carried with its table."""

    name: str
    command: str  # r (SELECT) a (INSERT) w (UPDATE) d (DELETE) * (ALL)
    permissive: bool
    roles: tuple[str, ...]  # PUBLIC for everyone
    using: str | None
    with_check: str | None


@dataclass(frozen=True)
class Grant:
    """A privilege on the table, or on some of its columns (GRANT SELECT (a, b) ON …)."""

    grantee: str
    privilege: str
    grantable: bool
    columns: tuple[str, ...] = ()  # empty: the whole table


@dataclass(frozen=True)
class Table:
    name: str
    oid: int
    kind: str  # r (table) | p (partitioned)
    unlogged: bool
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...]
    foreign_keys: tuple[ForeignKey, ...]
    indexes: tuple[Index, ...]
    triggers: tuple[Trigger, ...]
    comment: str | None
    grants: tuple[Grant, ...]
    replica_identity: str  # d n f i
    replica_index: str | None
    options: tuple[str, ...]
    partition_key: str | None  # pg_get_partkeydef for partitioned tables
    partition_of: str | None  # parent table name for a partition
    partition_bound: str | None
    estimated_rows: int
    bytes: int
    rls: bool = False  # ENABLE ROW LEVEL SECURITY
    force_rls: bool = False  # FORCE ROW LEVEL SECURITY (the owner too)
    policies: tuple[RowPolicy, ...] = ()
    inherits: tuple[str, ...] = ()  # INHERITS (parents), in order
    children: tuple[str, ...] = ()  # inheritance children (schema.table when elsewhere)
    foreign_parent: str | None = None  # an inheritance parent in another schema

    @property
    def primary_key(self) -> Constraint | None:
        return next((c for c in self.constraints if c.kind == "p"), None)

    @property
    def has_data(self) -> bool:
        """Partitioned parents hold no rows themselves; their leaves do."""
        return self.kind == "r"

    def copy_columns(self) -> tuple[str, ...]:
        """Columns whose values are copied: generated columns are computed by the target."""
        return tuple(c.name for c in self.columns if not c.generated)


@dataclass(frozen=True)
class Catalog:
    """The moved tables (partitions included, parents before children) and their types."""

    schema: str
    server_version: int
    tables: tuple[Table, ...]
    types: tuple[TypeDef, ...]  # in creation order
    sequences: tuple[Sequence, ...]
    trigger_functions: tuple[TriggerFunction, ...]
    # user types (and collations, operator classes, functions they name) outside the schema
    foreign_types: tuple[str, ...] = field(default=())
    collations: tuple[CollationDef, ...] = field(default=())
    type_functions: tuple[TypeFunction, ...] = field(default=())  # a range's subtype_diff
    # sequences the carried trigger functions call by name, as (schema, name)
    called_sequences: tuple[tuple[str, str], ...] = field(default=())

    @property
    def carried_type_oids(self) -> frozenset[int]:
        """Source OIDs of the types recreated in the target schema (and of their arrays)."""
        return frozenset(o for t in self.types for o in t.oids)

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)


# --------------------------------------------------------------------------------- reading

# nextval('name'), currval('name'), setval('name', …) in a function body; the name as the
# function would resolve it (a text cast to regclass, under the caller's search_path).
_SEQUENCE_CALL = re.compile(r"\b(?:nextval|currval|setval)\s*\(\s*'((?:[^']|'')+)'", re.I)


def sequences_called(cur: psycopg.Cursor[Any], bodies: list[str]) -> list[tuple[int, str, str]]:
    """The sequences ``bodies`` call by name, as (oid, schema, name), resolved under the
    search_path in force (the source schema): a sequence a carried trigger function draws
    from must be carried too, or the service's INSERTs fail on it."""
    names = sorted({m.replace("''", "'") for b in bodies for m in _SEQUENCE_CALL.findall(b)})
    if not names:
        return []
    rows = cur.execute(
        "SELECT c.oid, n.nspname, c.relname FROM unnest(%s::text[]) u(name) "
        "JOIN pg_class c ON c.oid = to_regclass(u.name) "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' ORDER BY 2, 3",
        (names,),
    ).fetchall()
    return [(int(r["oid"]), r["nspname"], r["relname"]) for r in rows]


def _resolve(cur: psycopg.Cursor[Any], schema: str, names: list[str]) -> list[int]:
    """The OIDs of the named tables plus all their partitions; BadInput lists what is missing."""
    cur.execute(
        "SELECT c.relname, c.oid, c.relkind FROM pg_class c "
        "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) "
        "AND c.relname = ANY(%(names)s)",
        {"schema": schema, "names": names},
    )
    found = {r["relname"]: r for r in cur.fetchall()}
    absent = cur.execute(
        "SELECT NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s) AS a", (schema,)
    ).fetchone()
    if absent and absent["a"]:
        raise BadInput(
            f"the monolith has no schema {schema!r}",
            hint="fix source.schema in the spec (it is case-sensitive)",
        )
    missing = [n for n in names if n not in found]
    not_tables = [n for n in names if n in found and found[n]["relkind"] not in ("r", "p")]
    if missing or not_tables:
        cur.execute(
            "SELECT relname FROM pg_class "
            "WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
            "AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY relname",
            (schema,),
        )
        existing = [r["relname"] for r in cur.fetchall()]
        what = []
        if missing:
            what.append("no table " + ", ".join(repr(n) for n in missing))
        if not_tables:
            what.append("not a table: " + ", ".join(repr(n) for n in not_tables))
        shown = ", ".join(existing[:30]) + (" …" if len(existing) > 30 else "")
        raise BadInput(
            f"schema {schema!r} of the monolith has {'; '.join(what)}; it has: {shown or '-'}",
            hint="fix services.<name>.tables in the spec (names are case-sensitive)",
        )
    roots = [found[n]["oid"] for n in names]
    cur.execute(
        "SELECT t.relid::oid AS oid, "
        "c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) "
        "AS same_schema, "
        "c.relname, t.level FROM unnest(%(roots)s::oid[]) r, pg_partition_tree(r) t "
        "JOIN pg_class c ON c.oid = t.relid ORDER BY t.level, c.relname",
        {"schema": schema, "roots": roots},
    )
    # pg_partition_tree is empty for a plain table: the roots come first, partitions after.
    oids: list[int] = list(roots)
    for r in cur.fetchall():
        if not r["same_schema"]:
            raise BadInput(
                f"partition {r['relname']!r} lives outside schema {schema!r}; strangler moves "
                "a partitioned table only with all its partitions in one schema"
            )
        if r["oid"] not in oids:
            oids.append(r["oid"])
    return oids


def read_catalog(conn: psycopg.Connection[Any], schema: str, names: list[str]) -> Catalog:
    """Read the named tables of ``schema`` (and their partitions) from ``conn``'s catalog.

    Runs in its own transaction unless ``conn`` is already inside one (then it reads in that
    snapshot, which is how the copy reads the catalog of the data it copies).
    """
    own_tx = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if own_tx:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            return _read(cur, schema, names, conn.info.server_version)
    finally:
        if own_tx:
            conn.execute("ROLLBACK")


def _read(cur: psycopg.Cursor[Any], schema: str, names: list[str], version: int) -> Catalog:
    # Names in the source schema come out unqualified from here on (see the module docstring),
    # and so do extensions' objects, wherever they live (see pg/schema/extensions.py).
    cur.execute(
        "SELECT set_config('search_path', array_to_string(ARRAY(SELECT quote_ident(s) FROM "
        "unnest(%s::text[]) WITH ORDINALITY u(s, o) ORDER BY o), ', '), true)",
        ([schema, *(s for s in extension_schemas(cur.connection) if s != schema)],),
    )
    oids = _resolve(cur, schema, names)
    p: dict[str, Any] = {"schema": schema, "oids": oids}
    by_oid: dict[int, dict[str, list[Any]]] = {
        o: {"cols": [], "cons": [], "fks": [], "idx": [], "trg": [], "grants": []} for o in oids
    }
    type_roots: set[int] = set()
    not_nulls: dict[tuple[int, str], str] = {}
    if version >= 180000:
        for r in cur.execute(NOT_NULLS, p).fetchall():
            # Only a name other than the one PostgreSQL would choose is worth keeping: then a
            # catalog of PostgreSQL 15 (no names) and its copy on 18 read the same. It chooses
            # the parent's name for a partition or child made under it (PARTITION OF, as the
            # copy makes them), ``<table>_<column>_not_null`` otherwise.
            chosen = r["parent_name"] or f"{r['relname']}_{r['attname']}_not_null"
            if r["conname"] != chosen:
                not_nulls[(r["conrelid"], r["attname"])] = r["conname"]
    for r in cur.execute(COLUMNS, p).fetchall():
        type_roots.add(r["type_oid"])
        by_oid[r["attrelid"]]["cols"].append(
            Column(
                r["attname"], r["type_sql"], r["type_oid"], r["attnotnull"], r["def"],
                r["identity"], r["generated"], r["gen"], r["coll"], r["comment"], r["inherited"],
                not_nulls.get((r["attrelid"], r["attname"])),
            )
        )  # fmt: skip
    policies: dict[int, list[RowPolicy]] = {}
    for r in cur.execute(POLICIES, p).fetchall():
        policies.setdefault(r["polrelid"], []).append(
            RowPolicy(r["polname"], r["cmd"], r["polpermissive"], tuple(r["roles"]),
                      r["qual"], r["with_check"])
        )  # fmt: skip
    names_by_oid = {
        r["oid"]: r["relname"]
        for r in cur.execute("SELECT oid, relname FROM pg_class WHERE oid = ANY(%s)", (oids,))
    }
    for r in cur.execute(CONSTRAINTS, p).fetchall():
        if r["kind"] == "f":
            by_oid[r["conrelid"]]["fks"].append(
                ForeignKey(
                    r["conname"], names_by_oid[r["conrelid"]], tuple(r["cols"]), r["ref_schema"],
                    r["ref_table"], tuple(r["ref_cols"]), r["match"], r["on_update"],
                    r["on_delete"], r["condeferrable"], r["condeferred"], r["convalidated"],
                    r["inherited"], r["comment"],
                )
            )  # fmt: skip
        else:
            by_oid[r["conrelid"]]["cons"].append(
                Constraint(
                    r["conname"], r["kind"], r["def"], r["convalidated"], r["inherited"],
                    r["comment"], tuple(r["cols"]), r["index_def"], r["index_name"],
                    r["condeferrable"], r["condeferred"],
                )
            )  # fmt: skip
    for r in cur.execute(INDEXES, p).fetchall():
        # A partitioned table's index deparses as "ON ONLY parent", which would not cascade
        # to the partitions; created without ONLY it builds (or attaches) theirs as well.
        only = f"INDEX {r['qname']} ON ONLY "
        definition = r["def"].replace(only, f"INDEX {r['qname']} ON ", 1)
        by_oid[r["indrelid"]]["idx"].append(
            Index(r["relname"], definition, r["comment"], r["inherited"])
        )
    trigger_fns: set[str] = set()
    for r in cur.execute(TRIGGERS, {**p, "own": list(OWN_SCHEMAS)}).fetchall():
        by_oid[r["tgrelid"]]["trg"].append(
            Trigger(r["tgname"], r["def"], r["enabled"], r["proname"], r["fschema"])
        )
        if r["fschema"] == schema:
            trigger_fns.add(r["proname"])
    for r in cur.execute(GRANTS, p).fetchall():
        by_oid[r["oid"]]["grants"].append(
            Grant(r["grantee"], r["privilege_type"], r["is_grantable"])
        )
    column_grants: dict[tuple[int, str, str, bool], list[str]] = {}
    for r in cur.execute(COLUMN_GRANTS, p).fetchall():
        key = (r["oid"], r["grantee"], r["privilege_type"], r["is_grantable"])
        column_grants.setdefault(key, []).append(r["attname"])
    for (oid, grantee, privilege, grantable), cols in column_grants.items():
        by_oid[oid]["grants"].append(Grant(grantee, privilege, grantable, tuple(cols)))
    tables_rows = {r["oid"]: r for r in cur.execute(TABLES, p).fetchall()}
    tables = []
    for oid in oids:  # parents before partitions (pg_partition_tree level order)
        r, parts = tables_rows[oid], by_oid[oid]
        tables.append(
            Table(
                name=r["relname"], oid=oid, kind=r["relkind"], unlogged=r["unlogged"],
                columns=tuple(parts["cols"]), constraints=tuple(parts["cons"]),
                foreign_keys=tuple(parts["fks"]), indexes=tuple(parts["idx"]),
                triggers=tuple(parts["trg"]), comment=r["comment"],
                grants=tuple(parts["grants"]), replica_identity=r["relreplident"],
                replica_index=r["replica_index"], options=tuple(r["options"]),
                partition_key=r["partition_key"], partition_of=r["parent"],
                partition_bound=r["bound"], estimated_rows=int(r["estimated_rows"]),
                bytes=int(r["bytes"]), rls=r["rls"], force_rls=r["force_rls"],
                policies=tuple(policies.get(oid, ())), inherits=tuple(r["inherits"]),
                children=tuple(r["children"]), foreign_parent=r["foreign_parent"],
            )
        )  # fmt: skip
    types, type_functions, foreign = read_types(cur, schema, type_roots)
    collations, foreign_collations = read_collations(cur, schema, oids, types)
    functions = [
        TriggerFunction(r["proname"], r["lanname"], r["prosrc"], r["prosecdef"], r["volatility"])
        for r in cur.execute(TRIGGER_FUNCTIONS, {**p, "names": sorted(trigger_fns)}).fetchall()
    ]
    called = sequences_called(cur, [f.body for f in functions])
    p["called"] = [c[0] for c in called]
    sequences = [
        Sequence(
            r["relname"], r["type_sql"], r["seqstart"], r["seqincrement"], r["seqmin"],
            r["seqmax"], r["seqcache"], r["seqcycle"], r["owner_table"], r["owner_column"],
            r["identity"], tuple((u[0], u[1]) for u in r["used_by"]),
        )
        for r in cur.execute(SEQUENCES, p).fetchall()
    ]  # fmt: skip
    return Catalog(
        schema=schema,
        server_version=version,
        tables=tuple(tables),
        types=tuple(types),
        sequences=tuple(sorted(sequences, key=lambda s: s.name)),
        trigger_functions=tuple(functions),
        foreign_types=tuple(sorted(foreign + foreign_collations)),
        collations=tuple(collations),
        type_functions=tuple(type_functions),
        called_sequences=tuple((c[1], c[2]) for c in called),
    )
