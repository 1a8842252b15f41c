"""The evidence checks behind :data:`strangler.steps.requirements.REQUIREMENTS`: the copy, its
data path, sync and traffic.

Each check runs inside the service's lock at the moment its step acts, with the
:class:`~strangler.steps.types.Moment` it is about to act at. It raises CheckFailed (the
refusal, naming what to do) or returns the evidence it was checked against, which
:meth:`strangler.steps.runbook.Runbook.step` writes into the step's intent. What it reads is
either the journal, read now inside the lock (nobody else can act on the service meanwhile),
or a server, measured now. Nothing here changes anything: a refused step changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.phases import Action, Phase
from strangler.spec import SyncSpec
from strangler.steps import facts, wiring
from strangler.steps.records import BakeState, CopyWatermark, Event, Progress, RolledBack
from strangler.steps.types import JournaledRef, Moment

if TYPE_CHECKING:
    from strangler.pg.sync import cdc
    from strangler.pg.sync.slot import Direction

__all__ = [
    "forward_sync_alive",
    "no_rollback_since",
    "no_writes_since_copy",
    "recent_preflight",
    "reverse_sync_alive",
    "reverse_sync_healthy",
    "reverse_sync_not_needed",
    "verification",
]

Evidence = dict[str, Any]


def _at(entry: Any) -> str:
    return f"{entry.at:%Y-%m-%d %H:%M:%S} UTC"


def verification(rb: JournaledRef, moment: Moment) -> Evidence:
    """The newest verification that compared rows passed, and nothing changed the copy or its
    data path since. The runbook's "DO NOT proceed with cutover" as a rule: counts prove
    nothing about values, and a proof older than a re-copy describes another copy."""
    entries = rb.journal.history(rb.name)
    hint = f"strangler verify {rb.name}"
    found = facts.current_verification(entries, proof_only=True)
    if found is None:
        raise CheckFailed(f"{rb.name}: the copy has never been verified", hint=hint)
    proof = found.entry
    if proof.status != "passed":
        raise CheckFailed(
            f"{rb.name}: the last verification ({_at(proof)}) found differences; do not "
            "proceed with cutover",
            hint=f"repair the copy, then run '{hint}'",
        )
    if found.obsoleted_by is not None:
        change = found.obsoleted_by
        what = change.step
        if change.step == Action.STOP_SYNC:
            what = "the forward sync stopped"
        raise CheckFailed(
            f"{rb.name}: the copy changed ({what} at {_at(change)}) after the last passing "
            f"verification ({_at(proof)})",
            hint=hint,
        )
    return {
        "verification": proof.id,
        "at": proof.at.isoformat(),
        "mode": proof.details.get("mode"),
        "status": proof.status,
    }


def recent_preflight(rb: JournaledRef, moment: Moment) -> Evidence:
    """A passing preflight younger than ``preflight.max_age`` (only when the spec has one)."""
    pre = rb.service.preflight
    if pre is None:
        return {"skipped": "no preflight: section in the spec"}
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
    return {"preflight": last.id, "at": last.at.isoformat(), "age": format_duration(age)}


def _slot(rb: JournaledRef, direction: Direction) -> tuple[cdc.SyncRoute, cdc.SyncStatus]:
    # The sync and schema mechanism is imported where a check measures a server: a step
    # without such requirements (a traffic rollback) does not pay for it at start-up.
    from strangler.pg.sync import cdc

    route = wiring.sync_route(rb.spec, rb.name, direction)
    return route, cdc.status(route)


def _refuse_lost(rb: JournaledRef, route: cdc.SyncRoute, info: cdc.SyncStatus) -> None:
    """A slot the server invalidated (``max_slot_wal_keep_size``) still exists, but nothing
    can be read from it: refused with the cause and the way back, before anything changes
    (issue 15's campaign: a cutover went on to fail halfway with PostgreSQL's bare error)."""
    if info.slot_lost:
        from strangler.pg.sync import cdc

        lost = cdc.invalidated(route)
        raise CheckFailed(f"{rb.name}: {lost.message}", hint=lost.hint)


def _slot_evidence(route: cdc.SyncRoute, info: cdc.SyncStatus) -> Evidence:
    return {"slot": route.slot, "applied_lsn": info.applied_lsn, "lag_bytes": info.lag_bytes}


def forward_sync_alive(rb: JournaledRef, moment: Moment) -> Evidence:
    """Before writes are cut over: the forward slot and its stored position exist, measured
    now (the cutover drains exactly that slot; without it changes would be lost)."""
    if rb.service.strategy != "online":
        return {"skipped": "strategy copy"}
    route, info = _slot(rb, "forward")
    if not info.slot_exists or info.applied_lsn is None:
        raise CheckFailed(
            f"{rb.name}: forward sync slot {route.slot!r} "
            + ("has no stored position" if info.slot_exists else "does not exist")
            + ", so the service schema no longer follows the monolith and a cutover would "
            "lose the changes in between",
            hint=f"'strangler sync {rb.name} --status' shows what exists; after a 'sync "
            f"--stop', 'strangler rollback {rb.name} --schema' and copy again",
        )
    _refuse_lost(rb, route, info)
    return _slot_evidence(route, info)


def reverse_sync_alive(rb: JournaledRef, moment: Moment) -> Evidence:
    """Before writes go back to the monolith: the reverse slot and its position exist, so
    every write the service took reaches the monolith's tables (measured now)."""
    route, info = _slot(rb, "reverse")
    if not info.slot_exists or info.applied_lsn is None:
        raise CheckFailed(
            f"{rb.name}: reverse sync slot {route.slot!r} "
            + ("has no stored position" if info.slot_exists else "does not exist")
            + ": the monolith's tables do not have the service's writes, and moving writes "
            "back would lose them",
            hint=f"'strangler sync {rb.name} --status' shows what exists",
        )
    _refuse_lost(rb, route, info)
    return _slot_evidence(route, info)


def reverse_sync_healthy(rb: JournaledRef, moment: Moment) -> Evidence:
    """Before traffic moves on an online service: reverse sync exists and keeps up, measured
    now. Once traffic reaches the service, rolling writes back is only safe while the
    monolith's tables follow it."""
    if rb.service.strategy != "online":
        return {"skipped": "strategy copy"}
    route, info = _slot(rb, "reverse")
    if not info.slot_exists or info.applied_lsn is None:
        raise CheckFailed(
            f"{rb.name}: reverse sync slot {route.slot!r} does not exist, so the monolith's "
            "tables do not follow the service and rolling writes back would lose data",
            hint=f"'strangler cutover {rb.name}' creates it; 'strangler sync {rb.name} "
            "--status' shows what exists",
        )
    _refuse_lost(rb, route, info)  # it exists, but the monolith's tables stopped following
    limit = (rb.service.sync or SyncSpec()).max_lag
    lag = info.lag_bytes or 0
    if lag > limit:
        raise CheckFailed(
            f"{rb.name}: reverse sync is {lag:,} bytes of WAL behind the service, more than "
            f"sync.max_lag ({limit:,})",
            hint=f"run 'strangler sync {rb.name}' (after cutover it applies the service's "
            "changes to the monolith), then try again",
        )
    return {**_slot_evidence(route, info), "max_lag": limit}


def no_rollback_since(rb: JournaledRef, moment: Moment) -> Evidence:
    """A rollback always wins: a traffic move decided before an operator (or a gate) rolled
    traffic back never happens after it. Read from the journal inside the lock, against the
    newest entry the mover had seen when it decided (``moment.seen``); a walk also stops on
    the rollback record (:class:`RolledBack`) that only ``--retry`` clears."""
    last = rb.journal.last(rb.name, str(Action.ROLLBACK_TRAFFIC), status="ok")
    record = Progress(rb.journal, rb.name).load(RolledBack)
    after_seen = last is not None and moment.seen is not None and last.id > moment.seen
    if after_seen or (moment.walking and record is not None):
        when = _at(last) if last is not None else str(record.at if record else "?")
        who = f" by {last.operator}" if last is not None else ""
        why = f": {record.reason}" if record is not None else ""
        move = f"this move to {moment.weight:g} %" if moment.weight is not None else "this move"
        raise CheckFailed(
            f"{rb.name}: traffic was rolled back{who} at {when}{why}, after {move} was "
            "decided; a rollback always wins, nothing was moved",
            hint=f"when the service is fixed: 'strangler shift {rb.name} --auto --retry' (or "
            f"--to N)",
        )
    return {"seen": moment.seen, "last_rollback": last.id if last else None}


def no_writes_since_copy(rb: JournaledRef, moment: Moment) -> Evidence:
    """Before the service schema is dropped: nothing but strangler wrote to it, measured now.

    Copy strategy: the copy's watermark (the target's xid after its last write, each
    table's rows) against the tables now; before the copy finished (it crashed or failed),
    the rows of the transactions it journaled before writing are its own (issue 12).
    Online, before writes are cut over, the write gate on the service's tables refuses every
    application write (sync applies as a replica): the gate must be on every table and
    closed now, or not on yet because the copy never finished (its rows are the copy's), or
    the schema must hold no row at all.
    """
    from strangler.pg.connect import connect
    from strangler.pg.schema.drop import schema_exists, writes_since_copy
    from strangler.pg.sync.gate import gate_state
    from strangler.work.queue import copied_xacts

    if rb.service.strategy == "move":
        # Nothing was copied: the tables move back with every row, none is dropped.
        return {"skipped": "strategy move: the tables move back, no row is dropped"}
    schema = rb.service.target.schema_
    tables = list(rb.service.tables)
    with connect(rb.spec.target_dsn(rb.name), role="service target") as conn:
        if not schema_exists(conn, schema):
            # An earlier attempt of this step dropped it and failed after (the monolith
            # unreachable as its slot went): no row is left to lose.
            return {"schema": f"{schema} is gone already: nothing left to lose"}
        if rb.service.strategy != "online":
            progress = Progress(rb.journal, rb.name)
            mark = progress.load(CopyWatermark)
            # The copy's own transactions: the journal's, and the chunk workers' (their
            # queue rows were marked done in the transaction that wrote the chunk).
            xacts = [*progress.copy_xacts(), *copied_xacts(conn, rb.name)]
            changed = writes_since_copy(
                conn, schema, mark.xid if mark else None, mark.rows if mark else {}, xacts
            )
            if changed and mark is None:  # the copy never finished (crashed or failed)
                raise CheckFailed(
                    f"refusing to drop schema {schema!r}: rows reached it that strangler's "
                    f"copy did not write ({'; '.join(changed)})",
                    hint="find out who wrote them (their xmin is not one of the copy's "
                    "transactions); delete them, or keep them and drop the schema yourself, "
                    f"then run 'strangler rollback {rb.name} --schema --reason …' again",
                )
            if changed:
                raise CheckFailed(
                    f"refusing to drop schema {schema!r}: writes reached it since the copy "
                    f"({'; '.join(changed)})",
                    hint="the service schema holds data the monolith may not have; reconcile "
                    "first (strangler verify) and roll back writes if they were cut over",
                )
            return {"watermark_xid": mark.xid if mark else None, "changed": []}
        gate = gate_state(conn, rb.name, "service", schema, tables)
        if gate.closed and not gate.missing:
            return {"gate": "closed on every table", "tables": tables}
        if (
            len(gate.missing) == len(tables)
            and rb.journal.state(rb.name).phase == Phase.SCHEMA_READY
        ):
            # The gate goes on when an online copy ends: an unfinished copy's rows are its own.
            return {"gate": "not on yet", "why": "the copy never finished (schema_ready)"}
        holding = writes_since_copy(conn, schema, None, {})
    if holding:
        where = (
            f"the write gate is missing on {', '.join(gate.missing)}"
            if gate.missing
            else "the write gate is open"
        )
        raise CheckFailed(
            f"refusing to drop schema {schema!r}: {where}, so the rows it holds may include "
            f"the application's writes ({'; '.join(holding)})",
            hint=f"compare with 'strangler verify {rb.name}'; drop it by hand only if you are "
            "sure nothing but strangler wrote to it",
        )
    return {"gate": "not installed", "rows": "none"}


def reverse_sync_not_needed(rb: JournaledRef, moment: Moment) -> Evidence:
    """Stopping the reverse sync removes the way back for writes (``rollback --writes``
    needs the monolith's tables to follow the service). Allowed once all of the route is on
    the service and its final bake is over, read from the journal in the lock. A forward
    stop is not refused: it makes the verification it fed obsolete instead."""
    direction = moment.details.get("direction")
    if direction != "reverse":
        return {"direction": direction, "note": "the verification it fed becomes obsolete"}
    state = rb.journal.state(rb.name)
    phase = Phase(state.phase)
    how = f"strangler rollback {rb.name} --writes"
    if phase not in (Phase.TRAFFIC_COMPLETE, Phase.STABLE, Phase.OLD_PATH_REMOVED):
        raise CheckFailed(
            f"{rb.name}: stopping reverse sync now removes the way back ('{how}' needs the "
            f"monolith's tables to follow the service), and {rb.name} is {phase.value!r} at "
            f"{state.weight:g} % traffic",
            hint="walk traffic to 100 % first ('strangler shift … --auto'), or --force "
            "--reason '…' if the way back is given up on purpose",
        )
    bake = Progress(rb.journal, rb.name).load(BakeState)
    if phase is Phase.TRAFFIC_COMPLETE and bake is not None and bake.status != "complete":
        raise CheckFailed(
            f"{rb.name}: the final bake at 100 % is still {bake.status}; stopping reverse sync "
            f"before it is judged removes the way back ('{how}')",
            hint=f"let 'strangler shift {rb.name} --auto' finish the bake first",
        )
    return {"phase": phase.value, "weight": state.weight, "bake": bake.status if bake else None}
