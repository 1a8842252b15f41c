"""``strangler rollback SERVICE --traffic`` (→ the phase before traffic): all of the route to
the monolith now, weights read back.

Never waits for a bake or an approval: it takes only the service's own lock, which a walk in
progress does not hold while it bakes. Builds the router with ``assume_yes`` (a Terraform
apply that undoes a shift is not asked about) and the reason for the commit message.
"""

from __future__ import annotations

from strangler.phases import Action, Phase
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook
from strangler.steps.shift import Shifter, ShiftResult
from strangler.steps.types import Operation, ServiceRef, StepPlan
from strangler.steps.wiring import router, router_context, traffic_of

__all__ = ["plan", "rollback_traffic"]


def rollback_traffic(rb: Runbook, request: RollbackRequest) -> ShiftResult:
    traffic_of(rb.service, rb.name)
    ctx = router_context(rb.spec, rb.name, assume_yes=True, reason=request.reason)
    return Shifter(rb, router(rb.spec, rb.name, ctx)).rollback(
        request.reason, dry_run=request.dry_run
    )


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    traffic = rb.service.traffic
    ready = Phase.WRITES_CUT_OVER if rb.service.strategy == "online" else Phase.VERIFIED
    where = f"router {traffic.router.kind}" if traffic else "router (none in the spec)"
    return StepPlan(
        action=Action.ROLLBACK_TRAFFIC.value,
        source=Phase.TRAFFIC.value,
        target=ready.value,
        summary="all traffic to the monolith at once, weights read back",
        operations=(Operation(where, "set 0 % to the service, read it back"),),
    )
