"""One decoder for many services (issue 17): one slot, one walsender, each change routed to
its service's target with that service's remap, each service keeping its own position.

Every logical slot decodes all of the monolith's WAL, so N services on N slots cost N times
the decoding on the monolith's CPU. A :class:`SharedRoute` groups services of one monolith:
one publication over all their tables and one slot (``strangler_shared_<group>``); a single
process streams it, and for each round hands every member the Begin and Commit of each
transaction and the changes of its own tables (the applier's own round, :func:`_apply`). Each member
commits its rows and its position (``<slot>/<service>`` in its own target) in one target
transaction, exactly as a service's own sync does, and skips transactions its position
already covers; the slot is confirmed only up to the lowest member position. So a kill -9 at
any moment loses and doubles nothing for any member.

Joining (:func:`join`): the shared slot is created first, then each member's own slot is
drained past a mark written after it, dropped, and its position carried over to the shared
key: nothing between the two slots is missed (the shared slot starts before the mark) or
applied twice (the member skips what its position covers). Leaving (:func:`leave`, before
a member's cutover) is the same handover backwards, and the others keep streaming.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.errors import CheckFailed
from strangler.pg.connect import connect
from strangler.pg.sync.apply import Applier, Round
from strangler.pg.sync.cdc import SyncRoute
from strangler.pg.sync.cdc import run as run_one
from strangler.pg.sync.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    decode,
    format_lsn,
)
from strangler.pg.sync.position import emit_mark, ensure_position, read_position
from strangler.pg.sync.slot import (
    check_replica_identity,
    create_publication,
    drop_sync_objects,
    exported_slot,
    slot_status,
)
from strangler.pg.sync.stream import SlotStream, StreamLost

__all__ = ["GroupRound", "SharedRoute", "join", "leave", "leave_all", "run", "status"]


@dataclass(frozen=True)
class SharedRoute:
    """A group of forward routes of one monolith, decoded once."""

    group: str
    members: tuple[SyncRoute, ...]

    @property
    def slot(self) -> str:
        return f"strangler_shared_{self.group}"

    @property
    def source_dsn(self) -> str:
        return self.members[0].source_dsn

    @property
    def source_schema(self) -> str:
        return self.members[0].source_schema

    def key(self, member: SyncRoute) -> str:
        """The member's row in its target's position table."""
        return f"{self.slot}/{member.service}"

    def check(self) -> None:
        if not self.members:
            raise CheckFailed(f"decoder group {self.group!r} has no service")
        owners: dict[str, str] = {}
        for m in self.members:
            if (m.source_dsn, m.source_schema) != (self.source_dsn, self.source_schema):
                raise CheckFailed(
                    f"services of decoder group {self.group!r} must read the same monolith "
                    f"schema; {m.service} reads another"
                )
            for t in m.tables:
                if t in owners:
                    raise CheckFailed(
                        f"table {t} is moved by both {owners[t]} and {m.service}; one table "
                        "can go to one service only"
                    )
                owners[t] = m.service


@dataclass
class GroupRound:
    """What one round of the shared decoder did, per member."""

    members: dict[str, Round] = field(default_factory=dict)
    position: int = 0  # confirmed to the slot: the lowest member position

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.members.values())


def join(route: SharedRoute, *, slot_timeout: float = 30.0) -> dict[str, str]:
    """Create the shared publication and slot (once) and move every member onto them.

    Each member's own slot must exist with a stored position (its copy made them); it is
    drained past a mark written after the shared slot exists, then dropped, and its position
    becomes the member's row under the shared key. Idempotent: run again after a kill -9."""
    route.check()
    tables = [t for m in route.members for t in m.tables]
    moved: dict[str, str] = {}
    with connect(route.source_dsn, role="monolith") as src:
        check_replica_identity(src, route.source_schema, tables)
        if not slot_status(src, route.slot).exists:
            create_publication(src, route.slot, route.source_schema, tables)
            with exported_slot(
                route.source_dsn, src, route.slot, export_snapshot=False, timeout=slot_timeout
            ):
                pass
        mark = emit_mark(src)  # after the shared slot: its stream holds everything past it
        for m in route.members:
            with connect(m.target_dsn, role=m.target_role) as dst:
                if read_position(dst, route.key(m)) is not None:
                    moved[m.service] = "already in the group"
                    continue
                own = slot_status(src, m.slot).exists
                if own:
                    run_one(m, until_lsn=mark)  # drain the member's own slot past the mark
                    drop_sync_objects(src, m.slot)  # ends a 'strangler sync' still on it
                stored = read_position(dst, m.slot)
                if stored is None:
                    raise CheckFailed(
                        f"{m.service} has no sync position to carry into the group: it never "
                        "synced (or was stopped)",
                        hint=f"'strangler copy {m.service}' (strategy: online) first",
                    )
                if own and stored["lsn"] < mark:
                    raise CheckFailed(f"{m.service}: its own slot did not drain past the mark")
                ensure_position(dst, route.key(m), stored["lsn"])
                dst.execute("DELETE FROM _strangler.sync_position WHERE slot = %s", (m.slot,))
                moved[m.service] = format_lsn(stored["lsn"])
    return moved


def leave(route: SharedRoute, member: SyncRoute, *, timeout: float = 600.0) -> str:
    """Give ``member`` its own slot again (before its cutover), the others untouched.

    Its own slot is created first (consistent point C), a mark M is written after it, and the
    shared stream is applied until the member's position passes M: everything before C is
    then applied, and the own slot's stream starts at C, so the member's position, carried to
    its own key, skips what it already has. Its shared row is removed last: a decoder still
    running with it as a member stops there (NoPosition) instead of applying twice; start it
    again without the member. Returns the position carried over."""
    with (
        connect(route.source_dsn, role="monolith") as src,
        connect(member.target_dsn, role=member.target_role) as dst,
    ):
        shared_pos = read_position(dst, route.key(member))
        if shared_pos is None:
            own = read_position(dst, member.slot)
            if own is not None and slot_status(src, member.slot).exists:
                return format_lsn(own["lsn"])  # left already
            raise CheckFailed(f"{member.service} is not in decoder group {route.group!r}")
        if not slot_status(src, member.slot).exists:
            create_publication(src, member.slot, member.source_schema, member.tables)
            with exported_slot(route.source_dsn, src, member.slot, export_snapshot=False):
                pass
        mark = emit_mark(src)
        busy = slot_status(src, route.slot).active_pid is not None
    if busy:
        # The group's decoder is running: it applies the member's share past the mark.
        deadline = time.monotonic() + timeout
        while True:
            with connect(member.target_dsn, role=member.target_role) as dst:
                now = read_position(dst, route.key(member))
            if now is None or now["lsn"] >= mark or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    else:
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            # Only this member's share, and the shared slot is not confirmed: the others
            # may still need what this member has applied.
            run(SharedRoute(route.group, (member,)), stop=stop, until_lsn=mark, confirm=False)
        finally:
            timer.cancel()
    with connect(member.target_dsn, role=member.target_role) as dst, dst.transaction():
        now = read_position(dst, route.key(member))
        if now is None or now["lsn"] < mark:
            raise CheckFailed(
                f"{member.service} did not catch up with the shared slot within {timeout:g}s",
                hint=f"run 'strangler decoder {route.group} --leave {member.service}' again",
            )
        ensure_position(dst, member.slot, now["lsn"])
        dst.execute("DELETE FROM _strangler.sync_position WHERE slot = %s", (route.key(member),))
    return format_lsn(now["lsn"])


def leave_all(route: SharedRoute) -> dict[str, Any]:
    """Drop the shared slot and publication and the members' shared positions."""
    with connect(route.source_dsn, role="monolith") as src:
        dropped = drop_sync_objects(src, route.slot)
    for m in route.members:
        with connect(m.target_dsn, role=m.target_role) as dst:
            if read_position(dst, route.key(m)) is not None:
                dst.execute("DELETE FROM _strangler.sync_position WHERE slot = %s", (route.key(m),))
    return {"slot": route.slot, **dropped}


def _apply(applier: Applier, messages: Sequence[Any]) -> Round:
    """One member's share of a round, in its own target transaction with its position: the
    applier's round and message loop, fed by the shared stream instead of its own slot
    (same skipping of what the position covers as :meth:`Applier.stream_round`)."""
    done = Round()
    with applier._round(done) as stored:
        applier._apply_stream(iter(messages), stored, done)
        done.caught_up = True
    return done


class _Member:
    def __init__(self, route: SharedRoute, m: SyncRoute, src: psycopg.Connection[Any]) -> None:
        self.route = m
        self.dst = connect(m.target_dsn, role=m.target_role)
        self.applier = Applier(
            src, self.dst, slot=route.key(m), publication=route.slot,
            source_schema=m.source_schema, target_schema=m.target_schema, tables=m.tables,
        )  # fmt: skip
        self.tables = set(m.tables)

    def close(self) -> None:
        self.dst.close()


def _route_round(
    messages: Sequence[Any], members: Sequence[_Member], relations: dict[int, str]
) -> dict[str, list[Any]]:
    """Each member's share of a round: every Begin/Commit, its own tables' messages."""
    owner = {t: m.route.service for m in members for t in m.tables}
    out: dict[str, list[Any]] = {m.route.service: [] for m in members}
    for msg in messages:
        if isinstance(msg, Begin | Commit):
            for lst in out.values():
                lst.append(msg)
        elif isinstance(msg, Relation):
            relations[msg.relid] = msg.name
            who = owner.get(msg.name)
            if who is not None:
                out[who].append(msg)
        elif isinstance(msg, Insert | Update | Delete):
            who = owner.get(relations.get(msg.relid, ""))
            if who is not None:
                out[who].append(msg)
        elif isinstance(msg, Truncate):
            split: dict[str, list[int]] = {}
            for relid in msg.relids:
                who = owner.get(relations.get(relid, ""))
                if who is not None:
                    split.setdefault(who, []).append(relid)
            for who, relids in split.items():
                out[who].append(Truncate(tuple(relids), msg.cascade, msg.restart_identity))
    return out


def _collect(
    stream: SlotStream, wait: float, budget: float = 0.1, limit: int = 20_000
) -> tuple[list[Any], bool]:
    """Whole transactions from the stream, as :meth:`Applier.stream_round` collects them."""
    messages: list[Any] = []
    changes, in_txn, started = 0, False, 0.0
    while True:
        data = stream.read(0.005 if messages and not in_txn else wait)
        if data is None:
            if in_txn:
                continue
            return messages, True
        msg = decode(data)
        if not messages:
            started = time.monotonic()
        messages.append(msg)
        if isinstance(msg, Begin):
            in_txn = True
        elif isinstance(msg, Commit):
            in_txn = False
            if changes >= limit or time.monotonic() - started >= budget:
                return messages, False
        elif isinstance(msg, Insert | Update | Delete):
            changes += 1


def run(
    route: SharedRoute,
    *,
    stop: threading.Event | None = None,
    on_round: Callable[[GroupRound], None] | None = None,
    until_lsn: int | None = None,
    until_caught_up: bool = False,
    max_poll: float = 0.2,
    mark_every: float = 10.0,
    confirm: bool = True,
) -> GroupRound:
    """Stream the shared slot and apply each member's share until ``stop`` (or caught up).

    Members without a position under the group's key (not joined yet, or left) are skipped:
    their changes stay in their own slots. ``confirm=False`` never moves the shared slot (a
    member leaving while the others stay behind it)."""
    stop = stop or threading.Event()
    with connect(route.source_dsn, role="monolith") as src:
        members: list[_Member] = []
        for sync_route in route.members:
            with connect(sync_route.target_dsn, role=sync_route.target_role) as dst:
                joined = read_position(dst, route.key(sync_route)) is not None
            if joined:
                members.append(_Member(route, sync_route, src))
        if not members:
            raise CheckFailed(
                f"no service of decoder group {route.group!r} has joined it",
                hint=f"run 'strangler decoder {route.group} --join' first",
            )
        relations: dict[int, str] = {}
        stream: SlotStream | None = None
        last = GroupRound()
        try:
            if until_caught_up:
                until_lsn = max(until_lsn or 0, emit_mark(src))
            idle_since = time.monotonic()
            while not stop.is_set():
                if stream is None:
                    start = min(m.applier.stored_position() for m in members)
                    stream = SlotStream(
                        route.source_dsn, role="monolith", slot=route.slot,
                        publication=route.slot, start_lsn=start,
                    )  # fmt: skip
                    relations.clear()
                try:
                    messages, _quiet = _collect(stream, max_poll)
                except StreamLost:
                    stream.close()
                    stream = None
                    stop.wait(0.1)
                    continue
                last = GroupRound()
                shares = _route_round(messages, members, relations)
                for m in members:
                    last.members[m.route.service] = (
                        _apply(m.applier, shares[m.route.service])
                        if messages
                        else Round(position=m.applier.stored_position(), caught_up=True)
                    )
                last.position = min(r.position for r in last.members.values())
                if confirm:
                    stream.confirm(last.position)
                if on_round:
                    on_round(last)
                if until_lsn is not None and last.position >= until_lsn:
                    break
                if messages:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > mark_every:
                    emit_mark(src)  # lets every member's position, and the slot, move on
                    idle_since = time.monotonic()
        finally:
            if stream is not None:
                stream.close()
            for m in members:
                m.close()
        return last


def status(route: SharedRoute) -> dict[str, Any]:
    """The shared slot (retained WAL) and each member's applied position and lag."""
    with connect(route.source_dsn, role="monolith") as src:
        slot = slot_status(src, route.slot)
    out: dict[str, Any] = {
        "slot": route.slot,
        "slot_exists": slot.exists,
        "retained_wal_bytes": slot.retained_bytes,
        "members": {},
    }
    for m in route.members:
        with connect(m.target_dsn, role=m.target_role) as dst:
            pos = read_position(dst, route.key(m))
        lag = None
        if pos and slot.current_lsn is not None:
            lag = max(0, slot.current_lsn - pos["lsn"])
        out["members"][m.service] = {
            "applied_lsn": format_lsn(pos["lsn"]) if pos else None,
            "lag_bytes": lag,
            "rows_applied": pos["rows"] if pos else 0,
        }
    return out
