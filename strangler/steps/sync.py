"""Online sync as steps: start it, apply changes, stop it, and say how it stands.

- :func:`start` is ``Action.START_SYNC`` (copied → syncing): the slot the copy (or the
  cutover) created must be there; sync never copies.
- :func:`apply` runs the applier in the direction the phase calls for (forward until writes
  are cut over, reverse after) until stopped, caught up, or one round done.
- :func:`stop` drops the slot, publication and position, as the ``stop_sync`` step.
- :func:`status` is the slot, lag and WAL warning of the current direction;
  :func:`record_lag` keeps the lag over time for ``strangler report``.
- :func:`plan` (with ``inspect``) explains the mechanism and checks what the monolith allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.errors import CheckFailed, SlotGone, StranglerError
from strangler.journal import Journal
from strangler.pg.connect import connect
from strangler.pg.sync import cdc
from strangler.pg.sync.apply import Round
from strangler.pg.sync.lag import LagSample
from strangler.pg.sync.partitions import partitioned_roots
from strangler.pg.sync.slot import Direction, check_replica_identity, slot_name
from strangler.phases import Action, Phase
from strangler.spec import SyncSpec
from strangler.steps import bulk
from strangler.steps.records import Event, LagHistory, Progress
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan
from strangler.steps.wiring import sync_route
from strangler.throttle.brake import NO_BRAKE

__all__ = [
    "SyncMechanism",
    "SyncRun",
    "apply",
    "direction",
    "direction_in",
    "plan",
    "record_lag",
    "route",
    "start",
    "status",
    "stop",
    "stop_direction",
]

_BEFORE_SLOT = {Phase.PLANNED, Phase.SCHEMA_READY}
_FORWARD = {Phase.COPIED, Phase.SYNCING, Phase.VERIFIED}


def direction_in(phase: Phase) -> Direction | None:
    """Which way sync runs in ``phase`` (None: no slot exists yet, or any more)."""
    if phase in _BEFORE_SLOT or phase in (Phase.OLD_PATH_REMOVED, Phase.DECOMMISSIONED):
        return None
    return "forward" if phase in _FORWARD else "reverse"


def direction(rb: Runbook) -> Direction:
    return direction_in(rb.phase) or "forward"


def route(rb: Runbook) -> cdc.SyncRoute:
    """The route sync runs on now."""
    return sync_route(rb.spec, rb.name, direction(rb))


def _slot_gone(r: cdc.SyncRoute) -> CheckFailed:
    if r.direction == "forward":
        return CheckFailed(
            f"sync of {r.service} has no replication slot {r.slot!r}: it was removed "
            "(sync --stop) or the copy was made without one, so the rows in the service schema "
            "no longer meet a change stream",
            hint=f"'strangler rollback {r.service} --schema --reason …', then 'strangler copy "
            f"{r.service}' copies again and creates the slot with the copy",
        )
    return CheckFailed(
        f"reverse sync of {r.service} has no replication slot {r.slot!r}: the "
        "monolith's tables no longer follow the service schema",
        hint=f"'strangler sync {r.service} --status' shows what is left; the cutover "
        "creates the reverse slot",
    )


def start(rb: Runbook) -> cdc.SyncRoute:
    """Before sync applies: the slot must exist; a freshly copied service moves to
    ``syncing``. Returns the route to apply on."""
    if rb.phase in (Phase.PLANNED, Phase.SCHEMA_READY):
        rb.check(Action.START_SYNC)  # refuses, naming 'strangler copy' as the step first
    r = route(rb)
    now = cdc.status(r)
    group = rb.service.sync.decoder if rb.service.sync else None
    if not now.slot_exists and group and r.direction == "forward":
        raise CheckFailed(  # issue 17: the group's decoder applies this service's changes
            f"{rb.name} shares decoder group {group!r}: its changes are applied there",
            hint=f"run 'strangler decoder {group}' (--status shows where each service stands)",
        )
    if not now.slot_exists:
        raise _slot_gone(r)
    if now.slot_lost:
        raise cdc.invalidated(r)
    if now.applied_lsn is None:
        # The copy finished but died before storing the position: the slot has not moved.
        lsn = cdc.attach(r)
        rb.journal.event(rb.name, Event.ATTACH_SYNC, status="ok", details={"lsn": lsn})
    if rb.phase is Phase.COPIED:
        with rb.step(Action.START_SYNC, resumable=True) as step:
            step.details.update(slot=r.slot, applied_lsn=cdc.status(r).applied_lsn)
    return r


@dataclass
class SyncRun:
    """What one :func:`apply` did. ``handed_over``: the slot was dropped by a write cutover
    or its rollback, which now runs sync the other way; this run ended because of it."""

    route: cdc.SyncRoute
    rows: int = 0
    transactions: int = 0
    caught_up: bool = False
    status: cdc.SyncStatus | None = None
    handed_over: str | None = None  # what happened, when the other direction took over

    def to_dict(self) -> dict[str, Any]:
        out = self.status.to_dict() if self.status else {}
        out.update(
            direction=self.route.direction, rows_this_run=self.rows, caught_up=self.caught_up
        )
        if self.handed_over:
            out["handed_over"] = self.handed_over
        return out


_SWITCHES = {str(Action.CUTOVER_WRITES), str(Action.ROLLBACK_WRITES)}


def _handed_over(rb: Runbook, r: cdc.SyncRoute) -> str | None:
    """Why the slot ``r`` read from is gone, when a write cutover (or its rollback) took it:
    the switch is under way (its intent has no outcome yet) or done (the phase now runs
    sync the other way). None: something else dropped it."""
    switching = [e for e in rb.journal.dangling(rb.name) if e.step in _SWITCHES]
    now = direction_in(rb.phase)
    if not switching and now == r.direction:
        return None
    other = "reverse" if r.direction == "forward" else "forward"
    what = "writes were cut over" if other == "reverse" else "writes were rolled back"
    return (
        f"{r.direction} sync of {rb.name} ended: {what} ('strangler "
        f"{'cutover' if other == 'reverse' else 'rollback'} {rb.name}'), which drained it and "
        f"dropped slot {r.slot}; {other} sync now carries the changes: run 'strangler sync "
        f"{rb.name}' again to apply them"
    )


def apply(
    rb: Runbook,
    *,
    stop: threading.Event | None = None,
    on_round: Callable[[Round], None] | None = None,
    once: bool = False,
    until_caught_up: bool = False,
) -> SyncRun:
    """Start (if needed) and apply changes until ``stop`` is set, caught up, or one round."""
    r = start(rb)
    run = SyncRun(r)
    # issue 17: a running sync waits while the monolith is hurt; a drain (before verify,
    # cutover or a traffic step) does not, it is bounded by its own timeout.
    brake = NO_BRAKE if until_caught_up else bulk.brake(rb, "sync", for_sync=True)

    def count(rnd: Round) -> None:
        run.rows += rnd.rows
        run.transactions += rnd.transactions
        if on_round:
            on_round(rnd)
        brake.between("round")

    try:
        last = cdc.run(r, stop=stop, on_round=count, once=once, until_caught_up=until_caught_up)
    except SlotGone as exc:
        handed = _handed_over(rb, r)
        if handed is None:
            _journal_failure(rb, r, exc, run)
            raise
        run.handed_over = handed
        rb.journal.event(
            rb.name, Event.SYNC, status="handed_over",
            details={"direction": r.direction, "rows": run.rows, "why": handed},
        )  # fmt: skip
        run.status = cdc.status(r)
        return run
    except StranglerError as exc:
        _journal_failure(rb, r, exc, run)
        raise
    run.caught_up = last.caught_up
    run.status = cdc.status(r)
    return run


def _journal_failure(rb: Runbook, r: cdc.SyncRoute, exc: StranglerError, run: SyncRun) -> None:
    """A sync that stopped on an error is part of the service's history (issue 12)."""
    rb.journal.event(
        rb.name,
        Event.SYNC,
        status="failed",
        details={
            "direction": r.direction,
            "slot": r.slot,
            "rows": run.rows,
            "error": exc.message,
            "error_type": type(exc).__name__,
            "hint": exc.hint,
        },
    )


@dataclass(frozen=True)
class Stopped:
    slot: str
    slot_dropped: bool
    publication_dropped: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stop_direction(rb: Runbook) -> Direction:
    """Which slot ``sync --stop`` removes: the reverse one from the write cutover on (also
    once the old path is gone: a reverse slot left behind still holds WAL), else forward."""
    order = list(Phase)
    return "reverse" if order.index(rb.phase) >= order.index(Phase.WRITES_CUT_OVER) else "forward"


def stop(rb: Runbook, *, force: bool = False, reason: str | None = None) -> Stopped:
    """Drop the slot, publication and stored position of the current direction.

    A step (``stop_sync``) that leaves the phase alone: a reverse stop removes the way back
    for writes, so it waits for its evidence
    (:data:`strangler.steps.requirements.reverse_sync_not_needed`); a forward stop makes the
    verification obsolete (the copy no longer follows the monolith)."""
    way = stop_direction(rb)
    r = sync_route(rb.spec, rb.name, way)
    with rb.step(
        Action.STOP_SYNC,
        details={"direction": way, "slot": r.slot},
        force=force,
        reason=reason,
    ) as step:
        result = cdc.end(r)
        step.details.update(result)
    return Stopped(
        r.slot, bool(result.get("slot_dropped")), bool(result.get("publication_dropped"))
    )


def status(rb: Runbook) -> cdc.SyncStatus:
    return cdc.status(route(rb))


def record_lag(
    journal: Journal, service: str, sample: LagSample, *, every: float = 5.0, keep: int = 1500
) -> bool:
    """Keep ``sample`` in the service's lag history (what ``strangler report`` charts) when the
    newest kept one is at least ``every`` seconds older; returns whether it was kept.

    The history stays under ``keep`` samples by thinning its older half (every other sample
    dropped) when full: recent lag at full detail, a long sync's early days coarser."""
    progress = Progress(journal, service)
    history = progress.load(LagHistory) or LagHistory()
    if history.samples:
        newest = datetime.fromisoformat(str(history.samples[-1][0]))
        if (sample.at - newest).total_seconds() < every:
            return False
    row = [
        sample.at.isoformat(),
        sample.direction,
        sample.lag_bytes,
        None if sample.lag_seconds is None else round(sample.lag_seconds, 3),
        sample.retained_wal_bytes,
    ]
    samples = [*history.samples, row]
    if len(samples) > keep:
        half = len(samples) // 2
        samples = samples[:half:2] + samples[half:]
    progress.save(LagHistory(samples))
    return True


# --------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class SyncMechanism:
    """Which mechanism carries the changes and why (``strangler plan``'s sync section)."""

    mechanism: str
    why: str
    native: str | None = None
    native_possible: bool = False
    slots: str | None = None
    limits: str | None = None
    monolith: str | None = None
    partitions: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def mechanism(rb: ServiceRef, *, inspect: bool) -> SyncMechanism:
    svc = rb.service
    if svc.strategy == "move":
        return SyncMechanism(
            mechanism="none (strategy: move)",
            why="nothing is copied: the monolith and the service use the same tables, the "
            "monolith through its compatibility views, so there is nothing to keep in sync",
        )
    if svc.strategy != "online":
        return SyncMechanism(
            mechanism="none (strategy: copy)",
            why="the copy is taken once; writes to the moved tables must stop before it is "
            "verified and traffic moves; strategy: online keeps the copy current instead",
        )
    src, dst = rb.spec.source.schema_, svc.target.schema_
    native = src == dst and svc.target.dsn is not None
    limits = svc.sync or SyncSpec()
    warnings: list[str] = []
    monolith = None
    partitions = None
    if inspect:
        try:
            with connect(rb.spec.source.dsn, role="monolith", connect_timeout=5) as conn:
                row = conn.execute("SHOW wal_level").fetchone()
                level = row[0] if row else "?"
                monolith = f"wal_level = {level}"
                if level != "logical":
                    warnings.append(
                        f"the monolith runs with wal_level = {level}; logical decoding needs "
                        "wal_level = logical (ALTER SYSTEM SET wal_level = logical; then a "
                        "restart)"
                    )
                try:
                    check_replica_identity(conn, src, list(svc.tables))
                except CheckFailed as exc:
                    warnings.append(exc.message)
                roots = partitioned_roots(conn, src, list(svc.tables))
                if roots:
                    partitions = (
                        f"{', '.join(roots)} partitioned: published through the root "
                        "(publish_via_partition_root), so every partition's changes, and rows "
                        "moving between partitions, arrive as changes of the moved table; a "
                        "partition attached, detached or created on either side during sync "
                        "stops sync until both trees are equal again"
                    )
        except StranglerError as exc:
            monolith = f"not inspected: {exc.message}"
    return SyncMechanism(
        mechanism="logical decoding (pgoutput), decoded and applied by strangler; streamed "
        "over a replication connection (START_REPLICATION)",
        why=(
            f"changes to {src}.<table> are applied to {dst}.<table>: strangler remaps the "
            "schema, stores its position in the same transaction as the rows (exactly once "
            "across kill -9), gates writes for the cutover and runs the same code in reverse. "
            "Streamed, the monolith decodes each change once; the SQL slot functions would "
            "decode again from the slot's restart point on every poll "
            "(docs/benchmarks-cdc.md compares the two)"
        ),
        native=(
            "possible here (same schema and table names on another instance), but not used: "
            "a subscription cannot gate writes or store its position with the rows, and "
            "strangler must run the reverse direction itself"
            if native
            else f"not applicable: a subscription applies to the same schema name, and "
            f"{src} → {dst} needs a remap"
        ),
        native_possible=native,
        slots=f"{slot_name(rb.name)} (until cutover), {slot_name(rb.name, 'reverse')} (after)",
        limits=(
            f"max_retained_wal {limits.max_retained_wal or 'unset'} bytes, "
            f"max_lag {limits.max_lag} bytes before traffic may shift"
        ),
        monolith=monolith,
        partitions=partitions,
        warnings=warnings,
    )


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    r = sync_route(rb.spec, rb.name, "forward")
    return StepPlan(
        action=Action.START_SYNC.value,
        source=Phase.COPIED.value,
        target=Phase.SYNCING.value,
        summary="capture the monolith's changes (logical decoding) and apply them",
        operations=(
            Operation("monolith", f"stream slot {r.slot} (START_REPLICATION, pgoutput)"),
            Operation(
                f"{rb.name} database" if rb.service.target.dsn else "monolith",
                f"apply each round to {r.target_schema}.<table> with the position, in one "
                "transaction",
            ),
        ),
        sections={"sync": mechanism(rb, inspect=inspect)},
    )


def drain(rb: Runbook, timeout: float) -> SyncRun:
    """Apply everything committed so far (beside a running ``strangler sync``, wait for it
    to), giving up after ``timeout`` seconds."""
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        return apply(rb, stop=stop, until_caught_up=True)
    finally:
        timer.cancel()


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    r = start(rb)
    return Advanced(Action.START_SYNC.value, rb.phase.value, f"sync started from slot {r.slot}")
