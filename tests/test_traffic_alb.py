"""The alb router against moto's server: weights, read-back, refusals, Terraform ownership."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from strangler.aws import client
from strangler.traffic.alb import AlbOptions, AlbRouter
from strangler.traffic.base import RouterContext, RouterError, Weights
from strangler.traffic.kinds import ROUTERS


@dataclass
class Alb:
    elbv2: Any
    rule_arn: str
    monolith_tg: str
    service_tg: str
    other_tg: str
    lb_arn: str


def _alb(extra_group: bool = False) -> Alb:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    elbv2 = client("elbv2")
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
    tgs = [
        elbv2.create_target_group(Name=n, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0][
            "TargetGroupArn"
        ]
        for n in ("monolith", "order-service", "other")
    ]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs[0]}],
    )["Listeners"][0]["ListenerArn"]
    groups = [{"TargetGroupArn": tgs[0], "Weight": 100}, {"TargetGroupArn": tgs[1], "Weight": 0}]
    if extra_group:
        groups.append({"TargetGroupArn": tgs[2], "Weight": 0})
    rule = elbv2.create_rule(
        ListenerArn=listener,
        Priority=100,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/v1/orders*"]}],
        Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
    )["Rules"][0]["RuleArn"]
    return Alb(elbv2, rule, tgs[0], tgs[1], tgs[2], lb["LoadBalancerArn"])


def _router(alb: Alb, **kw: Any) -> AlbRouter:
    return AlbRouter(
        AlbOptions(
            rule_arn=alb.rule_arn,
            monolith_target_group=alb.monolith_tg,
            service_target_group=alb.service_tg,
            **kw,
        )
    )


def _rule_weights(alb: Alb) -> dict[str, int]:
    rule = alb.elbv2.describe_rules(RuleArns=[alb.rule_arn])["Rules"][0]
    groups = rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"]: g["Weight"] for g in groups}


def test_weights_are_set_and_read_back(aws_env: str) -> None:
    alb = _alb()
    router = _router(alb)
    assert router.weights() == Weights(0)
    assert router.set_weights(Weights(0.5)).service == 0.5
    assert _rule_weights(alb) == {alb.monolith_tg: 995, alb.service_tg: 5}
    assert router.set_weights(Weights(100)).service == 100
    assert _rule_weights(alb) == {alb.monolith_tg: 0, alb.service_tg: 999}
    assert router.set_weights(Weights(0)).service == 0
    assert _rule_weights(alb) == {alb.monolith_tg: 999, alb.service_tg: 0}
    assert "ModifyRule" in router.plan_change(Weights(20))[1]


def test_a_rule_with_other_target_groups_is_refused(aws_env: str) -> None:
    alb = _alb(extra_group=True)
    router = _router(alb)
    with pytest.raises(RouterError, match="exactly the monolith's and the service's"):
        router.set_weights(Weights(5))
    # Nothing changed.
    assert _rule_weights(alb)[alb.service_tg] == 0


def test_wrong_service_group_is_refused(aws_env: str) -> None:
    alb = _alb()
    router = AlbRouter(
        AlbOptions(
            rule_arn=alb.rule_arn,
            monolith_target_group=alb.monolith_tg,
            service_target_group=alb.other_tg,
        )
    )
    with pytest.raises(RouterError, match="forwards to"):
        router.check()


def test_weights_not_applied_fail_loudly(aws_env: str) -> None:
    alb = _alb()

    class Ignores:
        """An elbv2 client whose ModifyRule is accepted but changes nothing (as a racing
        Terraform apply would leave it)."""

        def describe_rules(self, **kw: Any) -> Any:
            return alb.elbv2.describe_rules(**kw)

        def modify_rule(self, **kw: Any) -> Any:
            return {}

    router = AlbRouter(
        AlbOptions(
            rule_arn=alb.rule_arn,
            monolith_target_group=alb.monolith_tg,
            service_target_group=alb.service_tg,
        ),
        elbv2=Ignores(),
    )
    with pytest.raises(RouterError, match="AWS did not apply the weights"):
        router.set_weights(Weights(20))


def test_missing_rule_is_a_clear_error(aws_env: str) -> None:
    alb = _alb()
    router = AlbRouter(
        AlbOptions(
            rule_arn=alb.rule_arn.replace("listener-rule/app", "listener-rule/app") + "0",
            monolith_target_group=alb.monolith_tg,
            service_target_group=alb.service_tg,
        )
    )
    with pytest.raises(RouterError, match=r"AWS refused DescribeRules|does not exist"):
        router.weights()


def test_terraform_owned_rule_warns_and_uses_terraform(aws_env: str, tmp_path: Any) -> None:
    said: list[str] = []
    ctx = RouterContext("order_service", "/api/v1/orders*", base_dir=tmp_path, say=said.append)
    options = AlbOptions(
        rule_arn="arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/web/1/2/3",
        monolith_target_group="arn:m",
        service_target_group="arn:s",
        terraform={"dir": str(tmp_path), "target": "aws_lb_listener_rule.order_service_weighted"},
    )
    router = ROUTERS["alb"].create(options, ctx)
    assert router.kind == "terraform"
    assert "reverted by the next 'terraform apply'" in said[0]
