"""Issue 13 on the traffic side: an operator's rollback always wins over a running walk, and
the decommission checklist judges a route measured by the router's own counters from the
walk's bakes. Real proxy, real HTTP apps under load, the real journal; the races are made
deterministic with a router whose read blocks until the rollback has landed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strangler.errors import StranglerError
from strangler.journal import Journal
from strangler.spec import load_spec
from strangler.steps.bake import AutoResult
from strangler.steps.runbook import Runbook
from strangler.steps.shift import Shifter
from strangler.steps.wiring import router as spec_router
from strangler.traffic.base import Router, Weights
from tests.fix_pg import Db
from tests.fix_spec import CliResult
from tests.fix_traffic import TrafficWorld, at_phase


def _router(world: TrafficWorld) -> str:
    return f'{{ kind: local, admin_url: "{world.proxy.url}" }}'


class ReadBlocksUntilRollback:
    """The spec's router, except that its ``nth`` read of the weights after the walk's bake
    at 50 % completed blocks until the test says the rollback has landed (then reads the
    real router). Everything else goes straight to the real router."""

    def __init__(self, real: Router, state_db: Path, nth: int) -> None:
        self._real = real
        self._journal = Journal(f"sqlite:///{state_db}", operator="observer")
        self.nth = nth
        self.reads = 0
        self.blocked = threading.Event()
        self.landed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def weights(self) -> Weights:
        bake = self._journal.get("order_service", "traffic:bake")
        if bake and bake["weight"] == 50 and bake["status"] == "complete":
            self.reads += 1
            if self.reads == self.nth:
                self.blocked.set()
                assert self.landed.wait(60), "the rollback never landed"
        return self._real.weights()


def _walk_in_thread(shifter: Shifter) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def walk() -> None:
        try:
            out["result"] = shifter.auto()
        except StranglerError as exc:  # what main did: the wrong error, or none at all
            out["error"] = exc

    thread = threading.Thread(target=walk, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    "nth", [1, 2], ids=["between-the-bake-and-the-router-read", "inside-the-next-shift"]
)
def test_an_operators_rollback_stops_the_walk_wherever_it_lands(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path, nth: int
) -> None:
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="1s")
    at_phase(tmp_path / "state.db", "verified")
    spec = load_spec(spec_path)
    real = spec_router(spec, "order_service")
    double = ReadBlocksUntilRollback(real, tmp_path / "state.db", nth)
    walker_journal = Journal(spec.state_url(), operator="walker", command="shift --auto")
    walker = Shifter(Runbook(spec, walker_journal, "order_service"), double)  # type: ignore[arg-type]
    thread, out = _walk_in_thread(walker)
    assert double.blocked.wait(120), "the walk never finished its bake at 50 %"

    # Another terminal: the operator rolls back while the walker waits on its router read.
    with Journal(spec.state_url(), operator="alice", command="rollback") as journal:
        Shifter(Runbook(spec, journal, "order_service"), real).rollback("5xx on checkout")
    double.landed.set()
    thread.join(60)
    assert not thread.is_alive()

    assert "error" not in out, out.get("error")
    result: AutoResult = out["result"]
    assert (result.status, result.weight, result.exit_code) == ("stopped", 0, 1)
    assert "rolled back by alice" in result.message and "5xx on checkout" in result.message
    assert traffic_world.proxy.service_percent() == 0
    state = walker_journal.state("order_service")
    assert (state.phase, state.weight) == ("verified", 0)
    moves = [
        e.details.get("weight")
        for e in walker_journal.history("order_service")
        if e.kind == "intent" and e.step == "shift_traffic"
    ]
    assert moves == [50], "nothing moved after the rollback"
    walker_journal.close()


def test_shift_auto_exits_1_with_stopped_when_a_rollback_lands_during_a_bake(
    traffic_world: TrafficWorld,
    traffic_spec: Callable[..., Path],
    tmp_path: Path,
    cli: Callable[..., CliResult],
) -> None:
    spec_path = traffic_spec(_router(traffic_world), steps="[50, 100]", bake="1h")
    at_phase(tmp_path / "state.db", "verified")
    walk = subprocess.Popen(
        [sys.executable, "-m", "strangler", "shift", "order_service", "--auto", "-o", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
            deadline = time.monotonic() + 60
            while journal.last("order_service", "gate") is None:
                assert walk.poll() is None and time.monotonic() < deadline, walk.stderr
                time.sleep(0.05)
        back = cli(
            "rollback", "order_service", "--traffic", "--reason", "drill", "-f", str(spec_path)
        )
        assert back.code == 0, back.stderr
        out, err = walk.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            walk.kill()
    assert walk.returncode == 1, out + err
    result = json.loads(out)
    assert result["status"] == "stopped" and "drill" in result["message"]
    assert traffic_world.proxy.service_percent() == 0


def test_a_rollback_waits_for_a_step_in_progress_instead_of_failing(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec_path = traffic_spec(_router(traffic_world))
    at_phase(tmp_path / "state.db", "verified")
    spec = load_spec(spec_path)
    with Journal(spec.state_url(), operator="walker") as journal:
        Shifter(
            Runbook(spec, journal, "order_service"), spec_router(spec, "order_service")
        ).shift_to(20)
    # Another process is inside a step of the service (its lock held) …
    holder = contextlib.ExitStack()
    other = Journal(spec.state_url(), operator="walker")
    holder.enter_context(other.lock("order_service"))
    naps: list[float] = []

    def nap(seconds: float) -> None:  # … and finishes it while the rollback waits
        naps.append(seconds)
        holder.close()

    with Journal(spec.state_url(), operator="alice") as journal:
        rb = Runbook(spec, journal, "order_service")
        done = Shifter(rb, spec_router(spec, "order_service"), sleep=nap).rollback("drill")
    assert done.after == 0 and naps, "it waited, then rolled back"
    assert traffic_world.proxy.service_percent() == 0
    other.close()


DECOM_SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{dsn}", schema: public }}
services:
  order_service:
    tables: [orders]
    target: {{ schema: order_service }}
    strategy: copy
    traffic:
      route: "/api/v1/orders*"
      router: {{ kind: local, admin_url: "{admin}" }}
      metrics: {{ kind: router }}
      steps: [50, 100]
      bake: 2s
      final_bake: 2s
      interval: 1s
      gates:
        - {{ metric: request_count, min: 5 }}
        - {{ metric: error_rate, max: 0.05 }}
    decommission: {{ stable_for: 1s, write_window: 1s }}
"""


def test_decommission_check_with_router_metrics_reads_the_walks_bakes(
    traffic_world: TrafficWorld, source_db: Db, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    source_db.execute("CREATE TABLE public.orders (id int PRIMARY KEY)")
    spec_path = tmp_path / "strangler.yaml"
    spec_path.write_text(DECOM_SPEC.format(dsn=source_db.dsn, admin=traffic_world.proxy.url))
    at_phase(tmp_path / "state.db", "verified")
    spec = load_spec(spec_path)
    with Journal(spec.state_url(), operator="walker") as journal:
        walker = Shifter(
            Runbook(spec, journal, "order_service"), spec_router(spec, "order_service")
        )
        assert walker.auto().status == "complete"
        gates = [e.details for e in journal.history("order_service") if e.step == "gate"]
    at_100 = [g for g in gates if g["weight"] == 100 and g["window"]]
    before = [g for g in gates if g["weight"] < 100 and g["window"]]

    done = cli("decommission", "order_service", "--check", "-f", str(spec_path), "-o", "json")
    assert done.code == 1, done.stderr  # the write guard went on just now: the window runs
    by = {r["name"]: r for r in done.json()["results"]}
    rate = by["error rate vs baseline"]
    assert rate["verdict"] == "pass", rate
    assert rate["evidence"]["source"].startswith("the walk's bake intervals in the journal")
    assert rate["evidence"]["service"]["requests"] == sum(
        g["window"]["service"]["requests"] for g in at_100
    )
    assert rate["evidence"]["baseline"]["requests"] == sum(
        g["window"]["monolith"]["requests"] for g in before
    )
    assert by["latency vs baseline"]["verdict"] == "skipped"
    assert (
        "no p99 of the monolith carrying the whole route" in (by["latency vs baseline"]["message"])
    )
    old = by["old route at 0 requests"]
    last = at_100[-1]["window"]["monolith"]["requests"]
    assert old["message"].startswith(f"{last} request(s) reached the monolith's route in the last")
    assert old["verdict"] == ("pass" if last == 0 else "fail")


def test_a_rollback_wins_over_a_move_that_died_halfway(
    traffic_world: TrafficWorld, traffic_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """A walker killed between setting the router and journaling the move leaves an intent
    without an outcome; an operator's rollback still goes through (no 'resolve' first)."""
    spec_path = traffic_spec(_router(traffic_world))
    at_phase(tmp_path / "state.db", "verified")
    spec = load_spec(spec_path)
    real = spec_router(spec, "order_service")
    with Journal(spec.state_url(), operator="walker") as journal:
        Shifter(Runbook(spec, journal, "order_service"), real).shift_to(20)
        journal.intent("order_service", "shift_traffic", details={"weight": 50.0, "pid": 1})
        real.set_weights(Weights(50))  # … and the process died here
    with Journal(spec.state_url(), operator="alice") as journal:
        done = Shifter(Runbook(spec, journal, "order_service"), real).rollback("5xx")
        assert done.after == 0
        crashed = journal.last("order_service", "shift_traffic", status="crashed")
        assert crashed is not None and crashed.details["superseded_by"] == "rollback_traffic"
        assert journal.dangling("order_service") == []
        assert journal.state("order_service").phase == "verified"
    assert traffic_world.proxy.service_percent() == 0
