"""Pre-flight items that ask AWS: "S3 bucket access verified for services that need it" and
the CloudWatch half of "Monitoring/alerting configured". Clients come from
:func:`strangler.aws.client`, so tests aim them at moto's server."""

from __future__ import annotations

from typing import Any

from strangler.aws import client
from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.errors import Unreachable

__all__ = ["cloudwatch_alarms", "s3_access"]


def _code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code") or type(exc).__name__)


def s3_access(ctx: CheckContext) -> CheckResult:
    name = "s3 bucket access"
    pre = ctx.svc.preflight
    buckets = list(pre.buckets) if pre else []
    if not buckets:
        return CheckResult(name, Verdict.SKIPPED, "the spec lists no buckets (preflight.buckets)")
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client("s3")
    seen: dict[str, str] = {}
    for bucket in buckets:
        try:
            s3.head_bucket(Bucket=bucket)
            s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
            seen[bucket] = "ok"
        except ClientError as exc:
            seen[bucket] = _code(exc)
        except BotoCoreError as exc:
            raise Unreachable(f"S3 cannot be reached: {exc}", hint="check AWS credentials") from exc
    bad = {b: c for b, c in seen.items() if c != "ok"}
    if bad:
        text = ", ".join(f"{b} ({c})" for b, c in bad.items())
        return CheckResult(
            name, Verdict.FAIL, f"cannot access bucket(s): {text}", {"buckets": seen}
        )
    return CheckResult(name, Verdict.PASS, f"{len(seen)} bucket(s) readable", {"buckets": seen})


def cloudwatch_alarms(names: list[str]) -> tuple[list[str], list[str]]:
    """``(found, missing)`` among the CloudWatch alarm names."""
    from botocore.exceptions import BotoCoreError, ClientError

    cw = client("cloudwatch")
    found: set[str] = set()
    try:
        for i in range(0, len(names), 100):
            resp = cw.describe_alarms(AlarmNames=names[i : i + 100])
            found |= {a["AlarmName"] for a in resp.get("MetricAlarms", [])}
            found |= {a["AlarmName"] for a in resp.get("CompositeAlarms", [])}
    except (ClientError, BotoCoreError) as exc:
        raise Unreachable(
            f"CloudWatch cannot be read: {_code(exc)}", hint="check AWS credentials and region"
        ) from exc
    return sorted(found), [n for n in names if n not in found]
