"""The local router end to end: real proxy, real HTTP apps, real load, the real journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from strangler.errors import PhaseRefused
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.runbook import Runbook
from strangler.steps.shift import GateFailed, Shifter
from strangler.steps.wiring import router as spec_router
from strangler.traffic.base import RouterError, RouterUnreachable, Weights
from strangler.traffic.local import LocalOptions, LocalRouter
from tests.fix_spec import CliResult
from tests.fix_traffic import TrafficWorld, at_phase


def _router(world: TrafficWorld) -> str:
    return f'{{ kind: local, admin_url: "{world.proxy.url}" }}'


def test_router_sets_reads_back_and_splits_exactly(traffic_world: TrafficWorld) -> None:
    router = LocalRouter(LocalOptions(admin_url=traffic_world.proxy.url))
    assert router.weights() == Weights(0)
    assert router.set_weights(Weights(20)).service == 20
    before = router.counters()
    # The split is exact per 1,000 route requests; wait for enough to pass through.
    while (
        sum(c.requests for c in router.counters().values())
        - sum(c.requests for c in before.values())
        < 1000
    ):
        time.sleep(0.05)
    after = router.counters()
    svc = after["service"].requests - before["service"].requests
    mono = after["monolith"].requests - before["monolith"].requests
    assert abs(svc / (svc + mono) - 0.20) < 0.01
    assert after["service"].errors == 0
    assert traffic_world.load.statuses[0] == 0


def test_unreachable_proxy_is_a_clear_error() -> None:
    router = LocalRouter(LocalOptions(admin_url="http://127.0.0.1:9", timeout=1))
    with pytest.raises(
        RouterUnreachable, match=r"cannot reach the strangler proxy at http://127.0.0.1:9"
    ):
        router.weights()


def test_bad_weights_are_refused_by_the_proxy(traffic_world: TrafficWorld) -> None:
    router = LocalRouter(LocalOptions(admin_url=traffic_world.proxy.url))
    with pytest.raises(Exception, match="answered 400"):
        router._call("weights", "PUT", {"service": 250})
    assert router.weights().service == 0
    with pytest.raises(RouterError):
        Weights.from_pair(0, 0)


def _shifter(spec_path: Path) -> tuple[Shifter, Journal]:
    spec = load_spec(spec_path)
    journal = Journal(spec.state_url(), operator="test", command="test")
    rb = Runbook(spec, journal, "order_service")
    return Shifter(rb, spec_router(spec, "order_service")), journal


def test_shift_is_refused_before_the_copy_is_verified(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path]
) -> None:
    shifter, journal = _shifter(traffic_spec(_router(traffic_world)))
    with pytest.raises(PhaseRefused, match="cannot shift traffic"):
        shifter.shift_to(5)
    assert traffic_world.proxy.service_percent() == 0
    # --force --reason overrides and is journaled.
    shifter.shift_to(5, force=True, reason="rehearsal")
    assert traffic_world.proxy.service_percent() == 5
    assert journal.last("order_service", "shift_traffic", status="forced") is not None
    journal.close()


def test_healthy_service_walks_to_100(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec_path = traffic_spec(_router(traffic_world))
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    result = shifter.auto()
    assert result.status == "complete"
    assert traffic_world.proxy.service_percent() == 100
    state = journal.state("order_service")
    assert (state.phase, state.weight) == ("traffic_complete", 100)
    gates = [e for e in journal.history("order_service") if e.step == "gate"]
    weights = sorted({e.details["weight"] for e in gates})
    assert weights == [5, 20, 50, 100]
    assert all(e.status in ("pass", "not_enough_data") for e in gates)
    # Every evaluation is journaled with its numbers.
    assert all("window" in e.details and "checks" in e.details for e in gates)
    journal.close()


def test_failing_service_is_rolled_back_within_the_failure_limit(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    proxy = traffic_world.proxy
    traffic_world.service.failure_rate = 0.2
    traffic_world.service.fail_when = lambda: proxy.service_percent() >= 20
    spec_path = traffic_spec(_router(traffic_world), failed=2)
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    with pytest.raises(GateFailed, match="gates failed at 20 %"):
        shifter.auto()
    assert proxy.service_percent() == 0
    state = journal.state("order_service")
    assert (state.phase, state.weight) == ("verified", 0)
    history = journal.history("order_service")
    failed = [e for e in history if e.step == "gate" and e.status == "fail"]
    assert [e.details["weight"] for e in failed] == [20, 20]
    assert failed[-1].details["decision"] == "rollback"
    assert not any(e.step == "gate" and e.details["weight"] > 20 for e in history)
    rollback = journal.last("order_service", "rollback_traffic")
    assert rollback is not None and rollback.details["read_back"] == 0
    intent = next(e for e in history if e.id == rollback.intent_id)
    assert "gate failed" in (intent.reason or "")
    # A second --auto does not silently start over.
    with pytest.raises(Exception, match="rolled back"):
        shifter.auto()
    journal.close()


def test_cli_shift_and_rollback(
    traffic_world: TrafficWorld,
    traffic_spec: Callable[..., Path],
    tmp_path: Path,
    cli: Callable[..., CliResult],
) -> None:
    traffic_spec(_router(traffic_world))
    at_phase(tmp_path / "state.db", "verified")
    dry = cli("shift", "order_service", "--to", "20", "--dry-run", "-o", "json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["calls"][0].startswith("PUT ") and traffic_world.proxy.service_percent() == 0
    no_tty = cli("shift", "order_service", "--to", "20")
    assert no_tty.code == 2 and "--yes" in no_tty.stderr
    done = cli("shift", "order_service", "--to", "20", "--yes", "-o", "json")
    assert done.code == 0, done.stderr
    assert done.json()["after"] == 20 and traffic_world.proxy.service_percent() == 20
    back = cli("rollback", "order_service", "--traffic", "--reason", "drill", "-o", "json")
    assert back.code == 0, back.stderr
    assert back.json()["after"] == 0 and traffic_world.proxy.service_percent() == 0
    status = cli("status", "-o", "json").json()["services"][0]
    assert (status["phase"], status["weight"]) == ("verified", 0)


def test_kill_9_during_a_bake_resumes_it(
    traffic_world: TrafficWorld,
    traffic_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="4s", interval="1s")
    at_phase(tmp_path / "state.db", "verified")
    cmd = [
        sys.executable,
        "-m",
        "strangler",
        "shift",
        "order_service",
        "--auto",
        "-f",
        str(spec_path),
    ]
    log = (tmp_path / "walk.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    journal = Journal(f"sqlite:///{tmp_path / 'state.db'}", operator="test")

    def judged_at_50() -> list[int]:
        return [
            e.details["interval"]
            for e in journal.history("order_service")
            if e.step == "gate" and e.details["weight"] == 50
        ]

    deadline = time.monotonic() + 120
    while len(judged_at_50()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = judged_at_50()
    assert 2 <= len(before) < 4, (tmp_path / "walk.log").read_text()
    stored = journal.get("order_service", "traffic:bake")
    # The kill may land between journaling an interval and saving the tally; both resume.
    assert stored["status"] == "baking" and stored["evaluated"] in (len(before), len(before) - 1)

    again = subprocess.run(
        [*cmd, "-o", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["status"] == "complete"
    intervals = judged_at_50()
    # Neither restarted (1, 2, … continue) nor skipped (four judged at 50 %, as the bake needs).
    assert intervals == list(range(1, len(intervals) + 1))
    judged = [
        e
        for e in journal.history("order_service")
        if e.step == "gate" and e.details["weight"] == 50 and e.status in ("pass", "fail")
    ]
    assert len(judged) == 4
    assert journal.last("order_service", "bake", status="resumed") is not None
    assert journal.state("order_service").weight == 100
    journal.close()


def test_approval_pause_then_continue_and_rollback_is_never_blocked(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]")
    text = spec_path.read_text().replace(
        "      gates:", "      approve_before: [100]\n      gates:"
    )
    spec_path.write_text(text)
    at_phase(tmp_path / "state.db", "verified")
    shifter, journal = _shifter(spec_path)
    paused = shifter.auto()
    assert (paused.status, paused.weight) == ("paused", 50)
    assert traffic_world.proxy.service_percent() == 50
    # While paused (and even while another process walks), a rollback goes through at once.
    other, other_journal = _shifter(spec_path)
    with journal.lock("order_service.shift"):
        assert other.rollback("drill while paused").after == 0
    assert traffic_world.proxy.service_percent() == 0
    other_journal.close()
    # After the rollback the walk starts over only when asked, and pauses again before 100.
    assert shifter.auto(retry=True).status == "paused"
    assert shifter.approve("looks good") == 100
    done = shifter.auto()
    assert (done.status, done.weight) == ("complete", 100)
    assert journal.last("order_service", "approve_traffic") is not None
    journal.close()


def test_a_stalled_walk_exits_with_the_waiting_code(
    traffic_world: TrafficWorld,
    traffic_spec: Callable[..., Path],
    tmp_path: Path,
    cli: Callable[..., CliResult],
) -> None:
    # More requests than the load generator can send in an interval: no interval is judged.
    traffic_spec(_router(traffic_world), steps="[50, 100]", min_requests=10**8)
    at_phase(tmp_path / "state.db", "verified")
    walk = cli("shift", "order_service", "--auto", "-o", "json")
    assert walk.code == 75, walk.stdout + walk.stderr  # not 0: the walk is not done
    data = walk.json()
    assert data["status"] == "stalled" and data["weight"] == 50
    assert "without a judgement" in data["message"]
