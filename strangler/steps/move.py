"""``Action.MOVE`` (planned → copied), ``strategy: move``: the service's tables change schema
in place on the monolith's own instance, and compatibility views keep the monolith working.

Nothing is copied: ``ALTER TABLE … SET SCHEMA`` in one short transaction, with the schema,
the role, the views and the grants (:mod:`strangler.pg.schema.move`). ``copied`` then means
the tables are in the service's schema; verification compares each view with its table,
and traffic, decommission and evidence follow as for ``copy``. ``strangler rollback SERVICE
--schema`` moves them back (:mod:`strangler.steps.rollback_schema`); removing the old path
retires the views (:mod:`strangler.steps.compat`).

A crash after the transaction committed and before the outcome was written is recovered:
the intent holds what the move did, and the catalogs show whether it committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.errors import StranglerError
from strangler.pg.connect import connect
from strangler.pg.schema.compat import compat_views
from strangler.pg.schema.move import Moved, MovePlan, MoveResult, read_move
from strangler.pg.schema.move_sql import move_statements, run_in_lock
from strangler.pg.schema.prepare import schema_state
from strangler.phases import Action, Phase
from strangler.steps import preflight
from strangler.steps.create_schema import role_request
from strangler.steps.records import MoveRecord
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan

__all__ = ["MoveReport", "MoveStepResult", "inspect_move", "move", "plan", "read_plan"]


@dataclass
class MoveStepResult:
    """What ``strangler move`` did (or, with ``sql``, would do)."""

    service: str
    plan: MovePlan | None = None
    result: MoveResult | None = None
    sql: list[str] | None = None  # --dry-run: the statements, in one transaction
    recovered: bool = False
    tables: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tables": self.tables}
        if self.plan is not None:
            out.update(self.plan.to_dict())
        if self.result is not None:
            out["move"] = self.result.to_dict()
        if self.sql is not None:
            out["sql"] = self.sql
        if self.recovered:
            out["recovered"] = True
        return out


def read_plan(rb: ServiceRef, conn: psycopg.Connection[Any]) -> MovePlan:
    return read_move(
        conn,
        source_schema=rb.spec.source.schema_,
        tables=list(rb.service.tables),
        target_schema=rb.service.target.schema_,
        role=role_request(rb.service),
    )


def _committed(rb: ServiceRef, conn: psycopg.Connection[Any], moved: Moved) -> bool:
    """Whether a move that crashed had committed: its views stand where the tables were."""
    exists, relations = schema_state(conn, moved.target_schema)
    views = compat_views(conn, moved.source_schema, moved.tables)
    return exists and set(moved.tables) <= set(relations) and len(views) == len(moved.tables)


def move(
    rb: Runbook,
    *,
    dry_run: bool = False,
    lock_timeout: float = 0.2,
    attempts: int = 50,
) -> MoveStepResult:
    """Move the service's tables into its schema and leave compatibility views behind.

    ``lock_timeout``: how long one attempt waits for the tables' locks before it gives up
    (and the statements queued behind it go on); ``attempts``: how many times it tries."""
    if rb.service.strategy != "move":
        rb.check(Action.MOVE)  # PhaseRefused names the strategy
    crashed = next((e for e in rb.journal.dangling(rb.name) if e.step == str(Action.MOVE)), None)
    if crashed is None:
        rb.check(Action.MOVE)
    out = MoveStepResult(rb.name, tables=list(rb.service.tables))
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if crashed is not None and "moved" in crashed.details:
            moved = Moved.from_json(crashed.details["moved"])
            if _committed(rb, conn, moved) and not dry_run:
                with rb.step(Action.MOVE, resumable=True) as step:
                    rb.progress.save(MoveRecord(moved.to_json()))
                    step.details.update(recovered=True, tables=list(moved.tables))
                out.recovered = True
                return out
        found = read_plan(rb, conn)
        out.plan = found
        row = conn.execute("SELECT current_user").fetchone()
        before, locked = move_statements(found, str(row[0]) if row else "")
        if dry_run:
            rb.check(Action.MOVE)
            out.sql = ["BEGIN;"] + [
                (st.shown or st.query).as_string(conn) + ";" for st in before + locked
            ]
            out.sql.append("COMMIT;")
            return out
        moved = found.moved()
        with rb.step(Action.MOVE, details={"moved": moved.to_json()}, resumable=True) as step:
            out.result = run_in_lock(
                conn,
                before,
                locked,
                views=(found.source_schema, found.tables),
                tables=(found.source_schema, found.tables),
                lock_timeout=lock_timeout,
                attempts=attempts,
            )
            rb.progress.save(MoveRecord(moved.to_json()))
            step.details.update(out.result.to_dict(), tables=list(found.tables))
    return out


# ------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class MoveReport:
    """``strangler plan``'s move section: what moves and what the monolith will see, read
    from the catalogs; or that the move is done; or why it cannot be done (``error``)."""

    plan: dict[str, Any] | None = None
    moved: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "moved": self.moved, "error": self.error}


def inspect_move(rb: ServiceRef) -> MoveReport:
    """One short read of the monolith's catalog. An unreachable monolith or a move that
    cannot be done is reported, not raised: the plan of a spec is useful before either."""
    svc = rb.service
    try:
        with connect(rb.spec.source.dsn, role="monolith", connect_timeout=5) as conn:
            views = compat_views(conn, rb.spec.source.schema_, list(svc.tables))
            if views and len(views) == len(svc.tables):
                return MoveReport(moved=True)
            return MoveReport(plan=read_plan(rb, conn).to_dict())
    except StranglerError as exc:
        return MoveReport(error=exc.message)


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    s, t = rb.spec.source.schema_, svc.target.schema_
    ops = [Operation("monolith instance", f"CREATE SCHEMA {t}")]
    if svc.target.role is not None:
        ops.append(
            Operation("monolith instance", f"role {svc.target.role.name}: USAGE on {t}, "
                      "SELECT, INSERT, UPDATE, DELETE on its tables")
        )  # fmt: skip
    ops.append(
        Operation("monolith instance", f"LOCK TABLE {', '.join(f'{s}.{x}' for x in svc.tables)} "
                  "IN ACCESS EXCLUSIVE MODE (short lock_timeout, retried)")
    )  # fmt: skip
    ops += [
        Operation("monolith instance", f"ALTER TABLE {s}.{x} SET SCHEMA {t}; a compatibility "
                  f"view {s}.{x} over {t}.{x} (auto-updatable, security_invoker) with its grants")
        for x in svc.tables
    ]  # fmt: skip
    sections: dict[str, Any] = {}
    if inspect:
        sections["move"] = inspect_move(rb)
    return StepPlan(
        action=Action.MOVE.value,
        source=Phase.PLANNED.value,
        target=Phase.COPIED.value,
        summary=f"move {', '.join(svc.tables)} into schema {t} in one short transaction; "
        f"compatibility views keep the monolith working in {s}",
        operations=tuple(ops),
        requires=("a recent passing preflight",) if svc.preflight else (),
        sections=sections,
    )


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    waiting = preflight.ensure(rb, opts)
    if waiting is not None:
        return waiting
    done = move(rb)
    locked = f" (tables locked {done.result.locked_seconds * 1000:.0f} ms)" if done.result else ""
    return Advanced(
        Action.MOVE.value, rb.phase.value, f"moved {len(done.tables)} table(s){locked}", done
    )
