"""Runbook pattern 1/2 step 1 (and the DDL of step 3): the service's schema and role.

``Action.CREATE_SCHEMA`` (planned → schema_ready). Types, tables, sequences and the service
role with least-privilege grants, in one target transaction; a target schema that exists and
that strangler did not make is refused. A crash after the transaction committed and before
the outcome was written is recovered: the schema the intent describes is there, complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.errors import BadInput, StranglerError
from strangler.pg.connect import connect
from strangler.pg.copy.extract import create_schema_objects
from strangler.pg.schema.boundary import analyze
from strangler.pg.schema.catalog import read_catalog
from strangler.pg.schema.ddl import to_lines, to_text
from strangler.pg.schema.extensions import needed, on_target
from strangler.pg.schema.prepare import (
    Policy,
    Prepared,
    RoleRequest,
    prepare,
    refuse_missing,
    schema_state,
)
from strangler.pg.schema.privileges import check_readable
from strangler.phases import Action, Phase
from strangler.spec import ServiceSpec
from strangler.steps import preflight
from strangler.steps.records import SchemaCreated
from strangler.steps.requirements import stated
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan
from strangler.steps.wiring import endpoints

__all__ = [
    "BoundaryReport",
    "SchemaResult",
    "boundary_report",
    "create_schema",
    "plan",
    "prepared",
    "role_request",
]


@dataclass(frozen=True)
class SchemaResult:
    schema: str
    tables: list[str]
    warnings: list[str]
    recovered: bool = False
    sql: str | None = None  # --dry-run: the statements, not run

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": self.schema,
            "tables": self.tables,
            "warnings": self.warnings,
        }
        if self.recovered:
            out["recovered"] = True
        if self.sql is not None:
            out["sql"] = self.sql
        return out


def role_request(svc: ServiceSpec) -> RoleRequest | None:
    role = svc.target.role
    if role is None:
        return None
    password = role.password.get_secret_value() if role.password else None
    return RoleRequest(role.name, password, role.create)


def policy(svc: ServiceSpec) -> Policy:
    """The spec's word on what crosses the boundary, as the plain values mechanism takes."""
    return Policy(
        leaving=svc.foreign_keys.leaving,
        shared_sequences=svc.sequences.shared,
        create_extensions=svc.extensions.create,
        reaches_behind=svc.code.reaches_behind,
    )


def prepared(
    rb: ServiceRef, source: psycopg.Connection[Any], target: psycopg.Connection[Any]
) -> Prepared:
    """The catalog and DDL of ``rb``'s service (reading ``source`` in its transaction)."""
    ends = endpoints(rb.spec, rb.name)
    prep = prepare(
        source,
        target,
        source_schema=ends.source_schema,
        tables=list(rb.service.tables),
        target_schema=ends.target_schema,
        role=role_request(rb.service),
        policy=policy(rb.service),
        same_instance=ends.same_instance,
    )
    # Before anything is created: the copy must be able to read all it will read.
    check_readable(
        source,
        ends.source_schema,
        [t.name for t in prep.catalog.tables],
        [s.name for s in prep.catalog.sequences],
    )
    return prep


def create_schema(rb: Runbook, *, dry_run: bool = False) -> SchemaResult:
    """Create the service schema and role, or (``dry_run``) say exactly how."""
    ends = endpoints(rb.spec, rb.name)
    crashed = next(
        (e for e in rb.journal.dangling(rb.name) if e.step == str(Action.CREATE_SCHEMA)), None
    )
    if crashed is None:
        rb.check(Action.CREATE_SCHEMA)  # PhaseRefused says what comes first, or next
    with (
        connect(ends.source_dsn, role="monolith") as source,
        connect(ends.target_dsn or ends.source_dsn, role="service target") as target,
    ):
        prep = prepared(rb, source, target)
        exists, relations = schema_state(target, ends.target_schema)
        role = rb.service.target.role
        record = SchemaCreated(
            ends.target_schema,
            role.name if role else None,
            bool(role and role.create and not prep.role_exists),
        )
        result = SchemaResult(ends.target_schema, list(prep.catalog.names), list(prep.warnings))
        # The DDL is one transaction: a schema that exists after a crash of this step is the
        # complete schema that step made; its intent says whether it made the role.
        made = exists and set(prep.catalog.names) <= set(relations)
        if made and crashed is not None and not dry_run:
            with rb.step(Action.CREATE_SCHEMA, resumable=True) as step:
                record = SchemaCreated(
                    record.schema, record.role, bool(crashed.details.get("role_created"))
                )
                rb.progress.save(record)
                step.details.update(result.to_dict(), recovered=True)
            return SchemaResult(result.schema, result.tables, result.warnings, recovered=True)
        if exists:
            raise BadInput(
                f"the target already has a schema {ends.target_schema!r}"
                + (f" holding {', '.join(relations[:10])}" if relations else " (empty)")
                + "; strangler creates the service schema itself and never writes into one it "
                "did not make",
                # The journal has no record of making it (else the phase would not be
                # 'planned'): 'rollback --schema' would be refused, so do not send the
                # operator there (issue 14: a hint loop after a lost journal).
                hint="this journal has no record of strangler making it (a new or lost "
                "journal?); inspect it, then choose another target.schema or drop it by hand "
                f"on the target: DROP SCHEMA {_quoted(ends.target_schema)} CASCADE;",
            )
        if dry_run:
            sql_text = to_text(prep.ddl, ends.target_schema, target)
            return SchemaResult(result.schema, result.tables, result.warnings, sql=sql_text)
        with rb.step(
            Action.CREATE_SCHEMA,
            details={"schema": ends.target_schema, "role_created": record.role_created},
            resumable=True,
        ) as step:
            create_schema_objects(target, prep.ddl, ends.target_schema)
            rb.progress.save(record)
            step.details.update(result.to_dict())
        return result


# ------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class BoundaryReport:
    """What crosses the service boundary (``strangler plan``'s boundary section)."""

    foreign_keys_leaving: str
    references: list[dict[str, str]] = field(default_factory=list)
    blocking: int = 0
    warnings: list[str] = field(default_factory=list)
    tables_without_primary_key: list[str] = field(default_factory=list)
    error: str | None = None  # the monolith could not be read: the section says so
    # each extension the moved tables need: where it lives on both sides, or the exact
    # CREATE EXTENSION the target lacks (pg/schema/extensions.py)
    extensions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "foreign_keys_leaving": self.foreign_keys_leaving,
            "references": self.references,
            "blocking": self.blocking,
            "warnings": self.warnings,
            "tables_without_primary_key": self.tables_without_primary_key,
            "extensions": self.extensions,
            "error": self.error,
        }


def boundary_report(rb: ServiceRef) -> BoundaryReport:
    """One short read of the monolith's catalog; an unreachable monolith is reported, not
    raised (the plan of a spec is useful before the database exists)."""
    svc = rb.service
    leaving = svc.foreign_keys.leaving
    try:
        with connect(rb.spec.source.dsn, role="monolith", connect_timeout=5) as conn:
            catalog = read_catalog(conn, rb.spec.source.schema_, list(svc.tables))
            found = analyze(
                conn,
                catalog,
                leaving=leaving,
                same_instance=svc.target.dsn is None,
                shared_sequences=svc.sequences.shared,
                reaches_behind=svc.code.reaches_behind,
            )
            needs = needed(conn, [t.oid for t in catalog.tables], sorted(catalog.carried_type_oids))
    except StranglerError as exc:
        return BoundaryReport(leaving, error=exc.message)
    warnings = list(found.warnings)
    extensions: list[dict[str, Any]] = []
    blocking = len(found.blocking)
    try:
        with connect(rb.spec.target_dsn(rb.name), role="service target", connect_timeout=5) as t:
            plans = on_target(t, needs, svc.target.schema_)
        extensions = [e.to_dict() for e in plans]
        try:
            refuse_missing(plans, create=svc.extensions.create)
        except BadInput as exc:
            blocking += 1
            warnings.append(exc.message)
    except StranglerError as exc:
        extensions = [
            {"extension": n.name, "monolith": f"{n.version} in schema {n.schema}",
             "target": f"not checked: {exc.message}", "uses": list(n.uses)}
            for n in needs
        ]  # fmt: skip
    return BoundaryReport(
        leaving,
        references=[r.to_dict() for r in found.references],
        blocking=blocking,
        extensions=extensions,
        warnings=warnings,
        tables_without_primary_key=[
            t.name for t in catalog.tables if t.has_data and t.primary_key is None
        ],
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def target_name(rb: ServiceRef) -> str:
    dsn = rb.service.target.dsn
    return f"{rb.name} database" if dsn else "monolith instance"


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    where = target_name(rb)
    role = svc.target.role
    ops = [Operation(where, f"CREATE SCHEMA {svc.target.schema_}")]
    ops += [
        Operation(where, f"types, then CREATE TABLE {svc.target.schema_}.{t} as the monolith "
                  "defines it (columns, defaults, sequences)")
        for t in svc.tables
    ]  # fmt: skip
    if role is not None:
        verb = "CREATE ROLE" if role.create else "use existing role"
        ops.append(
            Operation(where, f"{verb} {role.name}; GRANT USAGE on the schema and SELECT, "
                      "INSERT, UPDATE, DELETE on its tables")
        )  # fmt: skip
    sections: dict[str, Any] = {}
    if inspect:
        report = boundary_report(rb)
        sections["boundary"] = report
    return StepPlan(
        action=Action.CREATE_SCHEMA.value,
        source=Phase.PLANNED.value,
        target=Phase.SCHEMA_READY.value,
        summary=f"create schema {svc.target.schema_}: types, tables, sequences, role "
        f"{role.name if role else '(none)'}",
        operations=tuple(ops),
        requires=stated(Action.CREATE_SCHEMA, svc),
        sections=sections,
    )


def exact_operations(rb: ServiceRef, *, schema: bool = True) -> list[Operation]:
    """The exact statements of the schema (and post-load) DDL, read from the catalogs."""
    ends = endpoints(rb.spec, rb.name)
    with (
        connect(ends.source_dsn, role="monolith") as source,
        connect(ends.target_dsn or ends.source_dsn, role="service target") as target,
    ):
        prep = prepared(rb, source, target)
        lines = to_lines(prep.ddl, ends.target_schema, target, schema=schema)
    return [Operation(target_name(rb), line) for line in lines]


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    waiting = preflight.ensure(rb, opts)
    if waiting is not None:
        return waiting
    done = create_schema(rb)
    return Advanced(
        Action.CREATE_SCHEMA.value, rb.phase.value, f"created schema {done.schema}", done
    )
