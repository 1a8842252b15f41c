"""Every legal and every illegal step of the phase machine, for both strategies."""

from __future__ import annotations

import itertools

import pytest

from strangler.errors import PhaseRefused
from strangler.phases import Action, Phase, transition

P, A = Phase, Action

# The whole legal table, written out independently of the implementation:
# (strategy, phase, action, weight) -> target phase.
COMMON = {
    (P.PLANNED, A.CREATE_SCHEMA, None): P.SCHEMA_READY,
    (P.SCHEMA_READY, A.COPY, None): P.COPIED,
    (P.VERIFIED, A.VERIFY, None): P.VERIFIED,
    (P.TRAFFIC, A.VERIFY, None): P.TRAFFIC,
    (P.TRAFFIC_COMPLETE, A.VERIFY, None): P.TRAFFIC_COMPLETE,
    (P.STABLE, A.VERIFY, None): P.STABLE,
    (P.OLD_PATH_REMOVED, A.VERIFY, None): P.OLD_PATH_REMOVED,
    (P.TRAFFIC, A.SHIFT_TRAFFIC, 20): P.TRAFFIC,
    (P.TRAFFIC, A.SHIFT_TRAFFIC, 100): P.TRAFFIC_COMPLETE,
    (P.TRAFFIC_COMPLETE, A.SHIFT_TRAFFIC, 50): P.TRAFFIC,
    (P.TRAFFIC_COMPLETE, A.SHIFT_TRAFFIC, 100): P.TRAFFIC_COMPLETE,
    (P.TRAFFIC_COMPLETE, A.MARK_STABLE, None): P.STABLE,
    (P.STABLE, A.REMOVE_OLD_PATH, None): P.OLD_PATH_REMOVED,
    (P.OLD_PATH_REMOVED, A.DECOMMISSION, None): P.DECOMMISSIONED,
    (P.SCHEMA_READY, A.ROLLBACK_SCHEMA, None): P.PLANNED,
    (P.COPIED, A.ROLLBACK_SCHEMA, None): P.PLANNED,
    (P.VERIFIED, A.ROLLBACK_SCHEMA, None): P.PLANNED,
}
COPY = {
    **COMMON,
    (P.COPIED, A.VERIFY, None): P.VERIFIED,
    (P.VERIFIED, A.SHIFT_TRAFFIC, 5): P.TRAFFIC,
    (P.VERIFIED, A.SHIFT_TRAFFIC, 100): P.TRAFFIC_COMPLETE,
    (P.TRAFFIC, A.SHIFT_TRAFFIC, 0): P.VERIFIED,
    (P.TRAFFIC_COMPLETE, A.SHIFT_TRAFFIC, 0): P.VERIFIED,
    (P.STABLE, A.SHIFT_TRAFFIC, 0): P.VERIFIED,
    (P.TRAFFIC, A.ROLLBACK_TRAFFIC, None): P.VERIFIED,
    (P.TRAFFIC_COMPLETE, A.ROLLBACK_TRAFFIC, None): P.VERIFIED,
    (P.STABLE, A.ROLLBACK_TRAFFIC, None): P.VERIFIED,
}
ONLINE = {
    **COMMON,
    (P.COPIED, A.START_SYNC, None): P.SYNCING,
    (P.SYNCING, A.VERIFY, None): P.VERIFIED,
    (P.WRITES_CUT_OVER, A.VERIFY, None): P.WRITES_CUT_OVER,
    (P.SYNCING, A.ROLLBACK_SCHEMA, None): P.PLANNED,
    (P.VERIFIED, A.CUTOVER_WRITES, None): P.WRITES_CUT_OVER,
    (P.WRITES_CUT_OVER, A.SHIFT_TRAFFIC, 5): P.TRAFFIC,
    (P.WRITES_CUT_OVER, A.SHIFT_TRAFFIC, 100): P.TRAFFIC_COMPLETE,
    (P.WRITES_CUT_OVER, A.ROLLBACK_WRITES, None): P.SYNCING,
    (P.TRAFFIC, A.SHIFT_TRAFFIC, 0): P.WRITES_CUT_OVER,
    (P.TRAFFIC_COMPLETE, A.SHIFT_TRAFFIC, 0): P.WRITES_CUT_OVER,
    (P.STABLE, A.SHIFT_TRAFFIC, 0): P.WRITES_CUT_OVER,
    (P.TRAFFIC, A.ROLLBACK_TRAFFIC, None): P.WRITES_CUT_OVER,
    (P.TRAFFIC_COMPLETE, A.ROLLBACK_TRAFFIC, None): P.WRITES_CUT_OVER,
    (P.STABLE, A.ROLLBACK_TRAFFIC, None): P.WRITES_CUT_OVER,
    # sync --stop removes a slot and leaves the phase alone (its evidence decides, issue 13);
    # a slot may be left over from the first copy to the last old-path phase.
    **{(p, A.STOP_SYNC, None): p for p in Phase if p is not P.DECOMMISSIONED},
}
# move: one step from planned to copied (the tables change schema in place), then as copy;
# there is no schema_ready phase, so neither create_schema, copy nor a rollback from it.
MOVE = {
    **{k: v for k, v in COPY.items() if k[0] is not P.SCHEMA_READY and k[1] is not A.CREATE_SCHEMA},
    (P.PLANNED, A.MOVE, None): P.COPIED,
}
TABLES = {"copy": COPY, "online": ONLINE, "move": MOVE}
WEIGHTS = {A.SHIFT_TRAFFIC: [0, 5, 20, 50, 100]}


def cases() -> list[tuple[str, Phase, Action, float | None]]:
    out = []
    for strategy, phase, action in itertools.product(TABLES, Phase, Action):
        for weight in WEIGHTS.get(action, [None]):
            out.append((strategy, phase, action, weight))
    return out


@pytest.mark.parametrize(("strategy", "phase", "action", "weight"), cases())
def test_every_step(strategy: str, phase: Phase, action: Action, weight: float | None) -> None:
    table = TABLES[strategy]
    expected = table.get((phase, action, weight))
    if expected is None and action is A.SHIFT_TRAFFIC and weight not in (0, 100):
        expected = next(
            (table[(phase, action, w)] for w in (5, 20, 50) if (phase, action, w) in table), None
        )
    if expected is None and action is A.SHIFT_TRAFFIC and weight == 100:
        expected = None
    if expected is not None:
        got = transition(phase, action, strategy=strategy, service="svc", weight=weight)
        assert got.target == expected
    else:
        with pytest.raises(PhaseRefused) as info:
            transition(phase, action, strategy=strategy, service="svc", weight=weight)
        assert info.value.message.startswith("cannot ")
        assert f"svc is '{phase.value}'" in info.value.message


def test_refusal_names_the_next_command() -> None:
    with pytest.raises(PhaseRefused) as info:
        transition(P.COPIED, A.SHIFT_TRAFFIC, strategy="copy", service="order_service", weight=5)
    assert str(info.value) == (
        "cannot shift traffic: order_service is 'copied'\n"
        "  hint: run 'strangler verify order_service' first"
    )


def test_online_traffic_needs_write_cutover_first() -> None:
    with pytest.raises(PhaseRefused) as info:
        transition(P.VERIFIED, A.SHIFT_TRAFFIC, strategy="online", service="o", weight=5)
    assert info.value.hint == "run 'strangler cutover o' first"


def test_rollback_writes_while_traffic_flows_says_roll_traffic_back_first() -> None:
    with pytest.raises(PhaseRefused) as info:
        transition(P.TRAFFIC, A.ROLLBACK_WRITES, strategy="online", service="o")
    assert "traffic still reaches the new service" in info.value.message
    assert info.value.hint == "run 'strangler rollback o --traffic' first"


def test_schema_cannot_be_dropped_once_it_takes_writes() -> None:
    with pytest.raises(PhaseRefused) as info:
        transition(P.WRITES_CUT_OVER, A.ROLLBACK_SCHEMA, strategy="online", service="o")
    assert "already takes writes" in info.value.message
    assert info.value.hint == "run 'strangler rollback o --writes' first"


def test_sync_on_a_copy_strategy_service_explains_the_strategy() -> None:
    with pytest.raises(PhaseRefused, match="uses strategy 'copy'"):
        transition(P.COPIED, A.START_SYNC, strategy="copy", service="o")


def test_decommissioned_is_the_end() -> None:
    with pytest.raises(PhaseRefused, match="decommissioned; nothing more can happen"):
        transition(P.DECOMMISSIONED, A.COPY, strategy="copy", service="o")


def test_move_refuses_copy_and_names_the_move() -> None:
    with pytest.raises(PhaseRefused) as info:
        transition(P.PLANNED, A.COPY, strategy="move", service="o")
    assert "uses strategy 'move': its tables change schema in place" in info.value.message
    assert info.value.hint == "run 'strangler move o' first"
    with pytest.raises(PhaseRefused, match="only strategy: move moves tables"):
        transition(P.PLANNED, A.MOVE, strategy="copy", service="o")
    with pytest.raises(PhaseRefused, match="uses strategy 'move'; online sync"):
        transition(P.COPIED, A.START_SYNC, strategy="move", service="o")
