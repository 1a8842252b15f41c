"""``strangler decommission SERVICE --check``: the post-migration checklist as evidence.

:func:`check` puts the write guard on the old tables if it is not there, gathers every item
of the checklist (:mod:`strangler.checks.decommission`), journals the verdicts, keeps the
write window's new start when writes were seen (and prunes the guard's log of them: a write
counts in its window, not forever), and marks the service ``stable`` when everything holds
at 100 % traffic. The steps after it (:mod:`strangler.steps.decommission`) measure again when
they act; ``stable`` is no proof by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from strangler.checks.base import CheckResult, Guard, blocking
from strangler.checks.decommission import BASELINE, MetricWindowSource, decommission_checks
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.phases import Action, Phase
from strangler.steps import compat as moved_views
from strangler.steps.preflight import context
from strangler.steps.records import Event, GuardOff, GuardState
from strangler.steps.runbook import Runbook

__all__ = ["DecommissionCheck", "check", "gather"]


@dataclass(frozen=True)
class DecommissionCheck:
    service: str
    passed: bool
    marked_stable: bool
    phase: str
    results: list[CheckResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "passed": self.passed,
            "marked_stable": self.marked_stable,
            "phase": self.phase,
            "results": [r.to_dict() for r in self.results],
        }


def _guard(rb: Runbook, dry_run: bool) -> Guard | None:
    """The write guard on the old tables, put on now (and its counters saved) if missing
    (``strategy: move``: on the moved tables, against every role but the service's)."""
    if rb.service.strategy == "move":
        return moved_views.guard(rb, dry_run)
    schema, tables = rb.spec.source.schema_, list(rb.service.tables)
    saved = rb.progress.load(GuardState)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if not set(tables) <= set(T.existing(conn, schema, tables)):
            return None  # the check reports the missing tables
        installed = T.guard_installed(conn, schema, tables)
        if saved is not None and installed:
            return Guard(
                datetime.fromisoformat(saved.installed_at),
                saved.counters,
                quiet_since=datetime.fromisoformat(saved.quiet_since)
                if saved.quiet_since
                else None,
                seen_id=saved.seen_id,
            )
        if dry_run:
            return None
        counters = T.write_counters(conn, schema, tables)
        # Rows an earlier guard left in the log were judged then; this guard starts after.
        seen = T.last_write_id(conn)
        T.install_guard(conn, schema, tables)
    now = rb.journal.clock()
    rb.progress.save(GuardState(now.isoformat(), counters, now.isoformat(), seen))
    rb.progress.clear(GuardOff)  # a guard on again: its own window, not the removal's
    rb.journal.event(
        rb.name, Event.GUARD_INSTALLED, status="ok", details={"counters": counters, "seen_id": seen}
    )
    return Guard(now, counters, installed_now=True, quiet_since=now, seen_id=seen)


def gather(
    rb: Runbook, source: MetricWindowSource | None, *, dry_run: bool = False
) -> tuple[bool, list[CheckResult]]:
    """Every item of the post-migration checklist; journaled unless ``dry_run``."""
    ctx = context(rb, dry_run=dry_run)
    ctx = replace(ctx, history=replace(ctx.history, guard=_guard(rb, dry_run)))
    results = decommission_checks(ctx, source)
    ok = not blocking(results)
    if not dry_run:
        rb.journal.event(
            rb.name,
            Event.DECOMMISSION_CHECK,
            status="pass" if ok else "fail",
            details={"results": [r.to_dict() for r in results]},
        )
        restart = next((r.evidence[BASELINE] for r in results if BASELINE in r.evidence), None)
        saved = rb.progress.load(GuardState)
        if restart is not None and saved is not None:
            # Writes were seen (now journaled above): the quiet window starts again from
            # now, and the log rows already judged go, so a write counts once, not forever.
            rb.progress.save(
                GuardState(
                    saved.installed_at,
                    restart["counters"],
                    restart["quiet_since"],
                    restart["seen_id"],
                )
            )
            with connect(rb.spec.source.dsn, role="monolith") as conn:
                T.prune_writes(
                    conn, rb.spec.source.schema_, list(rb.service.tables), restart["seen_id"]
                )
    return ok, results


def check(
    rb: Runbook, source: MetricWindowSource | None = None, *, dry_run: bool = False
) -> DecommissionCheck:
    """``decommission --check``: the evidence, journaled; ``stable`` when it all holds."""
    ok, results = gather(rb, source, dry_run=dry_run)
    marked = False
    if ok and not dry_run and rb.phase is Phase.TRAFFIC_COMPLETE:
        with rb.step(Action.MARK_STABLE, resumable=True) as step:
            step.details["evidence"] = [r.to_dict() for r in results]
        marked = True
    return DecommissionCheck(rb.name, ok, marked, rb.phase.value, results)
