"""The traffic section of the spec: its errors, and what `plan` says about it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from strangler.errors import SpecError
from strangler.spec import parse_spec_text
from tests.fix_spec import CliResult

BASE = """\
version: 1
source: {{ dsn: "postgresql://localhost/m" }}
services:
  order_service:
    tables: [orders]
    target: {{ schema: order_service }}
    traffic:
      route: /api/v1/orders*
      router: {router}
{extra}"""
LOCAL = '{ kind: local, admin_url: "http://127.0.0.1:8600" }'


def _spec(extra: str = "", router: str = LOCAL) -> str:
    return BASE.format(
        router=router, extra="".join(f"      {line}\n" for line in extra.splitlines())
    )


@pytest.mark.parametrize(
    ("extra", "router", "message"),
    [
        ("interval: 2h\nbake: 1h", LOCAL, "interval (2h) is longer than the bake (1h)"),
        ("approve_before: [30]", LOCAL, "approve_before names [30.0]"),
        ("on_error: ignore", LOCAL, "on_error"),
        (
            "metrics: { kind: datadog }",
            LOCAL,
            "unknown metrics kind 'datadog'; valid kinds: alb_logs",
        ),
        ("", "{ kind: alb, rule_arn: x }", "monolith_target_group"),
        ("", "{ kind: haproxy, socket: /s, backend: b, wieght: 1 }", "wieght"),
        (
            "gates: [{ metric: latency_p99, max_increase_over_baseline: 1 }]",
            LOCAL,
            "does not apply",
        ),
    ],
)
def test_traffic_spec_errors(extra: str, router: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec_text(_spec(extra, router))
    assert message in err.value.message


def test_plan_warns_when_the_baseline_is_not_per_route(
    write_spec: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    extra = (
        "metrics: { kind: cloudwatch, load_balancer: app/w/1, monolith_target_group: t/m/1, "
        "service_target_group: t/s/1 }\n"
        "approve_before: [100]\n"
        "gates: [{ metric: error_rate, max: 0.01 }]"
    )
    write_spec(_spec(extra))
    done = cli("plan", "order_service", "--offline", "-o", "json")
    assert done.code == 0, done.stderr
    plan = done.json()["services"][0]
    assert any("not a fair baseline" in w for w in plan["warnings"])
    assert plan["traffic"]["baseline"].startswith("the monolith's whole target group")
    assert plan["traffic"]["steps"][-1] == {"weight": 100.0, "bake": "2d", "approval": True}
    write_spec(_spec("gates: [{ metric: error_rate, max: 0.01 }]"))
    plan = cli("plan", "order_service", "--offline", "-o", "json").json()["services"][0]
    assert not any("fair baseline" in w for w in plan["warnings"])
    assert plan["traffic"]["baseline"] == "the monolith on the same route, same interval"


def test_alb_terraform_options_are_checked_at_load() -> None:
    router = (
        "{ kind: alb, rule_arn: r, monolith_target_group: m, service_target_group: s, "
        "terraform: { dir: x } }"
    )
    with pytest.raises(SpecError, match="target"):
        parse_spec_text(_spec("", router))
