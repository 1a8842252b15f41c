"""Demo act (``--fast-forward`` only): the post-migration checklist and the decommission, with
the journal's clock moved forward over ``stable_for`` and ``drop_old_tables_after``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strangler.checks.attestations import attest
from strangler.checks.base import CheckContext
from strangler.checks.render import render_results
from strangler.decommission.evidence import decommission_evidence
from strangler.decommission.steps import run_decommission
from strangler.demo.world import World
from strangler.durations import format_duration
from strangler.journal import Journal
from strangler.phases import Phase
from strangler.runbook import Runbook

__all__ = ["FastForward", "act_decommission"]


class FastForward:
    """Real time plus an offset the demo advances (``Journal(clock=…)``)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def act_decommission(world: World) -> None:
    if not world.options.fast_forward:
        world.console.print(
            "skipped: decommission needs weeks of evidence; run the demo "
            "with --fast-forward to move the clock"
        )
        return
    spec = world.spec
    clock = FastForward()
    with Journal(
        spec.state_url(), operator="demo", command="strangler decommission", clock=clock
    ) as journal:
        rb = Runbook(spec, journal, "order_service")
        if rb.phase is not Phase.TRAFFIC_COMPLETE:
            world.console.print(
                f"skipped: order_service is '{rb.phase.value}'; decommission "
                "starts once traffic is at 100%"
            )
            return
        d = spec.service("order_service").decommission
        ctx = CheckContext(spec, "order_service", journal)
        _, results = decommission_evidence(ctx)
        render_results(world.console, "decommission evidence, right after 100%", results)
        with world.connect_monolith() as conn:
            # The monolith's old code path (a reporting view over orders) goes with its PR.
            conn.execute("DROP VIEW IF EXISTS public.customer_order_totals")
        world.console.print("removed the old code path's view public.customer_order_totals")
        clock.advance(d.stable_for + timedelta(hours=1))
        world.console.print(f"[bold]… {format_duration(d.stable_for)} later[/]")
        attest(journal, "order_service", "no_incident", "demo: no P1/P2 in the window")
        report = run_decommission(rb)
        render_results(world.console, "decommission evidence", report.evidence)
        for step in report.done:
            world.console.print(f"done: {step['step']}")
        archive = next((s["archive"] for s in report.done if "archive" in s), None)
        if archive:
            world.console.print(f"archive: {archive['path']} sha256 {archive['sha256'][:16]}…")
            world.facts["archive"] = archive
        world.console.print(f"waiting: {report.waiting}")
        clock.advance(d.drop_old_tables_after + timedelta(minutes=1))
        world.console.print(f"[bold]… {format_duration(d.drop_old_tables_after)} later[/]")
        report = run_decommission(rb)
        for step in report.done:
            world.console.print(f"done: {step['step']}: dropped {step.get('dropped')}")
        world.console.print(f"order_service is now [cyan]{rb.phase.value}[/]")
        world.facts["decommissioned"] = rb.phase.value == Phase.DECOMMISSIONED.value
