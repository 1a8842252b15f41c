"""The terraform router with a real Terraform, on built-in terraform_data resources only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from strangler.errors import BadInput
from strangler.infra.terraform import locate_terraform
from strangler.traffic.base import RouterContext, RouterError, Weights
from strangler.traffic.terraform import TerraformOptions, TerraformRouter, rewrite_tfvars

MAIN_TF = """\
variable "monolith_weight" { type = number }
variable "order_service_weight" { type = number }

# Stands in for aws_lb_listener_rule.order_service_weighted: no provider download needed.
resource "terraform_data" "order_service_weighted" {
  input = { monolith = var.monolith_weight, order_service = var.order_service_weight }
}
"""
TFVARS = """\
# Traffic split for /api/v1/orders* (percent)
monolith_weight      = 100  # e.g., 90 → 50 → 0
order_service_weight = 0    # e.g., 10 → 50 → 100

environment = "prod"
"""
TARGET = "terraform_data.order_service_weighted"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def infra(tmp_path: Path) -> Path:
    try:
        locate_terraform()
    except Exception as exc:
        pytest.skip(f"no terraform: {exc}")
    env = tmp_path / "infra" / "terraform" / "environments" / "prod"
    env.mkdir(parents=True)
    (env / "main.tf").write_text(MAIN_TF + 'variable "environment" { type = string }\n')
    (env / "terraform.tfvars").write_text(TFVARS)
    repo = tmp_path / "infra"
    (repo / ".gitignore").write_text(".terraform/\n*.tfstate*\n.terraform.lock.hcl\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return env


def _router(
    env: Path, *, yes: bool = True, reason: str = "", answer: bool = True
) -> TerraformRouter:
    asked: list[str] = []

    def confirm(q: str) -> bool:
        asked.append(q)
        return answer

    ctx = RouterContext(
        "order_service",
        "/api/v1/orders*",
        base_dir=env.parent,
        confirm=confirm,
        assume_yes=yes,
        reason=reason,
    )
    router = TerraformRouter(TerraformOptions(dir=env.name, target=TARGET), ctx)
    router.asked = asked  # type: ignore[attr-defined]
    return router


def _applied(env: Path) -> dict[str, int]:
    state = json.loads((env / "terraform.tfstate").read_text())
    return state["resources"][0]["instances"][0]["attributes"]["input"]["value"]


def test_rewrite_keeps_comments_and_layout() -> None:
    out = rewrite_tfvars(TFVARS, {"monolith_weight": 80, "order_service_weight": 20})
    assert out == TFVARS.replace("= 100  #", "= 80  #").replace("= 0    #", "= 20    #")
    with pytest.raises(RouterError, match="sets missing_weight 0 times"):
        rewrite_tfvars(TFVARS, {"missing_weight": 1})


def test_shift_plans_applies_reads_back_and_commits(infra: Path) -> None:
    router = _router(infra)
    assert router.weights() == Weights(0)
    assert router.set_weights(Weights(20)).service == 20
    assert _applied(infra) == {"monolith": 80, "order_service": 20}
    text = (infra / "terraform.tfvars").read_text()
    assert "# e.g., 90 → 50 → 0" in text and 'environment = "prod"' in text
    log = _git(infra, "log", "--format=%s", "-1")
    assert log.strip() == "feat(migration): shift 20% traffic to order_service in prod"
    back = _router(infra, reason="p99 doubled").set_weights(Weights(0))
    assert back.service == 0 and _applied(infra) == {"monolith": 100, "order_service": 0}
    log = _git(infra, "log", "--format=%s", "-1")
    assert log.strip() == "revert(migration): rollback traffic to monolith — p99 doubled"


def test_refused_approval_changes_nothing(infra: Path) -> None:
    router = _router(infra, yes=False, answer=False)
    with pytest.raises(BadInput, match="not approved"):
        router.set_weights(Weights(5))
    assert router.asked  # type: ignore[attr-defined]
    assert (infra / "terraform.tfvars").read_text() == TFVARS
    assert not (infra / "terraform.tfstate").exists()
    assert _git(infra, "log", "--format=%s").strip() == "init"
