"""The zero-copy move (``strategy: move``): a service's tables change schema in place on the
monolith's own instance, and the monolith keeps working unchanged through views.

One short transaction, after ``CREATE SCHEMA`` and the service role:

1. ``LOCK TABLE … IN ACCESS EXCLUSIVE MODE`` on every moved table (partitions included), with
   a short ``lock_timeout``, retried: a lock that waits holds up every statement queued behind
   it, so a wait is given up quickly and tried again rather than stalling the monolith.
2. ``ALTER TABLE … SET SCHEMA`` for each: its indexes, constraints, triggers, rules, grants,
   row type and identity sequences go with it; foreign keys in and out stay (they are bound
   by OID), and so do the monolith's views over the tables, which now read the service's.
3. A **compatibility view** under each old name, ``CREATE VIEW public.orders AS SELECT
   <every column> FROM order_service.orders``: a single-table projection, so automatically
   updatable (INSERT … RETURNING, UPDATE, DELETE, ON CONFLICT (columns), column defaults and
   the sequences behind them all go through; INSTEAD OF triggers are never needed, and would
   lose ON CONFLICT). Owned by the table's owner and given the table's grants, table and
   column level, so the monolith's roles may do through it exactly what they could do to
   the table. A table under row-level security gets ``security_invoker`` instead, so its
   policies still see the monolith's role (PostgreSQL 15+); column grants cannot then be
   kept (such a view checks every column it selects against the caller), so that
   combination is refused.
4. A serial column's sequence stays in the monolith's schema under its name (``OWNED BY
   NONE`` for now): the monolith's code may call ``nextval('orders_id_seq')``. It joins the
   service's schema when the old path is removed (:mod:`strangler.pg.schema.compat`).
5. The service role's grants, and a check that every view is updatable.

What a view cannot give (``plan`` says so): system columns (``xmin``, ``ctid``), ``ON
CONFLICT ON CONSTRAINT name`` (a view has no constraints), ``pg_get_serial_sequence`` on the
old name. :func:`read_move` only reads; the statements and the locked transaction that runs
them are in :mod:`strangler.pg.schema.move_sql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.errors import BadInput
from strangler.pg.schema.boundary import Reference, analyze
from strangler.pg.schema.catalog import Catalog, Grant, read_catalog
from strangler.pg.schema.prepare import RoleRequest, role_plan, schema_state
from strangler.pg.schema.role import RolePlan

__all__ = [
    "MIN_VERSION",
    "VIEW_MARK",
    "KeptSequence",
    "MovePlan",
    "MoveResult",
    "Moved",
    "MovedRelation",
    "read_move",
    "view_comment",
]

MIN_VERSION = 150000  # security_invoker views (tables under row-level security)
VIEW_MARK = "strangler move:"  # how a compatibility view's comment begins (and is recognised)


def view_comment(target_schema: str, table: str) -> str:
    return (
        f"{VIEW_MARK} compatibility view of {target_schema}.{table} for the monolith's code; "
        "it goes when the old path is removed"
    )


@dataclass(frozen=True)
class MovedRelation:
    """A table (or partition) that moves, and what its compatibility view carries."""

    name: str
    kind: str  # r | p
    partition_of: str | None
    columns: tuple[str, ...]
    grants: tuple[Grant, ...]
    owner: str
    invoker: bool = False  # row-level security: a security_invoker view

    def sees(self, schema: str) -> str:
        rights = "security_invoker, for row-level security" if self.invoker else "owner's rights"
        return f"view {schema}.{self.name} (auto-updatable, {rights})"


@dataclass(frozen=True)
class KeptSequence:
    """A serial column's sequence: stays in the monolith's schema until the old path goes."""

    name: str
    table: str
    column: str


@dataclass(frozen=True)
class MovePlan:
    """What moves, and what the monolith will see; read by :func:`read_move`, acted on by the
    statements of :func:`move_statements`."""

    source_schema: str
    target_schema: str
    relations: tuple[MovedRelation, ...]
    kept_sequences: tuple[KeptSequence, ...]
    moved_sequences: tuple[str, ...]  # identity sequences: inseparable from their column
    shared_sequences: tuple[str, ...]  # other monolith sequences the defaults draw from
    types: tuple[str, ...]  # the monolith's own types the columns use: they stay
    arbiters: tuple[str, ...]  # unique/primary/exclusion constraint names
    references: tuple[Reference, ...]
    role: RolePlan | None
    role_grants: tuple[tuple[str, Grant], ...] = ()  # the role's own grants before the move
    warnings: tuple[str, ...] = field(default=())

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.relations)

    def moved(self) -> Moved:
        """What the journal keeps of this move (the role's password is not in it)."""
        role = self.role
        return Moved(
            self.source_schema,
            self.target_schema,
            self.tables,
            self.kept_sequences,
            self.moved_sequences + self.shared_sequences,
            role.name if role else None,
            bool(role and role.create and not role.exists),
            self.role_grants,
        )

    def to_dict(self) -> dict[str, Any]:
        s, t = self.source_schema, self.target_schema
        return {
            "moves": [
                {
                    "table": f"{s}.{r.name} → {t}.{r.name}",
                    "monolith_sees": r.sees(s),
                    "grants": sorted({f"{g.grantee}: {g.privilege}" for g in r.grants}),
                }
                for r in self.relations
            ],
            "sequences_kept": [
                f"{s}.{q.name} (serial of {q.table}.{q.column})" for q in self.kept_sequences
            ],
            "sequences_moved": [f"{t}.{q} (identity)" for q in self.moved_sequences],
            "sequences_shared": [f"{s}.{q}" for q in self.shared_sequences],
            "types_staying": [f"{s}.{n}" for n in self.types],
            "references": [r.to_dict() for r in self.references],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Moved:
    """What a move did, as the journal keeps it: enough to undo it (:func:`back_statements`)
    and to finish the service's side when the old path is removed. No secret in it."""

    source_schema: str
    target_schema: str
    tables: tuple[str, ...]
    kept_sequences: tuple[KeptSequence, ...]
    other_sequences: tuple[str, ...]  # identity and shared ones: the role's grants on them
    role: str | None
    role_created: bool
    role_grants: tuple[tuple[str, Grant], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "source_schema": self.source_schema,
            "target_schema": self.target_schema,
            "tables": list(self.tables),
            "kept_sequences": [[q.name, q.table, q.column] for q in self.kept_sequences],
            "other_sequences": list(self.other_sequences),
            "role": self.role,
            "role_created": self.role_created,
            "role_grants": [
                [t, g.grantee, g.privilege, g.grantable, list(g.columns)]
                for t, g in self.role_grants
            ],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Moved:
        return cls(
            str(value["source_schema"]),
            str(value["target_schema"]),
            tuple(value["tables"]),
            tuple(KeptSequence(*q) for q in value.get("kept_sequences", [])),
            tuple(value.get("other_sequences", [])),
            value.get("role"),
            bool(value.get("role_created")),
            tuple(
                (t, Grant(grantee, priv, bool(opt), tuple(cols)))
                for t, grantee, priv, opt, cols in value.get("role_grants", [])
            ),
        )


@dataclass(frozen=True)
class MoveResult:
    """How the move went: ``locked_seconds`` is how long the tables were held (lock granted
    to commit), ``lock_wait_seconds`` the time spent waiting for locks over all attempts."""

    attempts: int
    lock_wait_seconds: float
    locked_seconds: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "lock_wait_ms": round(self.lock_wait_seconds * 1000, 1),
            "locked_ms": round(self.locked_seconds * 1000, 1),
            "seconds": round(self.seconds, 3),
        }


_OWNERS = """
SELECT c.oid, pg_get_userbyid(c.relowner) AS owner,
       pg_has_role(current_user, c.relowner, 'USAGE') AS may_alter, c.relrowsecurity
FROM pg_class c WHERE c.oid = ANY(%s)
"""


def _move_references(found: list[Reference], schema: str, target: str) -> tuple[Reference, ...]:
    """The boundary as a move sees it: everything bound by OID follows the tables and keeps
    working; what names them resolves to the compatibility views."""
    out = []
    for r in found:
        if r.kind == "foreign key out":
            what = f"kept: {target}.{r.source} still checks against {r.target}"
        elif r.kind == "foreign key in":
            what = f"kept: follows the table to {target} (bound by OID) and still checks it"
        elif r.kind in ("view", "materialized view"):
            what = f"follows the table to {target} (bound by OID): keeps working"
        elif r.kind in ("function", "trigger"):
            what = f"names the tables: resolves to the compatibility views in {schema}"
        elif r.kind == "trigger function":
            what = "the trigger moves with its table and keeps calling the monolith's function"
        else:  # expression: a default, CHECK or index calling a monolith function
            what = f"moves with the table and keeps calling {r.target} (bound by OID)"
        out.append(Reference(r.kind, r.source, r.target, what, "kept"))
    return tuple(out)


def _warnings(catalog: Catalog, identity: list[str]) -> list[str]:
    names = ", ".join(t.name for t in catalog.tables if not t.partition_of)
    out = [
        f"through a view the monolith cannot read system columns (xmin, ctid) of {names}: "
        "code that uses them (optimistic locking on xmin) must change before the move"
    ]
    arbiters = [c.name for t in catalog.tables for c in t.constraints if c.kind in "pux"]
    if arbiters:
        out.append(
            "INSERT … ON CONFLICT ON CONSTRAINT cannot name a constraint through a view ("
            + ", ".join(sorted(arbiters))
            + "): the monolith's upserts must name the columns, ON CONFLICT (…)"
        )
    if identity:
        out.append(
            "identity sequences move with their columns ("
            + ", ".join(identity)
            + "): pg_get_serial_sequence() on the old name returns NULL, and code naming "
            "such a sequence must qualify it with the service's schema"
        )
    return out


def _check_rls(catalog: Catalog, rls: set[int], version: int) -> None:
    """Tables under row-level security need a security_invoker view: PostgreSQL 15, and no
    column grants (such a view checks every column it selects against the caller)."""
    tables = [t for t in catalog.tables if t.oid in rls]
    if tables and version < MIN_VERSION:
        raise BadInput(
            f"{', '.join(t.name for t in tables)} use row-level security; the compatibility "
            "view that keeps its policies working needs PostgreSQL 15 or later (security_"
            f"invoker), and this server is {version // 10000}",
            hint="use strategy: copy or online on this server",
        )
    both = [t.name for t in tables if any(g.columns for g in t.grants)]
    if both:
        raise BadInput(
            f"{', '.join(both)} use both row-level security and column grants; a view cannot "
            "keep both (a security_invoker view checks every column it selects against the "
            "caller)",
            hint="turn the column grants into table grants, or use strategy: copy",
        )


def read_move(
    conn: psycopg.Connection[Any],
    *,
    source_schema: str,
    tables: Sequence[str],
    target_schema: str,
    role: RoleRequest | None,
) -> MovePlan:
    """Read what a move of ``tables`` would do; BadInput when it cannot be done. Only reads."""
    exists, held = schema_state(conn, target_schema)
    if exists:
        raise BadInput(
            f"the monolith's instance already has a schema {target_schema!r}"
            + (f" holding {', '.join(held[:10])}" if held else " (empty)")
            + "; a move creates the service's schema itself",
            hint="choose another target.schema, or drop the leftover schema",
        )
    catalog = read_catalog(conn, source_schema, list(tables))
    oids = [t.oid for t in catalog.tables]
    found_owners = conn.execute(_OWNERS, (oids,)).fetchall()
    owners = {r[0]: (r[1], r[2]) for r in found_owners}
    rls = {r[0] for r in found_owners if r[3]}
    _check_rls(catalog, rls, conn.info.server_version)
    refused = sorted({o for o, may in owners.values() if not may})
    if refused:
        raise BadInput(
            f"the moved tables belong to {', '.join(refused)}, and the monolith's DSN connects "
            "as a role that is not a member: it cannot ALTER them",
            hint="connect as the tables' owner (or a member of that role) in source.dsn",
        )
    found = analyze(conn, catalog, leaving="keep", same_instance=True)
    relations = tuple(
        MovedRelation(
            t.name,
            t.kind,
            t.partition_of,
            tuple(c.name for c in t.columns),
            t.grants,
            owners[t.oid][0],
            t.oid in rls,
        )
        for t in catalog.tables
    )
    kept = tuple(
        KeptSequence(s.name, s.owner_table, s.owner_column)
        for s in catalog.sequences
        if s.owner_table and s.owner_column and not s.identity
    )
    identity = [s.name for s in catalog.sequences if s.identity]
    shared = tuple(s.name for s in catalog.sequences if not s.owner_table)
    plan_role = role_plan(conn, role)
    role_grants = tuple(
        (t.name, g)
        for t in catalog.tables
        for g in t.grants
        if plan_role is not None and g.grantee == plan_role.name
    )
    return MovePlan(
        source_schema,
        target_schema,
        relations,
        kept,
        tuple(identity),
        shared,
        tuple(t.name for t in catalog.types),
        tuple(sorted(c.name for t in catalog.tables for c in t.constraints if c.kind in "pux")),
        _move_references(found.references, source_schema, target_schema),
        plan_role,
        role_grants,
        tuple(found.warnings + _warnings(catalog, identity)),
    )
