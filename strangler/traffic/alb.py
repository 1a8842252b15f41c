"""The ``alb`` router: the runbook's listener rule, forward to two weighted target groups.

strangler reads the rule, refuses it unless its forward action has exactly the monolith's
and the service's target groups, rewrites their weights with ``ModifyRule`` (keeping the
rest of the action, stickiness included), and reads the rule back: if AWS does not hold the
weights asked for, that is an error, never a silent success. ALB weights run 0..999, so
percentages are expressed on a 1,000 scale (0.5 % is 995/5) and 100 % as 0/999.

When Terraform owns the rule (``terraform:`` in the options), a direct change would be
reverted by the next ``terraform apply``: strangler warns and uses the ``terraform`` router
with those options instead.

Spec::

    router: { kind: alb, rule_arn: arn:…:listener-rule/…, monolith_target_group: arn:…,
              service_target_group: arn:… }
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from strangler.aws import client
from strangler.traffic.base import Router, RouterContext, RouterError, RouterUnreachable, Weights
from strangler.traffic.terraform import TerraformOptions, TerraformRouter

__all__ = ["AlbOptions", "AlbRouter"]

MAX_WEIGHT = 999


class AlbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule_arn: str
    monolith_target_group: str = Field(description="ARN of the monolith's target group.")
    service_target_group: str = Field(description="ARN of the service's target group.")
    region: str | None = None
    terraform: TerraformOptions | None = Field(
        default=None,
        description="Set when Terraform owns the rule: the terraform router's options.",
    )


def _aws_error(exc: Exception, what: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        msg = exc.response.get("Error", {}).get("Message", str(exc))
        return RouterError(f"AWS refused {what}: {code}: {msg}")
    if isinstance(exc, BotoCoreError):
        return RouterUnreachable(f"cannot reach AWS for {what}: {exc}")
    return exc


class AlbRouter:
    kind = "alb"

    def __init__(self, options: AlbOptions, elbv2: Any | None = None) -> None:
        self.options = options
        self.elbv2 = elbv2 or client("elbv2", region=options.region)

    def _rule(self) -> dict[str, Any]:
        try:
            rules = self.elbv2.describe_rules(RuleArns=[self.options.rule_arn])["Rules"]
        except Exception as exc:
            raise _aws_error(exc, f"DescribeRules {self.options.rule_arn}") from exc
        if not rules:
            raise RouterError(f"listener rule {self.options.rule_arn} does not exist")
        rule: dict[str, Any] = rules[0]
        return rule

    def _forward(self, rule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
        forwards = [a for a in rule.get("Actions", []) if a.get("Type") == "forward"]
        if len(forwards) != 1:
            raise RouterError(f"rule {self.options.rule_arn} has no single forward action")
        action = forwards[0]
        groups = action.get("ForwardConfig", {}).get("TargetGroups")
        if groups is None and action.get("TargetGroupArn"):
            groups = [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}]
        found = {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups or []}
        wanted = {self.options.monolith_target_group, self.options.service_target_group}
        if set(found) != wanted:
            raise RouterError(
                f"rule {self.options.rule_arn} forwards to {sorted(found)}; strangler needs "
                "exactly the monolith's and the service's target groups",
                hint="fix the rule (or the target group ARNs in the spec) so it forwards to "
                "those two, then retry",
            )
        return action, found

    def weights(self) -> Weights:
        _, found = self._forward(self._rule())
        return Weights.from_pair(
            found[self.options.monolith_target_group], found[self.options.service_target_group]
        )

    def _pair(self, weights: Weights) -> tuple[int, int]:
        mono, svc = weights.pair(1000)
        return min(mono, MAX_WEIGHT), min(svc, MAX_WEIGHT)

    def _actions(self, action: dict[str, Any], weights: Weights) -> list[dict[str, Any]]:
        mono, svc = self._pair(weights)
        config = dict(action.get("ForwardConfig", {}))
        config["TargetGroups"] = [
            {"TargetGroupArn": self.options.monolith_target_group, "Weight": mono},
            {"TargetGroupArn": self.options.service_target_group, "Weight": svc},
        ]
        return [{"Type": "forward", "Order": action.get("Order", 1), "ForwardConfig": config}]

    def set_weights(self, weights: Weights) -> Weights:
        action, _ = self._forward(self._rule())
        try:
            self.elbv2.modify_rule(
                RuleArn=self.options.rule_arn, Actions=self._actions(action, weights)
            )
        except Exception as exc:
            raise _aws_error(exc, f"ModifyRule {self.options.rule_arn}") from exc
        _, found = self._forward(self._rule())
        want_mono, want_svc = self._pair(weights)
        got = (
            found[self.options.monolith_target_group],
            found[self.options.service_target_group],
        )
        if got != (want_mono, want_svc):
            raise RouterError(
                f"AWS did not apply the weights to {self.options.rule_arn}: asked for "
                f"monolith {want_mono} / service {want_svc}, it holds {got[0]} / {got[1]}",
                hint="check the rule in the console and retry; traffic may be split as read",
            )
        return Weights.from_pair(*got)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule_arn": self.options.rule_arn,
            "monolith_target_group": self.options.monolith_target_group,
            "service_target_group": self.options.service_target_group,
        }

    def check(self) -> None:
        self.weights()

    def plan_change(self, weights: Weights) -> list[str]:
        mono, svc = self._pair(weights)
        return [
            f"elbv2 DescribeRules RuleArns=[{self.options.rule_arn}]",
            f"elbv2 ModifyRule RuleArn={self.options.rule_arn} forward: "
            f"{self.options.monolith_target_group} weight {mono}, "
            f"{self.options.service_target_group} weight {svc}",
            f"elbv2 DescribeRules RuleArns=[{self.options.rule_arn}] (read back)",
        ]


def create(options: AlbOptions, ctx: RouterContext) -> Router:
    if options.terraform is not None:
        ctx.say(
            f"warning: Terraform owns listener rule {options.rule_arn}; a direct change would "
            "be reverted by the next 'terraform apply', so strangler changes it through "
            "Terraform (the terraform router)"
        )
        return TerraformRouter(options.terraform, ctx)
    return AlbRouter(options)
