"""Demo act: the pre-migration checklist. On a laptop there is no Terraform state, cluster,
bucket or alarm for the sample service, so those items are skipped and say why; the database
item and the attestations run for real."""

from __future__ import annotations

from strangler.checks.attestations import attest
from strangler.checks.base import CheckContext
from strangler.checks.preflight import run_preflight
from strangler.checks.render import render_results
from strangler.demo.world import World

__all__ = ["act_preflight"]


def act_preflight(world: World) -> None:
    with world.journal("strangler preflight order_service") as journal:
        attest(journal, "order_service", "oncall", "demo: the on-call engineer is you")
        attest(journal, "order_service", "change_ticket", "demo: CHG-0001 (rehearsal)")
        world.console.print(
            "attested: oncall, change_ticket (strangler attest order_service oncall --note …)"
        )
        ctx = CheckContext(world.spec, "order_service", journal)
        passed, results = run_preflight(ctx)
    render_results(world.console, "preflight: order_service", results)
    world.console.print(
        "preflight "
        + ("[green]passed[/]" if passed else "[red]failed[/]")
        + " (journaled; copy and cutover require a recent pass when the spec has a "
        "preflight: section)"
    )
    world.facts["preflight"] = {r.name: r.verdict.value for r in results}
