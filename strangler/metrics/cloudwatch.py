"""The ``cloudwatch`` metric source: an ALB's per-target-group figures in CloudWatch.

``RequestCount`` and ``HTTPCode_Target_5XX_Count`` (Sum) and ``TargetResponseTime`` (p99) in
``AWS/ApplicationELB``, per target group. **Not a per-route baseline**: the monolith's target
group serves every route, not only ``/api/v1/orders*``, so its error rate and latency mix in
the rest of the monolith. The plan says so; prefer ``alb_logs`` or ``prometheus`` for the
baseline. The service's own figures are exact (its target group serves only the route).

CloudWatch keeps one-minute periods: intervals shorter than a minute read the minute(s)
covering them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from strangler.aws import client
from strangler.metrics.base import MetricContext, MetricsUnreachable, TargetStats, Window

__all__ = ["CloudwatchOptions", "CloudwatchSource"]


class CloudwatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    load_balancer: str = Field(description="LoadBalancer dimension: app/NAME/ID")
    monolith_target_group: str = Field(description="TargetGroup dimension: targetgroup/NAME/ID")
    service_target_group: str = Field(description="TargetGroup dimension: targetgroup/NAME/ID")
    region: str | None = None
    period: int = Field(default=60, ge=60, multiple_of=60)


class CloudwatchSource:
    kind = "cloudwatch"
    per_route = False

    def __init__(self, options: CloudwatchOptions, cw: Any | None = None) -> None:
        self.options = options
        self.cw = cw or client("cloudwatch", region=options.region)

    def _query(self, qid: str, metric: str, group: str, stat: str) -> dict[str, Any]:
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApplicationELB",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "LoadBalancer", "Value": self.options.load_balancer},
                        {"Name": "TargetGroup", "Value": group},
                    ],
                },
                "Period": self.options.period,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    def measure(self, start: datetime, end: datetime) -> Window:
        period = timedelta(seconds=self.options.period)
        # Whole periods covering the interval.
        begin = start - timedelta(seconds=start.timestamp() % self.options.period)
        finish = max(end, begin + period)
        groups = {"m": self.options.monolith_target_group, "s": self.options.service_target_group}
        queries = []
        for key, group in groups.items():
            queries += [
                self._query(f"{key}req", "RequestCount", group, "Sum"),
                self._query(f"{key}err", "HTTPCode_Target_5XX_Count", group, "Sum"),
                self._query(f"{key}p99", "TargetResponseTime", group, "p99"),
            ]
        try:
            answer = self.cw.get_metric_data(
                MetricDataQueries=queries, StartTime=begin, EndTime=finish
            )
        except Exception as exc:
            raise MetricsUnreachable(f"CloudWatch GetMetricData failed: {exc}") from exc
        values: dict[str, list[float]] = {
            r["Id"]: [float(v) for v in r.get("Values", [])] for r in answer["MetricDataResults"]
        }

        def side(key: str) -> TargetStats:
            p99s = values.get(f"{key}p99", [])
            return TargetStats(
                round(sum(values.get(f"{key}req", []))),
                round(sum(values.get(f"{key}err", []))),
                max(p99s) if p99s else None,  # the worst minute: never flatters the service
            )

        return Window(start, end, side("m"), side("s"))


def create(options: CloudwatchOptions, ctx: MetricContext) -> CloudwatchSource:
    return CloudwatchSource(options)
