"""Demo act: the pre-migration checklist. On a laptop there is no Terraform state, cluster,
bucket or alarm for the sample service, so those items are skipped and say why; the database
item and the attestations run for real."""

from __future__ import annotations

from strangler.demo.world import SERVICE, World
from strangler.render.checks import render_results
from strangler.steps.preflight import attest, preflight
from strangler.steps.runbook import Runbook

__all__ = ["act_preflight"]


def act_preflight(world: World) -> None:
    with world.journal(f"strangler preflight {SERVICE}") as journal:
        rb = Runbook(world.spec, journal, SERVICE)
        attest(rb, "oncall", "demo: the on-call engineer is you")
        attest(rb, "change_ticket", "demo: CHG-0001 (rehearsal)")
        world.console.print(
            "attested: oncall, change_ticket (strangler attest order_service oncall --note …)"
        )
        done = preflight(rb)
    render_results(world.console, f"preflight: {SERVICE}", done.results)
    world.console.print(
        "preflight "
        + ("[green]passed[/]" if done.passed else "[red]failed[/]")
        + " (journaled; the schema, the copy and the cutover require a recent pass when the "
        "spec has a preflight: section)"
    )
    world.facts["preflight"] = {r.name: r.verdict.value for r in done.results}
