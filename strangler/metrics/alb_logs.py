"""The ``alb_logs`` metric source: ALB access logs in S3, parsed and filtered to the route.

The one AWS source with a fair per-route baseline: every log line names the request's path
and the target group that served it, so the monolith's figures can be restricted to
``/api/v1/orders*`` exactly as the service's are. Errors are lines whose ``elb_status_code``
is 5xx (what the client saw); latency is ``target_processing_time``, and its p99 is exact.

Logs are read from ``s3://BUCKET/PREFIX/AWSLogs/ACCOUNT/elasticloadbalancing/REGION/Y/M/D/``,
only the days the interval touches. ALB delivers logs every five minutes, so intervals
shorter than that see partial data: use ``interval: 5m`` or more with this source.
"""

from __future__ import annotations

import fnmatch
import gzip
import shlex
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from strangler.aws import client
from strangler.metrics.base import MetricContext, MetricsUnreachable, TargetStats, Window

__all__ = ["AlbLogsOptions", "AlbLogsSource", "parse_line"]


class AlbLogsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bucket: str
    prefix: str = ""
    monolith_target_group: str = Field(description="Target group ARN.")
    service_target_group: str = Field(description="Target group ARN.")
    region: str | None = None


def parse_line(line: str) -> dict[str, Any] | None:
    """The fields gates need from one ALB access log line; None for lines that are not."""
    try:
        f = shlex.split(line)
    except ValueError:
        return None
    if len(f) < 17:
        return None
    try:
        method_url = f[12].split(" ")
        return {
            "time": datetime.fromisoformat(f[1].replace("Z", "+00:00")),
            "target_time": float(f[6]),
            "status": int(f[8]) if f[8].isdigit() else 0,
            "path": urlsplit(method_url[1]).path if len(method_url) > 1 else "",
            "target_group": f[16],
        }
    except (ValueError, IndexError):
        return None


class AlbLogsSource:
    kind = "alb_logs"
    per_route = True

    def __init__(self, options: AlbLogsOptions, route: str, s3: Any | None = None) -> None:
        self.options = options
        self.route = route
        self.s3 = s3 or client("s3", region=options.region)

    def _keys(self, start: datetime, end: datetime) -> list[str]:
        days = {
            (start + timedelta(days=i)).strftime("%Y/%m/%d") for i in range((end - start).days + 2)
        }
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.options.bucket, Prefix=self.options.prefix):
            for obj in page.get("Contents", []):
                if any(f"/{day}/" in obj["Key"] for day in days):
                    keys.append(obj["Key"])
        return keys

    def measure(self, start: datetime, end: datetime) -> Window:
        sides: dict[str, list[tuple[int, float]]] = {
            self.options.monolith_target_group: [],
            self.options.service_target_group: [],
        }
        try:
            for key in self._keys(start, end):
                body = self.s3.get_object(Bucket=self.options.bucket, Key=key)["Body"].read()
                text = gzip.decompress(body) if key.endswith(".gz") else body
                for raw in text.decode(errors="replace").splitlines():
                    entry = parse_line(raw)
                    if (
                        entry is None
                        or not start <= entry["time"] < end
                        or entry["target_group"] not in sides
                        or not fnmatch.fnmatchcase(entry["path"], self.route)
                    ):
                        continue
                    sides[entry["target_group"]].append((entry["status"], entry["target_time"]))
        except MetricsUnreachable:
            raise
        except Exception as exc:
            raise MetricsUnreachable(
                f"cannot read ALB logs from s3://{self.options.bucket}/{self.options.prefix}: {exc}"
            ) from exc
        return Window(
            start,
            end,
            _stats(sides[self.options.monolith_target_group]),
            _stats(sides[self.options.service_target_group]),
        )


def _stats(lines: list[tuple[int, float]]) -> TargetStats:
    times = sorted(t for _, t in lines if t >= 0)
    p99 = times[min(len(times) - 1, max(0, -(-99 * len(times) // 100) - 1))] if times else None
    return TargetStats(len(lines), sum(1 for s, _ in lines if s >= 500), p99)


def create(options: AlbLogsOptions, ctx: MetricContext) -> AlbLogsSource:
    return AlbLogsSource(options, ctx.route)
