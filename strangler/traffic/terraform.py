"""The ``terraform`` router: the runbook's own way (tfvars, plan, apply, commit), done right.

The runbook's script ran ``sed`` over ``terraform.tfvars``, planned with ``-target``, asked
"Continue? (y/N)", applied and committed. This router does the same steps with care:

- only the two weight values are rewritten; comments, spacing and every other line stay;
- ``terraform plan -target=ADDRESS -out=FILE`` is shown, and applied only on approval
  (``--yes``, or automatically for a rollback, as the runbook's rollback uses
  ``-auto-approve``); exactly the reviewed plan file is applied;
- after the apply, a second targeted plan must show no changes: the read-back;
- the change is committed in the infrastructure repository with the runbook's message
  (``feat(migration): shift 20% traffic to order_service in prod`` or
  ``revert(migration): rollback traffic to monolith — <reason>``);
- when anything fails before the apply, ``terraform.tfvars`` is restored.

``weights()`` reads the tfvars (what Terraform is told); ``set_weights`` proves it applied.

Spec::

    router: { kind: terraform, dir: terraform/environments/prod,
              target: aws_lb_listener_rule.order_service_weighted }
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from strangler.errors import BadInput, StranglerError
from strangler.infra.gitrepo import InfraRepo, shift_message, traffic_rollback
from strangler.infra.terraform import Terraform
from strangler.traffic.base import RouterContext, RouterError, Weights

__all__ = ["TerraformOptions", "TerraformRouter", "rewrite_tfvars"]


class TerraformOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dir: str = Field(description="The environment's Terraform directory (relative to the spec).")
    target: str = Field(description="Resource address of the listener rule, for -target.")
    tfvars: str = "terraform.tfvars"
    monolith_var: str = "monolith_weight"
    service_var: str | None = Field(default=None, description="Default: SERVICE_weight.")
    scale: int = Field(default=100, ge=100, le=1000, description="Weights sum to this.")
    env: str | None = Field(default=None, description="For commit messages; default: dir name.")
    commit: bool = Field(default=True, description="Commit tfvars in the repo holding dir.")


def _pattern(name: str) -> re.Pattern[str]:
    # `name = 20  # comment` → group 1 is everything before the value, 3 after it.
    return re.compile(rf"^(\s*{re.escape(name)}\s*=\s*)(-?\d+(?:\.\d+)?)([^\n]*)$", re.M)


def read_var(text: str, name: str) -> float:
    found = _pattern(name).findall(text)
    if len(found) != 1:
        raise RouterError(
            f"terraform.tfvars sets {name} {len(found)} times; strangler needs exactly one "
            f"'{name} = N' line",
            hint=f"add '{name} = 0' (or remove the duplicate) and retry",
        )
    return float(found[0][1])


def _replacer(value: int) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        return f"{m.group(1)}{value}{m.group(3)}"

    return replace


def rewrite_tfvars(text: str, values: dict[str, int]) -> str:
    """``text`` with only the named variables' numbers changed; all else byte for byte."""
    for name, value in values.items():
        read_var(text, name)
        text = _pattern(name).sub(_replacer(value), text)
    return text


class TerraformRouter:
    kind = "terraform"

    def __init__(self, options: TerraformOptions, ctx: RouterContext) -> None:
        self.options = options
        self.ctx = ctx
        workdir = Path(options.dir)
        self.workdir = workdir if workdir.is_absolute() else ctx.base_dir / workdir
        self.tfvars = self.workdir / options.tfvars
        self.service_var = options.service_var or f"{ctx.service}_weight"

    def _text(self) -> str:
        try:
            return self.tfvars.read_text()
        except OSError as exc:
            raise BadInput(
                f"cannot read {self.tfvars}: {exc.strerror}",
                hint="set traffic.router.dir (and tfvars) to the environment's directory",
            ) from exc

    def weights(self) -> Weights:
        text = self._text()
        return Weights.from_pair(
            read_var(text, self.options.monolith_var), read_var(text, self.service_var)
        )

    def _values(self, weights: Weights) -> dict[str, int]:
        mono, svc = weights.pair(self.options.scale)
        return {self.options.monolith_var: mono, self.service_var: svc}

    def set_weights(self, weights: Weights) -> Weights:
        original = self._text()
        tf = Terraform(self.workdir)
        if not (self.workdir / ".terraform").exists():
            tf.init()
        plan_file = self.workdir / "strangler.tfplan"
        applied = False
        try:
            self.tfvars.write_text(rewrite_tfvars(original, self._values(weights)))
            plan = tf.plan(out=plan_file, targets=[self.options.target])
            self.ctx.say(f"terraform plan -target={self.options.target}: {plan.summary}")
            if plan.changes:
                question = f"Apply this plan ({weights})?"
                if not (self.ctx.assume_yes or self.ctx.confirm(question)):
                    raise BadInput("aborted: the plan was not approved; nothing was applied")
                tf.apply(plan_file)
                applied = True
            if tf.plan(targets=[self.options.target]).changes:
                raise RouterError(
                    f"after the apply, terraform still plans changes to {self.options.target}",
                    hint=f"run 'terraform plan -target={self.options.target}' in {self.workdir}",
                )
        except BaseException:
            if not applied:
                self.tfvars.write_text(original)
            raise
        finally:
            plan_file.unlink(missing_ok=True)
        got = self.weights()
        if self.options.commit and self._text() != original:
            self._commit(weights)
        return got

    def _commit(self, weights: Weights) -> None:
        try:
            repo = InfraRepo(self.workdir)
        except StranglerError as exc:
            self.ctx.say(f"warning: not committed: {exc.message}")
            return
        env = self.options.env or self.workdir.name
        if weights.service == 0:
            message = traffic_rollback(self.ctx.reason or "rollback")
        elif float(weights.service).is_integer():
            message = shift_message(int(weights.service), self.ctx.service, env)
        else:
            # The same form for a sub-percent step (ALB weights allow 0.5 %).
            message = (
                f"feat(migration): shift {weights.service:g}% traffic to {self.ctx.service} "
                f"in {env}"
            )
        sha = repo.commit(message, paths=[self.tfvars.resolve()])
        self.ctx.say(f"committed {sha[:12]}: {message}")

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dir": str(self.workdir),
            "target": self.options.target,
            "vars": [self.options.monolith_var, self.service_var],
        }

    def check(self) -> None:
        self.weights()
        Terraform(self.workdir)

    def plan_change(self, weights: Weights) -> list[str]:
        values = self._values(weights)
        return [
            f"rewrite {self.tfvars}: " + ", ".join(f"{k} = {v}" for k, v in values.items()),
            f"terraform plan -target={self.options.target} -out=strangler.tfplan",
            "terraform apply strangler.tfplan (after approval)",
            f"terraform plan -target={self.options.target} (read back: no changes)",
            f"git commit {self.tfvars.name}",
        ]


def create(options: TerraformOptions, ctx: RouterContext) -> TerraformRouter:
    return TerraformRouter(options, ctx)
