"""``strangler rollback SERVICE --traffic``: all of the route to the monolith, read back.

Registered with :mod:`strangler.rollbacks`; the CLI's traffic module imports this one. The
rollback never waits for a bake or an approval: it takes only the service's own lock, which
a walk in progress does not hold while it bakes.
"""

from __future__ import annotations

from typing import Any

from strangler.rollbacks import RollbackRequest, register_rollback
from strangler.runbook import Runbook
from strangler.traffic.base import context_for, make_router
from strangler.traffic.shift import Shifter, traffic_spec

__all__ = ["rollback_traffic"]


@register_rollback("traffic", "all traffic to the monolith at once, weights read back")
def rollback_traffic(runbook: Runbook, request: RollbackRequest) -> dict[str, Any]:
    traffic = traffic_spec(runbook)
    ctx = context_for(runbook.spec, runbook.name, assume_yes=True, reason=request.reason)
    router = make_router(traffic, ctx)
    result = Shifter(runbook, router).rollback(request.reason, dry_run=request.dry_run)
    return result.to_dict()
