"""``strangler rollback SERVICE --schema`` (→ planned): drop the service schema (and the role
strangler made) while nothing wrote to it.

The proof is measured inside the step's lock right before the drop
(:func:`strangler.steps.proofs.no_writes_since_copy`). Copy strategy: the copy's watermark
(:func:`strangler.pg.schema.drop.writes_since_copy`). Online, until writes are cut over (the
phase rules refuse this step after), the write gate on the service's tables refuses the
application's writes, so every row came from the monolith by the copy or by sync: the gate
must be closed on every table now. The sync's slot goes with the schema, and the
verification of the dropped copy is obsolete (``strangler status`` says so).

Move strategy: nothing was copied, so nothing can be lost: the compatibility views are
dropped and the tables move back, in one locked transaction like the move; the service role
loses what the move gave it, and the schema, empty again, is dropped (no CASCADE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strangler.errors import CheckFailed
from strangler.pg.connect import connect
from strangler.pg.schema.drop import drop, drop_statements, schema_exists
from strangler.pg.schema.move import Moved
from strangler.pg.schema.move_sql import back_statements, run_in_lock
from strangler.pg.sync import cdc
from strangler.phases import Action, Phase
from strangler.steps.records import MoveRecord, SchemaCreated
from strangler.steps.requirements import stated
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook
from strangler.steps.types import Operation, ServiceRef, StepPlan
from strangler.steps.wiring import sync_route

__all__ = ["SchemaRollback", "plan", "rollback_schema"]


@dataclass(frozen=True)
class SchemaRollback:
    sql: list[str]
    dropped: bool
    schema: str | None = None
    role_dropped: str | None = None
    sync: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sql": self.sql, "dropped": self.dropped}
        if self.dropped:
            out.update(schema=self.schema, role_dropped=self.role_dropped)
        return out


def rollback_schema(rb: Runbook, request: RollbackRequest) -> SchemaRollback:
    rb.check(Action.ROLLBACK_SCHEMA)
    if rb.service.strategy == "move":
        return _move_back(rb, request)
    created = rb.progress.load(SchemaCreated)
    schema = rb.service.target.schema_
    if created is None:
        raise CheckFailed(
            f"strangler has no record of creating schema {schema!r} for {rb.name}; it drops "
            "only what it made",
            hint="drop it by hand if you are sure it is yours",
        )
    role = created.role if created.role_created else None
    statements = drop_statements(schema, role)
    online = rb.service.strategy == "online"
    with connect(rb.spec.target_dsn(rb.name), role="service target") as conn:
        text = [s.as_string(conn) + ";" for s in statements]
        if request.dry_run:
            rb.require(Action.ROLLBACK_SCHEMA)  # the refusal a real run would meet, now
            return SchemaRollback(text, dropped=False)
        # "Nothing wrote to it" is measured inside the step's lock, right before the drop
        # (requirements.no_writes_since_copy), and recorded in its intent. A copy that died
        # halfway is undone by this step, not in its way.
        with rb.step(Action.ROLLBACK_SCHEMA, reason=request.reason) as step:
            if schema_exists(conn, schema):
                drop(conn, statements)  # the schema and the role, in one transaction
            else:
                # An earlier attempt dropped both and failed after: the rest is done now.
                step.details["dropped_before"] = True
            sync = None
            if online:
                sync = cdc.end(sync_route(rb.spec, rb.name, "forward"))
                step.details["sync"] = sync
            # Forgotten with the outcome, in its transaction: forgotten before it, a kill
            # left a step that could never be run again ("no record of creating schema").
            step.on_ok += [rb.progress.forget_copy, rb.progress.forget_schema]
            step.details.update(schema=schema, role_dropped=role)
    return SchemaRollback(text, True, schema, role, sync)


def _move_back(rb: Runbook, request: RollbackRequest) -> SchemaRollback:
    record = rb.progress.load(MoveRecord)
    if record is None:
        raise CheckFailed(
            f"strangler has no record of moving {rb.name}'s tables; it moves back only what "
            "it moved",
            hint=f"see 'strangler history {rb.name}'",
        )
    moved = Moved.from_json(dict(record.moved))
    locked, after = back_statements(moved)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        text = [st.query.as_string(conn) + ";" for st in locked + after]
        if request.dry_run:
            return SchemaRollback(text, dropped=False)
        with rb.step(Action.ROLLBACK_SCHEMA, reason=request.reason) as step:
            if schema_exists(conn, moved.target_schema):
                done = run_in_lock(
                    conn,
                    [],
                    locked,
                    after,
                    tables=(moved.target_schema, moved.tables),
                    what="moving the tables back",
                )
                step.details.update(done.to_dict())
            else:
                # An earlier attempt moved them back (one transaction, which drops the
                # schema) and died before its outcome: nothing is left to move.
                step.details["moved_back_before"] = True
            step.on_ok.append(lambda: rb.progress.clear(MoveRecord))
            step.details.update(schema=moved.target_schema, moved_back=list(moved.tables))
    return SchemaRollback(
        text, True, moved.target_schema, moved.role if moved.role_created else None
    )


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    if svc.strategy == "move":
        s, t = rb.spec.source.schema_, svc.target.schema_
        return StepPlan(
            action=Action.ROLLBACK_SCHEMA.value,
            source=Phase.COPIED.value,
            target=Phase.PLANNED.value,
            summary=f"move the tables back to {s}: drop the compatibility views, ALTER TABLE "
            f"… SET SCHEMA {s}, drop schema {t}",
            operations=(
                Operation(
                    "monolith instance", f"DROP VIEW {s}.… ; ALTER TABLE {t}.… SET SCHEMA {s}"
                ),
                Operation(
                    "monolith instance", f"revoke the service role's grants; DROP SCHEMA {t}"
                ),
            ),
        )
    where = f"{rb.name} database" if svc.target.dsn else "monolith instance"
    role = svc.target.role
    ops = [Operation(where, f"DROP SCHEMA {svc.target.schema_} CASCADE")]
    if role and role.create:
        ops.append(Operation(where, f"DROP ROLE {role.name} (only if strangler created it)"))
    if svc.strategy == "online":
        ops.append(Operation("monolith", "drop the forward slot and publication"))
    return StepPlan(
        action=Action.ROLLBACK_SCHEMA.value,
        source=Phase.SCHEMA_READY.value,
        target=Phase.PLANNED.value,
        summary="drop the service schema (and its role) while nothing wrote to it",
        operations=tuple(ops),
        requires=stated(Action.ROLLBACK_SCHEMA, svc),
    )
