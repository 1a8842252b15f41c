"""What a copy will create, read from both servers before anything changes.

:func:`prepare` reads the moved tables' catalog (inside the source connection's transaction,
so under the copy's snapshot when there is one), refuses what cannot cross the service
boundary, finds out which roles the target has, and renders the DDL. It only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import BadInput
from strangler.pg.schema.boundary import analyze
from strangler.pg.schema.catalog import Catalog, read_catalog
from strangler.pg.schema.ddl import Ddl, render_ddl
from strangler.pg.schema.extensions import ExtensionPlan, needed, on_target
from strangler.pg.schema.role import RolePlan
from strangler.pg.schema.statement import Statement

__all__ = [
    "Policy",
    "Prepared",
    "RoleRequest",
    "prepare",
    "refuse_missing",
    "role_plan",
    "schema_state",
]


@dataclass(frozen=True)
class RoleRequest:
    """The service role the spec asks for (``target.role``)."""

    name: str
    password: str | None
    create: bool


@dataclass(frozen=True)
class Policy:
    """What the spec says about what crosses the boundary (plain values, no spec)."""

    leaving: str = "drop"  # foreign_keys.leaving: drop | keep
    shared_sequences: str = "refuse"  # sequences.shared: refuse | copy
    create_extensions: bool = False  # extensions.create
    reaches_behind: str = "refuse"  # code.reaches_behind: refuse | accept


@dataclass(frozen=True)
class Prepared:
    catalog: Catalog
    ddl: Ddl
    warnings: tuple[str, ...]
    role_exists: bool
    extensions: tuple[ExtensionPlan, ...] = ()


def role_plan(target: psycopg.Connection[Any], role: RoleRequest | None) -> RolePlan | None:
    """The role step of runbook step 1; BadInput when the spec's role cannot be had."""
    if role is None:
        return None
    exists = target.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
    if role.create and not exists and not role.password:
        raise BadInput(
            f"role {role.name!r} does not exist on the target and the spec gives no password",
            hint="set target.role.password (usually ${ENV_VAR}) or create the role yourself "
            "and set target.role.create: false",
        )
    if not role.create and not exists:
        raise BadInput(
            f"role {role.name!r} does not exist on the target and target.role.create is false",
            hint="create the role, or set target.role.create: true",
        )
    return RolePlan(role.name, role.password, role.create, bool(exists))


def prepare(
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    *,
    source_schema: str,
    tables: Sequence[str],
    target_schema: str,
    role: RoleRequest | None,
    policy: Policy,
    same_instance: bool,
) -> Prepared:
    """Read the catalog (in ``source``'s transaction, if any) and render the DDL."""
    catalog = read_catalog(source, source_schema, list(tables))
    boundary = analyze(
        source,
        catalog,
        leaving=policy.leaving,
        same_instance=same_instance,
        shared_sequences=policy.shared_sequences,
        reaches_behind=policy.reaches_behind,
    )
    boundary.raise_blocking()
    roles = frozenset(r[0] for r in target.execute("SELECT rolname FROM pg_roles").fetchall())
    oids = [t.oid for t in catalog.tables]
    extensions = on_target(
        target, needed(source, oids, sorted(catalog.carried_type_oids)), target_schema
    )
    refuse_missing(extensions, create=policy.create_extensions)
    path = tuple(dict.fromkeys(e.schema for e in extensions if e.schema != target_schema))
    plan = role_plan(target, role)
    if plan is not None:
        plan = replace(plan, search_path=path)
    ddl = render_ddl(
        catalog, target_schema, role=plan, leaving=policy.leaving, existing_roles=roles
    )
    ddl.path = path
    # Created in the schema transaction, before anything else the extension's objects serve.
    ddl.schema[1:1] = [
        Statement(f"extension:{e.need.name}", sql.SQL(e.create_sql.rstrip(";")))
        for e in extensions
        if e.missing
    ]
    warnings = list(boundary.warnings)
    missing = sorted({g.grantee for t in catalog.tables for g in t.grants} - roles - {"PUBLIC"})
    for table in catalog.tables:
        for pol in table.policies:
            lacking = sorted(set(pol.roles) - roles - {"PUBLIC"})
            if lacking:
                warnings.append(
                    f"policy {pol.name!r} on {table.name} is not carried: the target has no "
                    f"role {', '.join(lacking)} (create the roles first to keep it)"
                )
    if missing:
        warnings.append(
            "the target has no role " + ", ".join(missing) + ": their grants on the moved "
            "tables are not carried (create the roles first to keep them)"
        )
    for table in catalog.tables:
        if table.has_data and table.primary_key is None and table.replica_identity != "f":
            warnings.append(
                f"table {table.name!r} has no primary key: it copies, but online sync will "
                "need a replica identity (ALTER TABLE … REPLICA IDENTITY FULL or a unique index)"
            )
    return Prepared(catalog, ddl, tuple(warnings), bool(plan and plan.exists), tuple(extensions))


def refuse_missing(extensions: Sequence[ExtensionPlan], *, create: bool) -> None:
    """BadInput, before anything is created, for an extension the target lacks and strangler
    may not (the spec) or cannot (the target role, the server) create."""
    problems = []
    for e in extensions:
        if not e.missing:
            continue
        uses = "; ".join(e.need.uses[:3]) + (" …" if len(e.need.uses) > 3 else "")
        if not e.available:
            why = "the target server does not ship it (install its package there)"
        elif not create:
            why = "the spec does not let strangler create it (extensions: {create: true})"
        elif not e.may_create:
            why = "the target role may not create it (it needs a superuser, or a trusted "
            why += "extension and CREATE on the database)"
        else:
            continue
        problems.append(f"{e.need.name} ({uses}): {why}; to create it: {e.create_sql}")
    if problems:
        raise BadInput(
            "the target lacks extensions the moved tables need: " + " | ".join(problems),
            hint="run the CREATE EXTENSION on the target as a role that may (or set "
            "extensions: {create: true} when strangler's target role may); nothing was changed",
        )


def schema_state(target: psycopg.Connection[Any], schema: str) -> tuple[bool, list[str]]:
    """Whether ``schema`` exists on the target, and the relations it holds."""
    exists = target.execute(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)", (schema,)
    ).fetchone()
    rels = target.execute(
        "SELECT relname FROM pg_class "
        "WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
        "AND relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY relname",
        (schema,),
    ).fetchall()
    return bool(exists and exists[0]), [r[0] for r in rels]
