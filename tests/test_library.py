"""strangler as a library (issue 11): the same plan, steps and rules whether or not anything
imported the CLI first, and a public API that needs neither the CLI nor rich."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import strangler
from strangler.phases import Action, forward_path
from strangler.steps.plan import build_plan
from strangler.steps.table import ROLLBACKS, STEPS
from strangler.steps.types import Subject

SPEC = """\
version: 1
state: sqlite:///state.db
source: { dsn: "postgresql://app@127.0.0.1:1/monolith", schema: public }
services:
  order_service:
    tables: [orders, order_items]
    target: { dsn: "postgresql://svc@127.0.0.1:1/orders", schema: order_service }
    strategy: online
    preflight: { attestations: [oncall] }
    traffic:
      route: /api/v1/orders*
      router: { kind: local, admin_url: "http://127.0.0.1:1" }
      steps: [5, 50, 100]
      bake: 1h
      interval: 5m
      gates: [{ metric: error_rate, max: 0.01 }]
  billing:
    tables: [invoices]
    target: { schema: billing }
    strategy: copy
"""

PROBE = """
import json, sys
{first}
from strangler.spec import load_spec
from strangler.steps.plan import build_plan
from strangler.steps.requirements import REQUIREMENTS
from strangler.steps.table import ROLLBACKS, STEPS
spec = load_spec(sys.argv[1])
print(json.dumps({{
    "plans": [build_plan(spec, s).to_dict() for s in sorted(spec.services)],
    "steps": sorted(STEPS),
    "rollbacks": sorted(ROLLBACKS),
    "requirements": {{str(a): [r.name for r in rs] for a, rs in REQUIREMENTS.items()}},
    "cli_loaded": "strangler.cli" in sys.modules,
    "rich_loaded": "rich" in sys.modules,
}}, default=str))
"""


def _probe(spec: Path, first: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first), str(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_plan_and_steps_are_the_same_with_or_without_the_cli(tmp_path: Path) -> None:
    spec = tmp_path / "strangler.yaml"
    spec.write_text(SPEC)
    alone = _probe(spec, "")
    after_cli = _probe(spec, "import strangler.cli")
    assert alone["cli_loaded"] is False and after_cli["cli_loaded"] is True
    assert alone["rich_loaded"] is False, "the library imported rich"
    for key in ("plans", "steps", "rollbacks", "requirements"):
        assert alone[key] == after_cli[key], key
    plans = alone["plans"]
    assert isinstance(plans, list)
    online = next(p for p in plans if p["service"] == "order_service")
    # The sections the CLI used to register at import time are there without it.
    assert online["sync"]["mechanism"].startswith("logical decoding")
    assert online["traffic"]["router"] == "local"
    assert [s["action"] for s in online["steps"]][:4] == [
        "create_schema",
        "copy",
        "start_sync",
        "verify",
    ]
    requirements = alone["requirements"]
    assert isinstance(requirements, dict)
    assert requirements["shift_traffic"] == [
        "no_rollback_since",
        "fresh_verification",
        "reverse_sync_healthy",
    ]
    assert requirements["remove_old_path"] == [
        "passing_decommission_check",
        "old_tables_quiet",
        "no_dependents",
    ]


def test_every_forward_action_has_a_step_and_every_step_plans_without_a_server(
    tmp_path: Path,
) -> None:
    spec_path = tmp_path / "strangler.yaml"
    spec_path.write_text(SPEC)
    spec = strangler.load_spec(spec_path)
    for strategy, service in (
        ("online", "order_service"),
        ("copy", "billing"),
        ("move", "billing"),
    ):
        actions = {a for _, a, _ in forward_path(strategy)}
        assert actions <= set(STEPS), strategy
        for action in actions:
            (plan,) = STEPS[action].plan(Subject(spec, service), False)
            assert plan.action == action.value
            assert plan.summary
    # The cutover's stages are its plan; the rollback of writes is the same list reversed
    # in its sides, not built by replacing words.
    (cut,) = STEPS[Action.CUTOVER_WRITES].plan(Subject(spec, "order_service"), False)
    stages = [o.what for o in cut.operations]
    # the window runs from closing the monolith's gate to opening the service's; the new
    # slot is made before it and the old one dropped after (issue 16)
    assert stages[0].startswith("before the window: create the slot and publication")
    assert stages[1].startswith("close the write gate on the monolith's tables")
    assert stages[-2] == "open the write gate on order_service's schema's tables"
    assert stages[-1].startswith("after the window: drop the slot and publication")
    assert set(ROLLBACKS) == {"traffic", "writes", "schema", "k8s", "terraform"}


def test_the_plan_of_a_copy_strategy_service_lists_its_steps_in_order(tmp_path: Path) -> None:
    spec_path = tmp_path / "strangler.yaml"
    spec_path.write_text(SPEC)
    plan = build_plan(strangler.load_spec(spec_path), "billing", "copied")
    assert [s.action for s in plan.steps] == [
        "create_schema",
        "copy",
        "verify",
        "shift_traffic",
        "mark_stable",
        "remove_old_path",
        "decommission",
    ]
    assert [s.done for s in plan.steps][:3] == [True, True, False]
    assert "no traffic: section" in plan.warnings[0]


def test_public_api_lists_what_it_exports() -> None:
    assert set(strangler.__all__) == {*strangler._WHERE, "__version__"}
    for name in strangler.__all__:
        assert hasattr(strangler, name), name
    assert strangler.run is strangler.steps.run.run
    assert strangler.EXIT_WAITING == 75


def test_the_public_api_imports_without_the_cli_or_rich() -> None:
    script = textwrap.dedent(
        """
        import sys, strangler
        assert "strangler.cli" not in sys.modules, "cli"
        assert "rich" not in sys.modules, "rich"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
