"""CloudWatch and ALB-log metric sources against moto's server."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest

from strangler.aws import client
from strangler.metrics.alb_logs import AlbLogsOptions, AlbLogsSource, parse_line
from strangler.metrics.base import MetricsUnreachable
from strangler.metrics.cloudwatch import CloudwatchOptions, CloudwatchSource

LB = "app/web/50dc6c495c0c9188"
MONO_TG = "targetgroup/monolith/73e2d6bc24d8a067"
SVC_TG = "targetgroup/order-service/943f017f100becff"
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"


def _put(cw: object, group: str, metric: str, value: float, at: datetime) -> None:
    cw.put_metric_data(  # type: ignore[attr-defined]
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "LoadBalancer", "Value": LB},
                    {"Name": "TargetGroup", "Value": group},
                ],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def test_cloudwatch_counts_per_target_group(aws_env: str) -> None:
    cw = client("cloudwatch")
    at = datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=2)
    _put(cw, MONO_TG, "RequestCount", 950, at)
    _put(cw, MONO_TG, "HTTPCode_Target_5XX_Count", 3, at)
    _put(cw, SVC_TG, "RequestCount", 50, at)
    _put(cw, SVC_TG, "HTTPCode_Target_5XX_Count", 7, at)
    _put(cw, SVC_TG, "RequestCount", 999, at - timedelta(minutes=30))  # outside the window
    source = CloudwatchSource(
        CloudwatchOptions(
            load_balancer=LB, monolith_target_group=MONO_TG, service_target_group=SVC_TG
        )
    )
    assert source.per_route is False  # the plan warns: not a per-route baseline
    window = source.measure(at - timedelta(seconds=5), at + timedelta(seconds=40))
    assert (window.monolith.requests, window.monolith.errors) == (950, 3)
    assert (window.service.requests, window.service.errors) == (50, 7)


def test_cloudwatch_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    source = CloudwatchSource(
        CloudwatchOptions(
            load_balancer=LB, monolith_target_group=MONO_TG, service_target_group=SVC_TG
        )
    )
    now = datetime.now(UTC)
    with pytest.raises(MetricsUnreachable, match="GetMetricData failed"):
        source.measure(now - timedelta(minutes=1), now)


def _line(at: datetime, path: str, status: int, tg: str, seconds: float) -> str:
    return (
        f"https {at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {LB} 10.0.0.1:5000 10.0.1.5:80 0.000 "
        f'{seconds:.3f} 0.000 {status} {status} 100 200 "GET https://shop.example:443{path}?x=1 '
        f'HTTP/1.1" "curl/8" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {ARN}{tg} '
        '"Root=1-abc" "shop.example" "-" 100 2026-01-01T00:00:00.000000Z "forward" "-" "-" '
        '"10.0.1.5:80" "200" "-" "-"'
    )


def test_alb_logs_filtered_to_the_route(aws_env: str) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="alb-logs")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    lines = []
    for i in range(100):
        at = t0 + timedelta(seconds=i)
        lines.append(_line(at, f"/api/v1/orders/{i}", 200, MONO_TG, 0.010))
        lines.append(_line(at, "/api/v1/customers/1", 500, MONO_TG, 0.500))  # other route
        if i % 5 == 0:
            lines.append(
                _line(
                    at, f"/api/v1/orders/{i}", 503 if i % 10 == 0 else 200, SVC_TG, 0.020 + i / 1000
                )
            )
    lines.append(_line(t0 + timedelta(hours=1), "/api/v1/orders/x", 500, SVC_TG, 1.0))  # later
    key = f"lb/AWSLogs/123456789012/elasticloadbalancing/us-east-1/{t0:%Y/%m/%d}/log.gz"
    s3.put_object(Bucket="alb-logs", Key=key, Body=gzip.compress("\n".join(lines).encode()))
    source = AlbLogsSource(
        AlbLogsOptions(
            bucket="alb-logs",
            prefix="lb/",
            monolith_target_group=ARN + MONO_TG,
            service_target_group=ARN + SVC_TG,
        ),
        "/api/v1/orders*",
    )
    window = source.measure(t0, t0 + timedelta(seconds=100))
    # The customers route's 5xx never reach the monolith's baseline.
    assert (window.monolith.requests, window.monolith.errors) == (100, 0)
    assert (window.service.requests, window.service.errors) == (20, 10)
    assert window.service.p99 == pytest.approx(0.115)
    assert window.monolith.p99 == pytest.approx(0.010)


def test_parse_line_rejects_garbage() -> None:
    assert parse_line("not a log line") is None
    assert parse_line('h 2026 "unterminated') is None
