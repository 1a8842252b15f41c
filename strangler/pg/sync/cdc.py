"""Online sync of one service: begin (slot + snapshot copy), run (apply rounds), stop.

A :class:`SyncRoute` says which way changes flow: ``forward`` (monolith's tables → service
schema, until writes are cut over) or ``reverse`` (service schema → monolith's tables, after
cutover, so going back is always possible). Everything below works the same both ways.

Usage::

    route = SyncRoute("order_service", "forward", …)   # strangler.steps.wiring.sync_route
    begin(route, copy=lambda snapshot: copy_tables(..., snapshot=snapshot))
    run(route, stop=event, on_round=print, until_caught_up=True)
    end(route)                     # drops the slot, the publication and the position row
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from strangler.errors import CheckFailed, SlotGone
from strangler.pg.connect import connect
from strangler.pg.sync.apply import Applier, NoPosition, Round
from strangler.pg.sync.gate import Side, install_gate
from strangler.pg.sync.pgoutput import format_lsn, parse_lsn
from strangler.pg.sync.position import (
    delete_position,
    emit_mark,
    ensure_position,
    read_position,
    set_catch_up,
)
from strangler.pg.sync.slot import (
    Direction,
    check_replica_identity,
    create_publication,
    drop_sync_objects,
    exported_slot,
    slot_name,
    slot_status,
)
from strangler.pg.sync.stream import SlotStream, StreamLost

__all__ = [
    "SlotGone",
    "SyncRoute",
    "SyncStatus",
    "Watermark",
    "attach",
    "begin",
    "empty_targets",
    "end",
    "invalidated",
    "run",
    "status",
]


Reader = Literal["stream", "peek"]


@dataclass(frozen=True)
class SyncRoute:
    service: str
    direction: Direction
    source_dsn: str
    source_schema: str
    target_dsn: str
    target_schema: str
    tables: tuple[str, ...]
    source_role: str
    target_role: str
    max_wal_bytes: int | None = None

    @property
    def slot(self) -> str:
        return slot_name(self.service, self.direction)

    def connect_source(self) -> psycopg.Connection[Any]:
        return connect(self.source_dsn, role=self.source_role)

    def connect_target(self) -> psycopg.Connection[Any]:
        return connect(self.target_dsn, role=self.target_role)


def begin(
    route: SyncRoute,
    *,
    copy: Callable[[str | None], Any] | None = None,
    slot_timeout: float = 30.0,
    gate: bool = True,
) -> int:
    """Create publication, slot (with an exported snapshot) and position; returns the LSN.

    ``copy(snapshot)`` runs while the snapshot is alive; it must read the source under it
    (``SET TRANSACTION SNAPSHOT``). With ``copy=None`` (sides already equal, as in a
    cutover, or a copy still to come in catch-up mode) no snapshot is exported. ``gate``:
    close the receiving side to the application now (False: a copy still has to write it;
    :func:`attach` closes it afterwards). On any failure everything created here is dropped.
    """
    with route.connect_source() as src, route.connect_target() as dst:
        check_replica_identity(src, route.source_schema, route.tables)
        existing = slot_status(src, route.slot)
        if existing.exists:
            raise CheckFailed(
                f"replication slot {route.slot!r} already exists: sync of {route.service} "
                "has begun before",
                hint=f"'strangler sync {route.service}' resumes it; "
                f"'strangler sync {route.service} --stop' removes it to start over",
            )
        try:
            create_publication(src, route.slot, route.source_schema, route.tables)
            with exported_slot(
                route.source_dsn,
                src,
                route.slot,
                export_snapshot=copy is not None,
                timeout=slot_timeout,
            ) as slot:
                if copy is not None:
                    copy(slot.snapshot)
                delete_position(dst, route.slot)
                if gate:
                    _attach(route, dst, slot.consistent_lsn)
                else:
                    ensure_position(dst, route.slot, slot.consistent_lsn)
        except BaseException:
            drop_sync_objects(src, route.slot)
            raise
        return slot.consistent_lsn


def _attach(route: SyncRoute, dst: psycopg.Connection[Any], lsn: int) -> None:
    ensure_position(dst, route.slot, lsn)
    _gate_receiving_side(route, dst)


def _gate_receiving_side(route: SyncRoute, dst: psycopg.Connection[Any]) -> None:
    """The side that receives changes must not take the application's writes."""
    side: Side = "service" if route.direction == "forward" else "monolith"
    install_gate(dst, route.service, side, route.target_schema, route.tables, closed=True)


def attach(route: SyncRoute) -> int:
    """Finish a :func:`begin` whose copy completed but whose process died before the position
    was stored: the slot has not moved since it was created (nothing can advance it without a
    position), so its confirmed position is still the snapshot's consistent point.

    Returns the position sync starts from; a position already stored is kept.
    """
    with route.connect_source() as src, route.connect_target() as dst:
        slot = slot_status(src, route.slot)
        if not slot.exists or slot.confirmed_lsn is None:
            raise CheckFailed(
                f"replication slot {route.slot!r} does not exist",
                hint=f"'strangler copy {route.service}' creates it with the copy",
            )
        stored = read_position(dst, route.slot)
        lsn = stored["lsn"] if stored else slot.confirmed_lsn
        _attach(route, dst, lsn)
        return int(lsn)


def catch_up_after_copy(route: SyncRoute, validate: Sequence[tuple[str, str]] = ()) -> int:
    """After a copy made under several snapshots (``begin(copy=None, gate=False)``, then the
    copy): the stream from the slot's start up to now is applied by the catch-up rules
    (:mod:`strangler.pg.sync.catchup`), then the ``validate`` constraints, (table, name) of
    the target schema, are validated. "Now" is a mark of our own committed after the copy's
    last read; returns its LSN."""
    with route.connect_source() as src, route.connect_target() as dst:
        until = emit_mark(src)
        set_catch_up(dst, route.slot, until, validate)
    return until


def drop_foreign_keys(route: SyncRoute) -> list[str]:
    """Drop the foreign keys of the route's target tables (a copy starting again adds them
    after its rows, as the first one did); returns them as 'table.constraint'. Used before
    :func:`empty_targets` when an earlier attempt got as far as making them: rows reloaded
    chunk by chunk would meet them in any order, and TRUNCATE refuses a referenced table."""
    with route.connect_target() as dst, dst.transaction():
        rows = dst.execute(
            "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f'"
            " AND n.nspname = %s AND c.relname = ANY(%s) ORDER BY 1, 2",
            (route.target_schema, list(route.tables)),
        ).fetchall()
        for table, name in rows:
            dst.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(route.target_schema, table), sql.Identifier(name)
                )
            )
    return [f"{t}.{n}" for t, n in rows]


def empty_targets(route: SyncRoute) -> None:
    """Empty the route's target tables (all at once: foreign keys between them may exist),
    as replica, so a write gate left by an earlier attempt does not refuse it. Used when a
    copy must start again under a new slot."""
    with route.connect_target() as dst, dst.transaction():
        present = [
            t
            for t in route.tables
            if dst.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (sql.Identifier(route.target_schema, t).as_string(dst),),
            ).fetchone()
            == (True,)
        ]
        if present:
            dst.execute("SET LOCAL session_replication_role = replica")
            dst.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(route.target_schema, t) for t in present)
                )
            )


def end(route: SyncRoute) -> dict[str, Any]:
    """Drop the slot, the publication and the stored position (whichever exist)."""
    with route.connect_source() as src:
        dropped = drop_sync_objects(src, route.slot)
    with route.connect_target() as dst:
        delete_position(dst, route.slot)
    return {"slot": route.slot, **dropped}


def applier(
    route: SyncRoute, src: psycopg.Connection[Any], dst: psycopg.Connection[Any]
) -> Applier:
    return Applier(
        src,
        dst,
        slot=route.slot,
        publication=route.slot,
        source_schema=route.source_schema,
        target_schema=route.target_schema,
        tables=route.tables,
    )


def run(
    route: SyncRoute,
    *,
    stop: threading.Event | None = None,
    on_round: Callable[[Round], None] | None = None,
    until_caught_up: bool = False,
    until_lsn: int | None = None,
    once: bool = False,
    poll: float = 0.02,
    max_poll: float = 0.2,
    mark_every: float = 10.0,
    reader: Reader = "stream",
) -> Round:
    """Apply rounds from the slot until ``stop`` is set (or caught up / past ``until_lsn`` /
    one round). Returns the last round.

    ``reader="stream"``: a replication connection (:mod:`strangler.pg.sync.stream`); a round waits
    up to ``max_poll`` for changes, which wake it at once. ``reader="peek"``: the SQL slot
    functions, idle rounds backing off from ``poll`` to ``max_poll`` (kept to compare them in
    ``bench/bench_sync.py``). When another process holds the slot (a running
    ``strangler sync``), a call with ``until_lsn`` waits for that process to store the
    position instead; ``poll`` paces that wait and reconnections.
    """
    stop = stop or threading.Event()
    with route.connect_source() as src, route.connect_target() as dst:
        worker = applier(route, src, dst)
        if worker.partitioned:
            # A partition made on the receiving side since the gate went up (the way out of
            # a changed tree) gets the gate too.
            _gate_receiving_side(route, dst)
        if until_caught_up:
            until_lsn = max(until_lsn or 0, emit_mark(src))
        idle_since, delay = time.monotonic(), poll
        last = Round()
        stream: SlotStream | None = None
        try:
            while not stop.is_set():
                try:
                    if reader == "peek":
                        last = worker.run_round()
                    else:
                        if stream is None:
                            stream = _open_stream(route, worker)
                        last = worker.stream_round(stream, wait=poll if once else max_poll)
                except (psycopg.errors.UndefinedObject, NoPosition) as exc:
                    raise _gone(route, exc) from None
                except psycopg.errors.ObjectNotInPrerequisiteState:
                    if slot_status(src, route.slot).lost:
                        raise invalidated(route) from None
                    raise
                except psycopg.errors.ObjectInUse:
                    # Another applier streams this slot: its stored position is ours to watch.
                    last = Round(position=worker.stored_position())
                    if until_lsn is not None and last.position >= until_lsn:
                        break
                    stop.wait(poll)
                    continue
                except StreamLost as exc:
                    if stream is not None:
                        stream.close()
                        stream = None
                    if not slot_status(src, route.slot).exists:
                        raise _gone(route, exc) from None
                    stop.wait(poll)
                    continue
                if on_round:
                    on_round(last)
                if once:
                    break
                if until_lsn is not None and last.position >= until_lsn:
                    break
                if last.transactions or not last.caught_up:
                    idle_since, delay = time.monotonic(), poll
                    continue
                if time.monotonic() - idle_since > mark_every:
                    # Idle: a mark lets the slot advance so the monolith can recycle WAL.
                    emit_mark(src)
                    idle_since = time.monotonic()
                if reader == "peek":
                    stop.wait(delay)
                    delay = min(max_poll, delay * 2)
        finally:
            if stream is not None:
                stream.close()
        return last


def _open_stream(route: SyncRoute, worker: Applier) -> SlotStream:
    return SlotStream(
        route.source_dsn,
        role=route.source_role,
        slot=route.slot,
        publication=route.slot,
        start_lsn=worker.stored_position(),
    )


def invalidated(route: SyncRoute) -> SlotGone:
    """The server invalidated the slot (``max_slot_wal_keep_size``): what is lost, and the way
    on, which differs by direction."""
    if route.direction == "forward":
        hint = (
            f"the copy in the service schema can no longer be kept current: "
            f"'strangler rollback {route.service} --schema', then 'strangler copy "
            f"{route.service}' copies again under a new slot (raise max_slot_wal_keep_size, "
            "or keep 'strangler sync' running, so it does not happen again)"
        )
    else:
        hint = (
            "the monolith's tables no longer follow the service: 'strangler rollback "
            f"{route.service} --writes' would lose the service's writes since, so traffic "
            f"will not move and decommission cannot archive them; 'strangler sync "
            f"{route.service} --rebuild' makes a new slot and copies the old tables level "
            f"with the service, then 'strangler sync {route.service}' catches up"
        )
    return SlotGone(
        f"replication slot {route.slot!r} was invalidated by the server: it removed WAL the "
        "slot still needed (max_slot_wal_keep_size), so the changes since sync last ran "
        "cannot be read any more",
        hint=hint,
    )


def _gone(route: SyncRoute, exc: BaseException) -> SlotGone:
    return SlotGone(
        f"replication slot {route.slot!r} no longer exists: writes were cut over or "
        f"sync was stopped ({exc})",
        hint=f"'strangler sync {route.service} --status' shows what runs now",
    )


@dataclass
class SyncStatus:
    """Slot, WAL retained and lag of one route (``sync --status``, ``strangler status``)."""

    service: str
    direction: str
    slot: str
    slot_exists: bool
    active_pid: int | None
    retained_wal_bytes: int | None
    lag_bytes: int | None
    applied_lsn: str | None
    last_commit_time: Any
    applied_at: Any
    rows_applied: int
    transactions_applied: int
    warnings: list[str]
    slot_lost: bool = False  # invalidated by the server: nothing can be read from it

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status(route: SyncRoute) -> SyncStatus:
    """Slot, WAL retained and lag, for ``strangler sync --status`` and ``strangler status``."""
    with route.connect_source() as src:
        slot = slot_status(src, route.slot)
    with route.connect_target() as dst:
        pos = read_position(dst, route.slot)
    lag = None
    if slot.exists and pos and slot.current_lsn is not None:
        lag = max(0, slot.current_lsn - pos["lsn"])
    warnings: list[str] = []
    if slot.lost:
        warnings.append(invalidated(route).message)
    limit = route.max_wal_bytes
    if limit is not None and (slot.retained_bytes or 0) > limit:
        warnings.append(
            f"slot {route.slot} retains {slot.retained_bytes:,} bytes of WAL on the "
            f"{route.source_role}, more than the spec's sync.max_retained_wal ({limit:,}); is "
            f"'strangler sync {route.service}' running?"
        )
    return SyncStatus(
        service=route.service,
        direction=route.direction,
        slot=route.slot,
        slot_exists=slot.exists,
        active_pid=slot.active_pid,
        retained_wal_bytes=slot.retained_bytes,
        lag_bytes=lag,
        applied_lsn=format_lsn(pos["lsn"]) if pos else None,
        last_commit_time=pos["commit_time"] if pos else None,
        applied_at=pos["applied_at"] if pos else None,
        rows_applied=pos["rows"] if pos else 0,
        transactions_applied=pos["transactions"] if pos else 0,
        warnings=warnings,
        slot_lost=slot.lost,
    )


class Watermark:
    """Verification's watermark (:class:`strangler.verify.watermark.SyncWatermark`, met
    structurally) over one forward route.

    Positions are ``pg_lsn`` text, as verification records them. Waiting applies rounds
    itself: with a ``strangler sync`` process running beside it the two appliers share the
    slot safely (the stored position is locked per round), and without one the wait still
    drains, so a recheck never depends on a process it cannot see.
    """

    def __init__(self, route: SyncRoute) -> None:
        self.route = route

    def source_position(self) -> str:
        """A position covering every transaction committed on the source so far."""
        with self.route.connect_source() as src:
            return format_lsn(emit_mark(src))

    def wait_applied(self, lsn: str, timeout: float) -> bool:
        target = parse_lsn(lsn)
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            last = run(self.route, stop=stop, until_lsn=target)
        finally:
            timer.cancel()
        return last.position >= target
