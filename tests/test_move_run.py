"""``strategy: move`` end to end: ``strangler run`` from plan to decommissioned through the
command line (move, verify, a gated traffic walk, the decommission checklist, the views
retired and dropped), and the checklist's write guard telling the monolith's writes through
its views from the service's own."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from strangler.checks.base import Verdict
from strangler.journal import Journal
from strangler.pg.copy.retire import pg_tool
from strangler.phases import Action, Phase
from strangler.spec import load_spec
from strangler.steps.decommission import gather
from strangler.steps.move import move
from strangler.steps.runbook import Runbook
from tests.checks_helpers import Clock
from tests.fix_pg import Db
from tests.fix_spec import CliResult
from tests.fix_traffic import ROUTE, TrafficWorld
from tests.move_world import MoveWorld, build

Cli = Callable[..., CliResult]

TRAFFIC = """\
    traffic:
      route: "{route}"
      router: {{ kind: local, admin_url: "{admin}" }}
      steps: [50, 100]
      bake: 1s
      final_bake: 1s
      interval: 1s
      failed_intervals: 3
      gates:
        - {{ metric: request_count, min: 3 }}
        - {{ metric: error_rate, max: 0.05 }}
    decommission: {{ stable_for: 1s, write_window: 1s, drop_old_tables_after: 1s,
                     archive_dir: archive }}
"""


@pytest.fixture
def world(source_db: Db, tmp_path: Path, traffic_world: TrafficWorld) -> Iterator[MoveWorld]:
    extra = TRAFFIC.format(route=ROUTE, admin=traffic_world.proxy.url)
    yield from build(source_db, tmp_path, extra)


def _run(cli: Cli, world: MoveWorld, *args: str) -> tuple[int, dict[str, object]]:
    done = cli("run", "order_service", "-f", str(world.spec), "-o", "json", *args, timeout=300)
    assert done.code in (0, 75), done.stdout + done.stderr
    (result,) = done.json()["services"]
    return done.code, result


def test_strangler_run_takes_a_move_from_plan_to_decommissioned(
    cli: Cli, world: MoveWorld, traffic_world: TrafficWorld, tmp_path: Path
) -> None:
    plan = cli("plan", "order_service", "-f", str(world.spec), "-o", "json")
    assert plan.code == 0 and plan.json()["services"][0]["move"]["error"] is None
    code, result = _run(cli, world, "--until", "verified")
    assert code == 0 and result["phase"] == "verified", result
    assert [s["action"] for s in result["steps"]] == ["move", "verify"]  # type: ignore[union-attr]
    moved = cli("plan", "order_service", "-f", str(world.spec), "-o", "json").json()
    assert moved["services"][0]["move"] == {"plan": None, "moved": True, "error": None}
    with world.as_app() as app:
        (oid,) = app.execute(
            "INSERT INTO orders (customer_id, code) VALUES (1, 'live') RETURNING id"
        ).fetchone()  # type: ignore[misc]
    # The monolith's old code path goes before the checklist is gathered: its report view
    # and the foreign key of its invoices reach into the service's tables.
    world.db.execute(
        "DROP VIEW public.order_totals;"
        "ALTER TABLE public.invoices DROP CONSTRAINT invoices_order_id_fkey"
    )
    code, result = _run(cli, world, "--wait")
    # The checklist waits for a person: nobody has attested that no incident happened.
    assert code == 75 and result["waiting"]["reason"] == "attestation", result  # type: ignore[index]
    assert traffic_world.proxy.service_percent() == 100
    with world.as_service() as svc:  # the service's own writes are not the old path's
        svc.execute("UPDATE orders SET total = 9 WHERE id = %s", (oid,))
    note = cli("attest", "order_service", "no_incident", "--note", "INC board clean", "-f",
               str(world.spec))  # fmt: skip
    assert note.code == 0, note.stderr
    code, result = _run(cli, world, "--wait")
    assert code == 0 and result["phase"] == "decommissioned", result
    with Journal(load_spec(world.spec).state_url()) as journal:
        done = [
            e.step
            for e in journal.history("order_service")
            if e.kind == "outcome" and e.status == "ok"
        ]
    assert done[:2] == ["move", "verify"]
    assert done[-3:] == ["mark_stable", "remove_old_path", "decommission"]
    # The views are gone, the tables live on in the service's schema with every row, and
    # the serial sequence the monolith kept under its name went home with its column.
    rows = world.db.execute(
        "SELECT to_regclass('public.orders'), to_regclass('public.order_items'), "
        "to_regnamespace('retired_order_service'), "
        "(SELECT count(*) FROM order_service.orders), "
        "(SELECT total FROM order_service.orders WHERE code = 'live'), "
        "pg_get_serial_sequence('order_service.orders', 'id')"
    )
    assert rows == [(None, None, None, 201, 9, "order_service.orders_id_seq")]
    (archive,) = (tmp_path / "archive").glob("order_service-views-*.dump")
    listing = subprocess.run(
        [str(pg_tool("pg_restore", 18)), "--list", str(archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "VIEW public orders" in listing and "VIEW public order_items" in listing
    assert "TABLE DATA" not in listing  # only the views: the data never left its tables


def test_the_write_guard_tells_the_monolith_s_writes_from_the_service_s(
    source_db: Db, tmp_path: Path
) -> None:
    extra = "    decommission: { stable_for: 1h, write_window: 1d }\n"
    for world in build(source_db, tmp_path, extra):
        clock = Clock()
        spec = load_spec(world.spec)
        rb = Runbook(spec, Journal(spec.state_url(), operator="t", clock=clock), "order_service")
        move(rb)
        for action, weight in ((Action.VERIFY, None), (Action.SHIFT_TRAFFIC, 100.0)):
            with rb.step(action, weight=weight, force=True, reason="test setup"):
                pass
        assert rb.phase is Phase.TRAFFIC_COMPLETE

        def written(rb: Runbook = rb) -> str:
            _, results = gather(rb, None)
            (r,) = [r for r in results if r.name == "old tables no longer written"]
            return f"{r.verdict.value}: {r.message}"

        assert written().startswith(
            "fail: write guard installed on order_service.orders, order_service.order_items "
            f"now: no role but {world.role} may write them for 1d"
        )
        with world.as_service() as svc:
            svc.execute("UPDATE orders SET total = total + 1 WHERE id < 10")
            svc.execute("DELETE FROM order_items WHERE id = 1")
        clock.advance(timedelta(days=1, minutes=1))
        assert written().startswith(f"pass: no write but {world.role}'s for 1d")
        with world.as_app() as app:
            app.execute("UPDATE orders SET total = 0 WHERE id = 3")
        message = written()
        assert message.startswith(f"fail: 1 write(s) by roles other than {world.role}")
        assert f"UPDATE on orders by {world.app}" in message
        assert "the monolith still writes through its views" in message
        _, results = gather(rb, None)
        deps = next(r for r in results if r.name == "nothing else depends on the old tables")
        assert deps.verdict is Verdict.FAIL
        assert "public.order_totals (view) reads order_service.orders directly" in deps.message
        assert "public.invoices (foreign key invoices_order_id_fkey) references " in deps.message
        rb.journal.close()


def test_the_checklist_needs_the_service_role_to_tell_writers_apart(
    source_db: Db, tmp_path: Path
) -> None:
    for world in build(source_db, tmp_path):
        text = world.spec.read_text()
        role_line = next(line for line in text.splitlines() if "role:" in line)
        spec_path = tmp_path / "norole.yaml"
        spec_path.write_text(text.replace(role_line + "\n", ""))
        spec = load_spec(spec_path)
        clock = Clock()
        rb = Runbook(spec, Journal(spec.state_url(), operator="t", clock=clock), "order_service")
        move(rb)
        with rb.step(Action.VERIFY, force=True, reason="setup"):
            pass
        with rb.step(Action.SHIFT_TRAFFIC, weight=100.0, force=True, reason="setup"):
            pass
        _, results = gather(rb, None)
        (r,) = [r for r in results if r.name == "old tables no longer written"]
        assert r.verdict is Verdict.FAIL
        assert "the spec names no target.role" in r.message
        rb.journal.close()
