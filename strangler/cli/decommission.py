"""``strangler decommission SERVICE [--check]``: post-migration evidence, then the steps."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from strangler.checks.base import CheckContext
from strangler.cli.app import (
    DryRunOpt,
    ForceOpt,
    OperatorOpt,
    Output,
    OutputOpt,
    ReasonOpt,
    SpecOpt,
    app,
    console,
    emit,
    session,
)
from strangler.cli.checks import render_results
from strangler.decommission.evidence import MetricWindowSource, decommission_evidence
from strangler.decommission.steps import RouteRemover, run_decommission
from strangler.errors import BadInput
from strangler.phases import Action, Phase
from strangler.spec import Spec


def metric_source(spec: Spec, service: str) -> MetricWindowSource | None:
    """The spec's ``traffic.metrics`` source, when one is configured and installed."""
    svc = spec.service(service)
    if svc.traffic is None or svc.traffic.metrics is None:
        return None
    try:
        base = importlib.import_module("strangler.metrics.base")
        ctx = base.MetricContext(service, svc.traffic.route, svc.traffic)
        source: MetricWindowSource = base.make_source(ctx)
    except (ImportError, AttributeError):
        return None
    return source


def route_remover(spec: Spec, service: str) -> RouteRemover | None:
    """Takes the monolith off the route: ``remove_monolith()`` where the router has one,
    else holds the monolith's weight at 0 and says so."""
    svc = spec.service(service)
    traffic = svc.traffic
    if traffic is None:
        return None
    try:
        base = importlib.import_module("strangler.traffic.base")
        make_router, context_for, weights = base.make_router, base.context_for, base.Weights
    except (ImportError, AttributeError):
        return None

    def remove() -> dict[str, Any]:
        router = make_router(traffic, context_for(spec, service))
        if hasattr(router, "remove_monolith"):
            router.remove_monolith()
            return {"removed": True, "router": router.describe()}
        held = router.set_weights(weights.from_pair(0, 100))
        return {
            "removed": False,
            "weights": str(held),
            "router": router.describe(),
            "why": f"the {router.kind} router has no remove operation; monolith held at 0",
        }

    return remove


@app.command()
def decommission(
    service: Annotated[str, typer.Argument(help="The service.")],
    check: Annotated[bool, typer.Option("--check", help="Only gather the evidence.")] = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """The runbook's post-migration checklist (--check), then: remove the old route, archive
    and rename the old tables, and in a later run drop them and tag the infrastructure repo."""
    if force and not reason:
        raise BadInput("--force needs --reason '…' (it is journaled)")
    with session(file, operator) as s:
        rb = s.runbook(service)
        source = metric_source(s.spec, service)
        if check:
            ctx = CheckContext(s.spec, service, s.journal, cache={"dry_run": dry_run})
            ok, results = decommission_evidence(ctx, source, record=not dry_run)
            marked = False
            if ok and not dry_run and rb.phase is Phase.TRAFFIC_COMPLETE:
                with rb.step(Action.MARK_STABLE) as step:
                    step.details["evidence"] = [r.to_dict() for r in results]
                marked = True
            data: dict[str, Any] = {
                "service": service,
                "passed": ok,
                "marked_stable": marked,
                "phase": rb.phase.value,
                "results": [r.to_dict() for r in results],
            }

            def render() -> None:
                render_results(f"decommission evidence: {service}", results)
                console.print(
                    "[green]all evidence holds[/]"
                    + (f"; {service} is now stable" if marked else "")
                    if ok
                    else "[red]not ready to decommission[/]"
                )

            emit(output, data, render)
            if not ok:
                raise typer.Exit(1)
            return
        report = run_decommission(
            rb,
            source=source,
            remove_route=route_remover(s.spec, service),
            dry_run=dry_run,
            force=force,
            reason=reason,
        )

    def render_report() -> None:
        if report.evidence:
            render_results(f"decommission evidence: {service}", report.evidence)
        for done in report.done:
            what = done.get("would") or {k: v for k, v in done.items() if k != "step"}
            console.print(f"[bold]{done['step']}[/]: {what}")
        console.print(f"{service} is now [cyan]{report.phase}[/]")
        if report.waiting:
            console.print(f"[yellow]waiting[/]: {report.waiting}")

    emit(output, report.to_dict(), render_report)
