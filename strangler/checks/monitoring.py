"""Pre-flight: "Monitoring/alerting configured (CloudWatch alarms or Prometheus alerts)".

Either source counts: the CloudWatch alarms the spec names must all exist, and a Prometheus
rules file must hold at least one alerting rule that names the service (in its labels or its
expression). ``strangler alarms SERVICE`` writes both."""

from __future__ import annotations

from typing import Any

import yaml

from strangler.checks.aws import cloudwatch_alarms
from strangler.checks.base import CheckContext, CheckResult, Verdict

__all__ = ["monitoring_configured", "prometheus_alerts_for"]

NAME = "monitoring configured"


def prometheus_alerts_for(text: str, service: str) -> list[str]:
    """Names of the alerting rules in a Prometheus rules document that concern ``service``."""
    doc = yaml.safe_load(text) or {}
    names = []
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" not in rule:
                continue
            labels = {str(v) for v in (rule.get("labels") or {}).values()}
            if service in labels or service in str(rule.get("expr", "")):
                names.append(str(rule["alert"]))
    return names


def monitoring_configured(ctx: CheckContext) -> CheckResult:
    pre = ctx.svc.preflight
    alarms = pre.alarms if pre else None
    if alarms is None or (not alarms.cloudwatch and alarms.prometheus_rules is None):
        return CheckResult(
            NAME,
            Verdict.SKIPPED,
            "no preflight.alarms in the spec; write them with 'strangler alarms "
            f"{ctx.service}' and name them there",
        )
    evidence: dict[str, Any] = {}
    problems = []
    if alarms.cloudwatch:
        found, missing = cloudwatch_alarms(list(alarms.cloudwatch))
        evidence["cloudwatch"] = {"found": found, "missing": missing}
        if missing:
            problems.append(f"CloudWatch alarm(s) missing: {', '.join(missing)}")
    if alarms.prometheus_rules is not None:
        path = ctx.spec.resolve(alarms.prometheus_rules)
        if not path.is_file():
            problems.append(f"Prometheus rules file {path} does not exist")
        else:
            try:
                rules = prometheus_alerts_for(path.read_text(), ctx.service)
            except yaml.YAMLError as exc:
                rules = []
                problems.append(f"Prometheus rules file {path} is not valid YAML: {exc}")
            evidence["prometheus"] = {"file": str(path), "alerts": rules}
            if not rules and not problems:
                problems.append(f"{path} has no alerting rule for {ctx.service}")
    if problems:
        return CheckResult(NAME, Verdict.FAIL, "; ".join(problems), evidence)
    parts = []
    if "cloudwatch" in evidence:
        parts.append(f"{len(evidence['cloudwatch']['found'])} CloudWatch alarm(s)")
    if "prometheus" in evidence:
        parts.append(f"{len(evidence['prometheus']['alerts'])} Prometheus alert(s)")
    return CheckResult(NAME, Verdict.PASS, " and ".join(parts) + " exist", evidence)
