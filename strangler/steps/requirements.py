"""The evidence each step needs before the phase machine lets it act, as one static table.

The phase rules (:mod:`strangler.phases`) say what may follow what; evidence says whether the
world agrees right now: a passing verification newer than the last change to the copy before
writes or traffic move, a recent passing preflight before a copy or a cutover, a reverse sync
that keeps up before traffic moves on an online service, a passing decommission check before
the service is declared stable, and the grace period before old tables are dropped.

:meth:`strangler.steps.runbook.Runbook.step` runs :data:`REQUIREMENTS` ``[action]`` inside the
service's lock, right before the step acts. The table is written out here (not filled in by
whatever modules happened to be imported), so a program that drives a ``Runbook`` as a library
gets exactly the rules the command line enforces. ``--force --reason`` skips every
requirement, and the override is journaled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.pg.sync import cdc
from strangler.phases import Action
from strangler.spec import SyncSpec
from strangler.steps import facts, wiring
from strangler.steps.records import Event
from strangler.steps.types import JournaledRef

__all__ = [
    "REQUIREMENTS",
    "Requirement",
    "fresh_verification",
    "grace_period_over",
    "passing_decommission_check",
    "recent_preflight",
    "requirements_for",
    "reverse_sync_healthy",
]

Requirement = Callable[[JournaledRef], None]


def fresh_verification(rb: JournaledRef) -> None:
    """The newest verification that compared rows passed, and nothing changed the copy since.

    The runbook's "DO NOT proceed with cutover" as a rule: counts prove nothing about values.
    """
    entries = rb.journal.history(rb.name)
    hint = f"strangler verify {rb.name}"
    proof = facts.last_verification(entries, proof_only=True)
    if proof is None:
        raise CheckFailed(f"{rb.name}: the copy has never been verified", hint=hint)
    if proof.status != "passed":
        raise CheckFailed(
            f"{rb.name}: the last verification ({proof.at:%Y-%m-%d %H:%M:%S} UTC) found "
            "differences; do not proceed with cutover",
            hint=f"repair the copy, then run '{hint}'",
        )
    changes = [
        e
        for e in entries
        if e.kind == "outcome" and e.status == "ok" and e.step in facts.CHANGES_TO_COPY
    ]
    if changes and changes[-1].id > proof.id:
        change = changes[-1]
        raise CheckFailed(
            f"{rb.name}: the copy changed ({change.step} at {change.at:%Y-%m-%d %H:%M:%S} UTC) "
            f"after the last passing verification ({proof.at:%Y-%m-%d %H:%M:%S} UTC)",
            hint=hint,
        )


def recent_preflight(rb: JournaledRef) -> None:
    """A passing preflight younger than ``preflight.max_age`` (only when the spec has one)."""
    pre = rb.service.preflight
    if pre is None:
        return  # no preflight: section; the plan warns that nothing is gated
    last = rb.journal.last(rb.name, Event.PREFLIGHT)
    how = f"strangler preflight {rb.name}"
    if last is None:
        raise CheckFailed(f"{rb.name} has no preflight on record", hint=f"run '{how}'")
    age = rb.journal.clock() - last.at
    if last.status != "pass":
        failed = [
            r["name"]
            for r in last.details.get("results", [])
            if r.get("verdict") == "fail" and r.get("required", True)
        ]
        raise CheckFailed(
            f"the last preflight of {rb.name} ({format_duration(age)} ago) failed: "
            + ", ".join(failed),
            hint=f"fix those items and run '{how}' again",
        )
    if age > pre.max_age:
        raise CheckFailed(
            f"the last passing preflight of {rb.name} is {format_duration(age)} old; the spec "
            f"allows {format_duration(pre.max_age)} (preflight.max_age)",
            hint=f"run '{how}' again",
        )


def reverse_sync_healthy(rb: JournaledRef) -> None:
    """Before traffic moves on an online service: reverse sync exists and keeps up.

    Once traffic reaches the service, rolling writes back is only safe while the monolith's
    tables follow it.
    """
    if rb.service.strategy != "online":
        return
    route = wiring.sync_route(rb.spec, rb.name, "reverse")
    info = cdc.status(route)
    if not info.slot_exists or info.applied_lsn is None:
        raise CheckFailed(
            f"{rb.name}: reverse sync slot {route.slot!r} does not exist, so the monolith's "
            "tables do not follow the service and rolling writes back would lose data",
            hint=f"'strangler cutover {rb.name}' creates it; 'strangler sync {rb.name} "
            "--status' shows what exists",
        )
    if info.slot_lost:  # it exists, but the monolith's tables stopped following the service
        lost = cdc.invalidated(route)
        raise CheckFailed(f"{rb.name}: {lost.message}", hint=lost.hint)
    limit = (rb.service.sync or SyncSpec()).max_lag
    lag = info.lag_bytes or 0
    if lag > limit:
        raise CheckFailed(
            f"{rb.name}: reverse sync is {lag:,} bytes of WAL behind the service, more than "
            f"sync.max_lag ({limit:,})",
            hint=f"run 'strangler sync {rb.name}' (after cutover it applies the service's "
            "changes to the monolith), then try again",
        )


def passing_decommission_check(rb: JournaledRef) -> None:
    """MARK_STABLE needs a passing ``decommission --check`` made while traffic was at 100 %."""
    last = rb.journal.last(rb.name, Event.DECOMMISSION_CHECK)
    _, since = facts.traffic_timeline(rb.journal, rb.name)
    how = f"strangler decommission {rb.name} --check"
    if last is None or last.status != "pass":
        raise CheckFailed(f"{rb.name} has no passing decommission check", hint=f"run '{how}'")
    if since is None or last.at < since:
        raise CheckFailed(
            f"the last passing decommission check of {rb.name} predates the current traffic state",
            hint=f"run '{how}' again",
        )


def grace_period_over(rb: JournaledRef) -> None:
    """Dropping the old tables waits ``drop_old_tables_after`` after they were renamed."""
    renamed = rb.journal.last(rb.name, str(Action.REMOVE_OLD_PATH), status="ok")
    wait = rb.service.decommission.drop_old_tables_after
    if renamed is None:
        raise CheckFailed(
            f"the old tables of {rb.name} were never archived and renamed",
            hint=f"run 'strangler decommission {rb.name}'",
        )
    due = renamed.at + wait
    if rb.journal.clock() < due:
        raise CheckFailed(
            f"the old tables of {rb.name} were renamed "
            f"{format_duration(rb.journal.clock() - renamed.at)} ago; they are dropped only "
            f"{format_duration(wait)} after that, from "
            f"{due:%Y-%m-%d %H:%M} UTC (decommission.drop_old_tables_after)",
            hint=f"run 'strangler decommission {rb.name}' again after that time",
        )


REQUIREMENTS: Mapping[Action, tuple[Requirement, ...]] = {
    Action.COPY: (recent_preflight,),
    Action.CUTOVER_WRITES: (fresh_verification, recent_preflight),
    Action.SHIFT_TRAFFIC: (fresh_verification, reverse_sync_healthy),
    Action.MARK_STABLE: (passing_decommission_check,),
    Action.DECOMMISSION: (grace_period_over,),
}


def requirements_for(action: Action) -> tuple[Requirement, ...]:
    return REQUIREMENTS.get(action, ())
