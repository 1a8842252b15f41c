"""The runbook's alarms for one service, rendered as Terraform or as Prometheus rules.

Three alarms, the same in both forms:

* **5xx**: the runbook's ``aws_cloudwatch_metric_alarm`` on ``HTTPCode_Target_5XX_Count`` of
  the service's target group (sum over 60 s above 10, two periods);
* **latency**: p99 ``TargetResponseTime`` above the threshold (from a ``latency_p99`` gate's
  ``max`` when the spec has one, else 1 s);
* **sync lag**: strangler's own ``strangler_sync_lag_seconds`` (served by
  :mod:`strangler.metrics_export` from ``strangler sync --metrics-port``) above 60 s.

Missing data is never taken for health (issue 14): the sync-lag alarm breaches when the lag
is not published (the process that publishes it is the one that keeps the lag down); the
ALB alarms go to INSUFFICIENT_DATA, which notifies, when there are no requests; the 5xx
count, which the ALB omits when it is zero, is filled with 0 where requests were counted.
Prometheus gets an ``absent()`` alert for an online service whose lag is not exported.

Names are ``<prefix><service>-error-rate`` and so on; list them under
``preflight.alarms.cloudwatch`` so the pre-flight checks they exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from strangler.spec import ServiceSpec

__all__ = ["AlarmSet", "alarm_set", "render_prometheus", "render_terraform"]


@dataclass(frozen=True)
class AlarmSet:
    service: str
    prefix: str
    error_threshold: int = 10
    latency_seconds: float = 1.0
    lag_seconds: float = 60
    online: bool = False

    @property
    def names(self) -> list[str]:
        base = f"{self.prefix}{self.service}"
        return [f"{base}-error-rate", f"{base}-latency-p99", f"{base}-sync-lag"]


def alarm_set(
    service: str, svc: ServiceSpec, prefix: str = "strangler-", lag_seconds: float = 60
) -> AlarmSet:
    latency = 1.0
    if svc.traffic:
        for gate in svc.traffic.gates:
            if gate.metric == "latency_p99" and gate.max is not None:
                latency = gate.max
    return AlarmSet(
        service,
        prefix,
        latency_seconds=latency,
        lag_seconds=lag_seconds,
        online=svc.strategy == "online",
    )


def _hcl(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid HCL string literal


def render_terraform(a: AlarmSet) -> str:
    ident = a.service.replace("-", "_")
    err, lat, lag = a.names
    return f"""\
# Written by `strangler alarms {a.service} --format terraform` (runbook: Observability Setup).
variable "{ident}_target_group_arn_suffix" {{ type = string }}
variable "{ident}_load_balancer_arn_suffix" {{ type = string }}
variable "{ident}_alarm_topic_arn" {{ type = string }}

resource "aws_cloudwatch_metric_alarm" "{ident}_error_rate" {{
  alarm_name          = {_hcl(err)}
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = "2"
  threshold           = "{a.error_threshold}"
  alarm_description   = {_hcl(f"Error rate too high for {a.service}")}
  # The ALB publishes no 5xx count for a minute without 5xx: FILL makes that a 0 wherever
  # requests were counted. A minute without any request stays missing, and missing data is
  # not healthy: it moves the alarm to INSUFFICIENT_DATA, which notifies too.
  treat_missing_data = "missing"

  metric_query {{
    id          = "errors"
    expression  = "FILL(m5xx, 0) + 0 * requests"
    label       = "5xx per minute"
    return_data = true
  }}

  metric_query {{
    id = "m5xx"
    metric {{
      metric_name = "HTTPCode_Target_5XX_Count"
      namespace   = "AWS/ApplicationELB"
      period      = 60
      stat        = "Sum"
      dimensions = {{
        TargetGroup  = var.{ident}_target_group_arn_suffix
        LoadBalancer = var.{ident}_load_balancer_arn_suffix
      }}
    }}
  }}

  metric_query {{
    id = "requests"
    metric {{
      metric_name = "RequestCount"
      namespace   = "AWS/ApplicationELB"
      period      = 60
      stat        = "Sum"
      dimensions = {{
        TargetGroup  = var.{ident}_target_group_arn_suffix
        LoadBalancer = var.{ident}_load_balancer_arn_suffix
      }}
    }}
  }}

  alarm_actions             = [var.{ident}_alarm_topic_arn]
  ok_actions                = [var.{ident}_alarm_topic_arn]
  insufficient_data_actions = [var.{ident}_alarm_topic_arn]
}}

resource "aws_cloudwatch_metric_alarm" "{ident}_latency_p99" {{
  alarm_name          = {_hcl(lat)}
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = "3"
  metric_name         = "TargetResponseTime"
  namespace           = "AWS/ApplicationELB"
  period              = "60"
  extended_statistic  = "p99"
  threshold           = "{a.latency_seconds:g}"
  alarm_description   = {_hcl(f"p99 latency above {a.latency_seconds:g}s for {a.service}")}
  # No request in a period is no evidence of health: INSUFFICIENT_DATA, which notifies.
  treat_missing_data = "missing"

  dimensions = {{
    TargetGroup  = var.{ident}_target_group_arn_suffix
    LoadBalancer = var.{ident}_load_balancer_arn_suffix
  }}

  alarm_actions             = [var.{ident}_alarm_topic_arn]
  ok_actions                = [var.{ident}_alarm_topic_arn]
  insufficient_data_actions = [var.{ident}_alarm_topic_arn]
}}

resource "aws_cloudwatch_metric_alarm" "{ident}_sync_lag" {{
  alarm_name          = {_hcl(lag)}
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = "5"
  metric_name         = "strangler_sync_lag_seconds"
  namespace           = "Strangler"
  period              = "60"
  statistic           = "Maximum"
  threshold           = "{a.lag_seconds:g}"
  alarm_description   = {_hcl(f"strangler sync lag above {a.lag_seconds:g}s for {a.service}")}
  # strangler sync publishes its lag while it runs; silence means it is not running (or
  # cannot reach the databases), which is exactly when the lag grows: it breaches.
  treat_missing_data = "breaching"

  dimensions = {{
    service = {_hcl(a.service)}
  }}

  alarm_actions = [var.{ident}_alarm_topic_arn]
  ok_actions    = [var.{ident}_alarm_topic_arn]
}}
"""


def render_prometheus(
    a: AlarmSet,
    *,
    requests_metric: str = "http_requests_total",
    duration_metric: str = "http_request_duration_seconds",
) -> str:
    sel = f'service="{a.service}"'
    camel = "".join(p.capitalize() for p in a.service.replace("-", "_").split("_"))
    labels = {"service": a.service, "severity": "page"}
    doc: dict[str, Any] = {
        "groups": [
            {
                "name": f"strangler-{a.service}",
                "rules": [
                    {
                        "alert": f"{camel}High5xx",
                        "expr": f'sum(increase({requests_metric}{{{sel},code=~"5.."}}[1m])) '
                        f"> {a.error_threshold}",
                        "for": "2m",
                        "labels": labels,
                        "annotations": {"summary": f"Error rate too high for {a.service}"},
                    },
                    {
                        "alert": f"{camel}LatencyP99",
                        "expr": "histogram_quantile(0.99, sum by (le) "
                        f"(rate({duration_metric}_bucket{{{sel}}}[5m]))) > {a.latency_seconds:g}",
                        "for": "3m",
                        "labels": labels,
                        "annotations": {
                            "summary": f"p99 latency above {a.latency_seconds:g}s for {a.service}"
                        },
                    },
                    {
                        "alert": f"{camel}SyncLag",
                        "expr": f"strangler_sync_lag_seconds{{{sel}}} > {a.lag_seconds:g}",
                        "for": "5m",
                        "labels": labels,
                        "annotations": {
                            "summary": f"strangler sync lag above {a.lag_seconds:g}s for "
                            f"{a.service}"
                        },
                    },
                ],
            }
        ]
    }
    if a.online:
        # Missing data is not health: an online service whose sync stopped exporting its
        # lag (the process died, or runs without --metrics-port) is an alert of its own.
        doc["groups"][0]["rules"].append(
            {
                "alert": f"{camel}SyncLagAbsent",
                "expr": f"absent(strangler_sync_lag_seconds{{{sel}}})",
                "for": "10m",
                "labels": labels,
                "annotations": {
                    "summary": f"no sync lag exported for {a.service}: is 'strangler sync "
                    f"{a.service} --metrics-port PORT' running and scraped?"
                },
            }
        )
    header = f"# Written by `strangler alarms {a.service} --format prometheus`.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)
