"""S3, monitoring, rehearsal, attestation and terraform checks; the preflight as a whole,
its journal record, and the gate it puts on copy and write cutover."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from strangler import aws
from strangler.alarms import AlarmSet, render_prometheus
from strangler.checks.attestations import attestation_check
from strangler.checks.aws import s3_access
from strangler.checks.base import Verdict
from strangler.checks.monitoring import monitoring_configured
from strangler.checks.rehearsal import rollback_rehearsed
from strangler.checks.terraform import terraform_applied
from strangler.errors import BadInput, CheckFailed
from strangler.journal import Journal
from strangler.phases import Action
from strangler.steps.preflight import attest, context, preflight
from tests.checks_helpers import Clock, make_ctx, make_rb, spec_text

DSN = "postgresql://x/db"


def test_s3(tmp_path: Path, aws_env: str) -> None:
    aws.client("s3").create_bucket(Bucket="orders-invoices")
    ctx = make_ctx(tmp_path, spec_text(DSN, "preflight:\n  buckets: [orders-invoices]\n"))
    r = s3_access(ctx)
    assert (r.verdict, r.message) == (Verdict.PASS, "1 bucket(s) readable")
    ctx = make_ctx(tmp_path, spec_text(DSN, "preflight:\n  buckets: [orders-invoices, nope]\n"))
    r = s3_access(ctx)
    assert r.verdict is Verdict.FAIL
    assert r.message.startswith("cannot access bucket(s): nope (")
    assert r.evidence["buckets"]["orders-invoices"] == "ok"
    assert s3_access(make_ctx(tmp_path, spec_text(DSN))).verdict is Verdict.SKIPPED


def test_monitoring_cloudwatch(tmp_path: Path, aws_env: str) -> None:
    extra = "preflight:\n  alarms:\n    cloudwatch: [os-error-rate, os-latency]\n"
    ctx = make_ctx(tmp_path, spec_text(DSN, extra))
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="os-error-rate",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Period=60,
        EvaluationPeriods=2,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
        Statistic="Sum",
    )
    r = monitoring_configured(ctx)
    assert (r.verdict, r.message) == (Verdict.FAIL, "CloudWatch alarm(s) missing: os-latency")
    cw.put_metric_alarm(
        AlarmName="os-latency",
        MetricName="TargetResponseTime",
        Namespace="AWS/ApplicationELB",
        Period=60,
        EvaluationPeriods=2,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        Statistic="Average",
    )
    r = monitoring_configured(ctx)
    assert (r.verdict, r.message) == (Verdict.PASS, "2 CloudWatch alarm(s) exist")


def test_monitoring_prometheus_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    ctx = make_ctx(
        tmp_path, spec_text(DSN, "preflight:\n  alarms:\n    prometheus_rules: rules.yaml\n")
    )
    r = monitoring_configured(ctx)
    assert (r.verdict, r.message) == (
        Verdict.FAIL,
        f"Prometheus rules file {tmp_path / 'rules.yaml'} does not exist",
    )
    rules.write_text(render_prometheus(AlarmSet("billing", "x-")))
    r = monitoring_configured(ctx)
    assert (r.verdict, r.message) == (
        Verdict.FAIL,
        f"{rules} has no alerting rule for order_service",
    )
    rules.write_text(render_prometheus(AlarmSet("order_service", "x-")))
    r = monitoring_configured(ctx)
    assert (r.verdict, r.message) == (Verdict.PASS, "3 Prometheus alert(s) exist")
    skipped = monitoring_configured(make_ctx(tmp_path, spec_text(DSN)))
    assert skipped.verdict is Verdict.SKIPPED


def test_rehearsal(tmp_path: Path) -> None:
    r = rollback_rehearsed(make_ctx(tmp_path, spec_text(DSN)))
    assert r.verdict is Verdict.SKIPPED
    r = rollback_rehearsed(make_ctx(tmp_path, spec_text(DSN, "preflight:\n  max_age: 1h\n")))
    assert r.verdict is Verdict.FAIL and r.message.startswith("no rehearsal evidence")
    dev_dir = tmp_path / "dev"
    dev_dir.mkdir()
    (dev_dir / "dev.yaml").write_text(spec_text(DSN))
    rb = make_rb(tmp_path, spec_text(DSN, "preflight:\n  rehearsal_spec: dev/dev.yaml\n"))
    r = rollback_rehearsed(context(rb))
    assert r.verdict is Verdict.FAIL and "has no journal yet" in r.message
    with Journal(f"sqlite:///{dev_dir / 'state.db'}", operator="carol") as dev:
        failed = dev.intent("order_service", "rollback_traffic", reason="drill")
        dev.outcome(failed, "failed")
        r = rollback_rehearsed(context(rb))
        assert r.verdict is Verdict.FAIL
        assert "shows no completed rollback of order_service" in r.message
        ok = dev.intent("order_service", "rollback_traffic", reason="drill")
        dev.outcome(ok, "ok")
    r = rollback_rehearsed(context(rb))
    assert r.verdict is Verdict.PASS
    assert r.message.startswith("rollback_traffic completed in dev.yaml at ")
    assert r.message.endswith("by carol")


def test_attestations(tmp_path: Path) -> None:
    clock = Clock()
    rb = make_rb(tmp_path, spec_text(DSN), clock)
    r = attestation_check(context(rb), "oncall", max_age=timedelta(hours=24))
    assert r.verdict is Verdict.FAIL
    assert r.message == (
        "nobody has attested on-call rotation alerted about the migration "
        "window; run: strangler attest order_service oncall --note '…'"
    )
    assert r.awaits == "strangler attest order_service oncall --note '…'"
    attest(rb, "oncall", "paged #sre-oncall")
    r = attestation_check(context(rb), "oncall", max_age=timedelta(hours=24))
    assert r.verdict is Verdict.ATTESTED
    assert r.message == "tester at 2026-01-01 12:00 UTC: paged #sre-oncall"
    clock.advance(timedelta(hours=25))
    r = attestation_check(context(rb), "oncall", max_age=timedelta(hours=24))
    assert r.verdict is Verdict.FAIL and "is older than 1 day" in r.message
    with pytest.raises(BadInput, match="needs --note"):
        attest(rb, "oncall", " ")
    with pytest.raises(BadInput, match="is not an attestation name"):
        attest(rb, "On Call!", "x")


TF = 'resource "terraform_data" "lb" { input = "v1" }\n'


def test_terraform_applied(tmp_path: Path) -> None:
    tfdir = tmp_path / "tf"
    tfdir.mkdir()
    (tfdir / "main.tf").write_text(TF)
    ctx = make_ctx(tmp_path, spec_text(DSN, "preflight:\n  terraform_dir: tf\n"))
    r = terraform_applied(ctx)
    assert r.verdict is Verdict.FAIL
    assert r.message == (
        f"terraform plan in {tfdir} shows changes: Plan: 1 to add, 0 to "
        "change, 0 to destroy.; apply or revert them first"
    )
    from strangler.infra.terraform import Terraform

    Terraform(tfdir).apply()
    r = terraform_applied(ctx)
    assert (r.verdict, r.message) == (Verdict.PASS, f"terraform plan in {tfdir} shows no changes")
    skipped = terraform_applied(make_ctx(tmp_path, spec_text(DSN)))
    assert skipped.message == "no terraform directory in the spec (preflight.terraform_dir)"


FULL = "preflight:\n  max_age: 2h\n  attestations: [oncall]\n  rehearsal_spec: dev.yaml\n"


def _rehearse(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text(spec_text(DSN).replace("state.db", "dev.db"))
    with Journal(f"sqlite:///{tmp_path / 'dev.db'}") as dev:
        dev.outcome(dev.intent("order_service", "rollback_traffic"), "ok")


def test_preflight_journals_and_gates_copy(tmp_path: Path) -> None:
    clock = Clock()
    rb = make_rb(tmp_path, spec_text(DSN, FULL), clock)
    # Creating the schema starts the migration: it is gated too (issue 13), and its refusal
    # journals nothing.
    with (
        pytest.raises(CheckFailed, match="order_service has no preflight on record"),
        rb.step(Action.CREATE_SCHEMA),
    ):
        pass
    assert rb.journal.history("order_service") == []
    with rb.step(Action.CREATE_SCHEMA, force=True, reason="the schema only, for a look"):
        pass
    with (
        pytest.raises(CheckFailed, match="order_service has no preflight on record"),
        rb.step(Action.COPY),
    ):
        pass
    done = preflight(rb)
    assert not done.passed
    failed = sorted(r.name for r in done.results if r.blocks)
    assert failed == ["attested: oncall", "rollback rehearsed"]
    with pytest.raises(CheckFailed) as err, rb.step(Action.COPY):
        pass
    assert err.value.message == (
        "the last preflight of order_service (0ms ago) failed: rollback rehearsed, attested: oncall"
    )
    _rehearse(tmp_path)
    attest(rb, "oncall", "told #sre")
    done = preflight(rb)
    assert done.passed, [r.to_dict() for r in done.failed]
    last = rb.journal.last("order_service", "preflight")
    assert last is not None and last.status == "pass"
    assert "terraform applied" in {r["name"] for r in last.details["results"]}
    clock.advance(timedelta(hours=3))
    with pytest.raises(CheckFailed, match=r"is 3h old; the spec allows 2h"), rb.step(Action.COPY):
        pass
    clock.advance(timedelta(hours=-3))
    with rb.step(Action.COPY):
        pass
    assert rb.phase.value == "copied"


def test_no_preflight_section_does_not_gate(tmp_path: Path) -> None:
    rb = make_rb(tmp_path, spec_text(DSN))
    with rb.step(Action.CREATE_SCHEMA):
        pass
    with rb.step(Action.COPY):
        pass
    assert rb.phase.value == "copied"
