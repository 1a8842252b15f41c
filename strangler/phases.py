"""The phases of one service and the steps between them: pure rules, no I/O.

Forward path (``online`` adds the two steps in brackets)::

    planned → schema_ready → copied → [syncing] → verified → [writes_cut_over]
            → traffic k% … → traffic_complete → stable → old_path_removed → decommissioned

``move`` (one instance, zero copy) goes from ``planned`` to ``copied`` in one step: its
tables change schema in place (``ALTER TABLE … SET SCHEMA``) and ``copied`` means they are
in the service's schema; from there it follows ``copy``.

Rollback edges: traffic back to 0 % from any traffic phase; writes back to the monolith
while reverse sync holds (writes_cut_over → syncing); the schema dropped (→ planned) only
before writes have been cut over. ``stop_sync`` (``strangler sync --stop``) leaves the phase
where it is. Each refusal names what must happen first, as the next command to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from strangler.errors import PhaseRefused

__all__ = [
    "Action",
    "Phase",
    "Transition",
    "forced_target",
    "forward_path",
    "next_action",
    "transition",
]


class Phase(StrEnum):
    PLANNED = "planned"
    SCHEMA_READY = "schema_ready"
    COPIED = "copied"
    SYNCING = "syncing"
    VERIFIED = "verified"
    WRITES_CUT_OVER = "writes_cut_over"
    TRAFFIC = "traffic"
    TRAFFIC_COMPLETE = "traffic_complete"
    STABLE = "stable"
    OLD_PATH_REMOVED = "old_path_removed"
    DECOMMISSIONED = "decommissioned"


class Action(StrEnum):
    CREATE_SCHEMA = "create_schema"
    COPY = "copy"
    MOVE = "move"
    START_SYNC = "start_sync"
    VERIFY = "verify"
    CUTOVER_WRITES = "cutover_writes"
    SHIFT_TRAFFIC = "shift_traffic"
    MARK_STABLE = "mark_stable"
    REMOVE_OLD_PATH = "remove_old_path"
    DECOMMISSION = "decommission"
    ROLLBACK_TRAFFIC = "rollback_traffic"
    ROLLBACK_WRITES = "rollback_writes"
    ROLLBACK_SCHEMA = "rollback_schema"
    STOP_SYNC = "stop_sync"


# The command that performs each action, for "what to run next" hints.
_COMMAND = {
    # 'copy' creates the schema too: a new user told '--schema-only' ends up with no rows.
    Action.CREATE_SCHEMA: "strangler copy {service}",
    Action.COPY: "strangler copy {service}",
    Action.MOVE: "strangler move {service}",
    Action.START_SYNC: "strangler sync {service}",
    Action.VERIFY: "strangler verify {service}",
    Action.CUTOVER_WRITES: "strangler cutover {service}",
    Action.SHIFT_TRAFFIC: "strangler shift {service} --auto",
    Action.MARK_STABLE: "strangler decommission {service} --check",
    Action.REMOVE_OLD_PATH: "strangler decommission {service}",
    Action.DECOMMISSION: "strangler decommission {service}",
    Action.ROLLBACK_TRAFFIC: "strangler rollback {service} --traffic",
    Action.ROLLBACK_WRITES: "strangler rollback {service} --writes",
    Action.ROLLBACK_SCHEMA: "strangler rollback {service} --schema",
    Action.STOP_SYNC: "strangler sync {service} --stop",
}

_DESCRIBE = {
    Action.CREATE_SCHEMA: "create the service schema",
    Action.COPY: "copy the tables",
    Action.MOVE: "move the tables",
    Action.START_SYNC: "start online sync",
    Action.VERIFY: "verify the copy",
    Action.CUTOVER_WRITES: "cut writes over",
    Action.SHIFT_TRAFFIC: "shift traffic",
    Action.MARK_STABLE: "declare the service stable",
    Action.REMOVE_OLD_PATH: "remove the old route",
    Action.DECOMMISSION: "decommission the old tables",
    Action.ROLLBACK_TRAFFIC: "roll traffic back",
    Action.ROLLBACK_WRITES: "roll writes back",
    Action.ROLLBACK_SCHEMA: "drop the service schema",
    Action.STOP_SYNC: "stop sync",
}

P = Phase
_TRAFFIC_PHASES = frozenset({P.TRAFFIC, P.TRAFFIC_COMPLETE, P.STABLE})


def _ready_for_traffic(strategy: str) -> Phase:
    return P.WRITES_CUT_OVER if strategy == "online" else P.VERIFIED


def forward_path(strategy: str) -> list[tuple[Phase, Action, Phase]]:
    online = strategy == "online"
    if strategy == "move":
        path = [(P.PLANNED, Action.MOVE, P.COPIED)]
    else:
        path = [
            (P.PLANNED, Action.CREATE_SCHEMA, P.SCHEMA_READY),
            (P.SCHEMA_READY, Action.COPY, P.COPIED),
        ]
    if online:
        path += [
            (P.COPIED, Action.START_SYNC, P.SYNCING),
            (P.SYNCING, Action.VERIFY, P.VERIFIED),
            (P.VERIFIED, Action.CUTOVER_WRITES, P.WRITES_CUT_OVER),
            (P.WRITES_CUT_OVER, Action.SHIFT_TRAFFIC, P.TRAFFIC),
        ]
    else:
        path += [
            (P.COPIED, Action.VERIFY, P.VERIFIED),
            (P.VERIFIED, Action.SHIFT_TRAFFIC, P.TRAFFIC),
        ]
    path += [
        (P.TRAFFIC, Action.SHIFT_TRAFFIC, P.TRAFFIC),
        (P.TRAFFIC_COMPLETE, Action.MARK_STABLE, P.STABLE),
        (P.STABLE, Action.REMOVE_OLD_PATH, P.OLD_PATH_REMOVED),
        (P.OLD_PATH_REMOVED, Action.DECOMMISSION, P.DECOMMISSIONED),
    ]
    return path


@dataclass(frozen=True)
class Transition:
    source: Phase
    action: Action
    target: Phase


def next_action(phase: Phase, strategy: str) -> Action | None:
    """The forward step that comes after ``phase``; None when decommissioned."""
    for src, action, _ in forward_path(strategy):
        if src == phase:
            return action
    return None


def _allowed(phase: Phase, action: Action, strategy: str, weight: float | None) -> Phase | None:
    ready = _ready_for_traffic(strategy)
    if action is Action.SHIFT_TRAFFIC:
        if weight is not None and weight <= 0:
            return _allowed(phase, Action.ROLLBACK_TRAFFIC, strategy, None)
        if phase in (ready, P.TRAFFIC, P.TRAFFIC_COMPLETE):
            return P.TRAFFIC_COMPLETE if weight is not None and weight >= 100 else P.TRAFFIC
        return None
    if action is Action.VERIFY:
        # Verification is evidence: allowed whenever there is a copy, it moves the phase only
        # out of copied/syncing (re-verifying later leaves the phase alone).
        if strategy != "online" and phase in (P.SYNCING, P.WRITES_CUT_OVER):
            return None  # phases of online sync; a copy-strategy service never has them
        if (phase == P.SYNCING and strategy == "online") or (
            phase == P.COPIED and strategy != "online"
        ):
            return P.VERIFIED
        order = list(Phase)
        if order.index(phase) >= order.index(P.VERIFIED) and phase != P.DECOMMISSIONED:
            return phase
        if phase == P.COPIED:
            return None  # online: sync must run first, or the proof goes stale at once
        return None
    if action is Action.ROLLBACK_TRAFFIC:
        return ready if phase in _TRAFFIC_PHASES else None
    if action is Action.STOP_SYNC:
        # Removing a slot moves no phase; what it may cost is the business of its evidence
        # (a reverse sync is the way back for writes).
        return phase if strategy == "online" and phase is not P.DECOMMISSIONED else None
    if action is Action.ROLLBACK_WRITES:
        return P.SYNCING if phase == P.WRITES_CUT_OVER and strategy == "online" else None
    if action is Action.ROLLBACK_SCHEMA:
        # move: the tables go back where they were (nothing to lose: they are the same rows)
        allowed = {P.COPIED, P.VERIFIED}
        if strategy != "move":
            allowed.add(P.SCHEMA_READY)
        if strategy == "online":
            allowed.add(P.SYNCING)
        return P.PLANNED if phase in allowed else None
    for src, act, dst in forward_path(strategy):
        if src == phase and act == action:
            return dst
    return None


def _why_not(phase: Phase, action: Action, strategy: str, service: str) -> tuple[str, str | None]:
    """The refusal message and the command that must come first."""
    fmt = {"service": service}
    if action is Action.ROLLBACK_WRITES and phase in _TRAFFIC_PHASES:
        return "traffic still reaches the new service", _COMMAND[Action.ROLLBACK_TRAFFIC].format(
            **fmt
        )
    if action is Action.ROLLBACK_SCHEMA and phase in _TRAFFIC_PHASES | {P.WRITES_CUT_OVER}:
        first = Action.ROLLBACK_TRAFFIC if phase in _TRAFFIC_PHASES else Action.ROLLBACK_WRITES
        return "the service schema already takes writes", _COMMAND[first].format(**fmt)
    if action in (
        Action.START_SYNC,
        Action.CUTOVER_WRITES,
        Action.ROLLBACK_WRITES,
        Action.STOP_SYNC,
    ) and (strategy != "online"):
        return (
            f"{service} uses strategy {strategy!r}; online sync and write cutover need "
            "strategy: online",
            None,
        )
    if action in (Action.CREATE_SCHEMA, Action.COPY) and strategy == "move":
        return (
            f"{service} uses strategy 'move': its tables change schema in place, nothing is copied",
            _COMMAND[Action.MOVE].format(**fmt) if phase is P.PLANNED else None,
        )
    if action is Action.MOVE and strategy != "move":
        return f"{service} uses strategy {strategy!r}; only strategy: move moves tables", None
    if action in (Action.ROLLBACK_TRAFFIC,) and phase not in _TRAFFIC_PHASES:
        return "no traffic has been shifted yet", None
    nxt = next_action(phase, strategy)
    if nxt is None and phase is P.DECOMMISSIONED:
        return f"{service} is decommissioned; nothing more can happen", None
    if nxt is None:
        return f"phase {phase.value!r} does not occur with strategy {strategy!r}", None
    return "", _COMMAND[nxt].format(**fmt)


def transition(
    phase: Phase | str,
    action: Action | str,
    *,
    strategy: str,
    service: str,
    weight: float | None = None,
) -> Transition:
    """Where ``action`` leads from ``phase``; PhaseRefused says what must come first."""
    phase, action = Phase(phase), Action(action)
    target = _allowed(phase, action, strategy, weight)
    if target is not None:
        return Transition(phase, action, target)
    reason, first = _why_not(phase, action, strategy, service)
    message = f"cannot {_DESCRIBE[action]}: {service} is {phase.value!r}"
    if reason:
        message += f" ({reason})"
    hint = f"run '{first}' first" if first else None
    raise PhaseRefused(message, hint=hint)


def forced_target(
    action: Action, *, strategy: str, weight: float | None, phase: Phase | None = None
) -> Phase:
    """Where ``action`` leads when an operator overrides the rules with --force (``phase``:
    where the service stands, which a step that keeps the phase stays at)."""
    if action is Action.STOP_SYNC and phase is not None:
        return phase
    if action is Action.SHIFT_TRAFFIC:
        if weight is not None and weight <= 0:
            return _ready_for_traffic(strategy)
        return P.TRAFFIC_COMPLETE if weight is not None and weight >= 100 else P.TRAFFIC
    for _, act, dst in forward_path(strategy):
        if act == action:
            return dst
    rollbacks = {
        Action.ROLLBACK_TRAFFIC: _ready_for_traffic(strategy),
        Action.ROLLBACK_WRITES: P.SYNCING,
        Action.ROLLBACK_SCHEMA: P.PLANNED,
    }
    return rollbacks[action]
