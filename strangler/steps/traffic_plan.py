"""The traffic section of ``strangler plan``: steps, bakes, gates, router, metric baseline.

Pure: reads the spec only. It warns where the spec would judge the service unfairly, above
all when the baseline is not the monolith **on the same route** (CloudWatch's per-target-group
figures mix in every other route the monolith serves).
"""

from __future__ import annotations

from typing import Any

from strangler.durations import format_duration
from strangler.metrics.gates import DEFAULT_MIN_REQUESTS
from strangler.metrics.kinds import DEFAULT_KIND, source_kind
from strangler.spec import ServiceSpec

__all__ = ["traffic_section"]

_NO_P99 = {"haproxy"}


def traffic_section(svc: ServiceSpec, service: str) -> tuple[dict[str, Any], list[str]]:
    """``(section, warnings)`` for one service; empty when it has no traffic section."""
    traffic = svc.traffic
    if traffic is None:
        return {}, []
    warnings: list[str] = []
    metrics_kind = traffic.metrics.kind if traffic.metrics else DEFAULT_KIND
    source_kind(metrics_kind)  # an unknown kind fails here, listing the valid ones
    if metrics_kind == "cloudwatch":
        warnings.append(
            f"{service}: metrics kind 'cloudwatch' compares against the monolith's whole target "
            f"group, which serves every route, not only {traffic.route}: its error rate and "
            "latency are not a fair baseline for this route; prefer alb_logs or prometheus"
        )
    if not traffic.gates:
        warnings.append(
            f"{service}: traffic has no gates: bakes only wait, nothing can roll back by itself"
        )
    if (
        traffic.router.kind in _NO_P99
        and metrics_kind == "router"
        and any(g.metric == "latency_p99" for g in traffic.gates)
    ):
        warnings.append(
            f"{service}: HAProxy's counters give no p99; latency gates will be skipped "
            "(use metrics kind prometheus for latency)"
        )
    if traffic.router.kind == "alb" and traffic.router.options().get("terraform"):
        warnings.append(
            f"{service}: Terraform owns the listener rule; shifts go through the terraform router"
        )
    minimum = next(
        (int(g.min) for g in traffic.gates if g.metric == "request_count" and g.min is not None),
        DEFAULT_MIN_REQUESTS,
    )
    section = {
        "route": traffic.route,
        "router": traffic.router.kind,
        "metrics": metrics_kind,
        "baseline": "the monolith on the same route, same interval"
        if metrics_kind != "cloudwatch"
        else "the monolith's whole target group (all routes)",
        "steps": [
            {
                "weight": s,
                "bake": format_duration(traffic.final_bake if s >= 100 else traffic.bake),
                "approval": s in traffic.approve_before,
            }
            for s in traffic.steps
        ],
        "interval": format_duration(traffic.interval),
        "min_requests_per_interval": minimum,
        "failed_intervals_to_roll_back": traffic.failed_intervals,
        "on_metrics_error": traffic.on_error,
        "gates": [g.model_dump(exclude_none=True) for g in traffic.gates],
    }
    return section, warnings
