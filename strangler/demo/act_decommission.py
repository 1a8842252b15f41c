"""Demo act (``--fast-forward`` only): the post-migration checklist and the decommission by
``strangler run --wait``, the journal's clock moved forward over each wait (``stable_for``,
the write window, ``drop_old_tables_after``) instead of sleeping through weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strangler.demo.world import SERVICE, World
from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.journal import Journal
from strangler.phases import Phase
from strangler.render.run import render_run
from strangler.steps.decommission import DecommissionReport
from strangler.steps.preflight import attest
from strangler.steps.run import run_until_done
from strangler.steps.runbook import Runbook
from strangler.steps.types import RunOptions

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
    console = world.console

    def later(seconds: float) -> None:
        step = timedelta(seconds=seconds) + timedelta(minutes=1)
        clock.advance(step)
        console.print(f"[bold]… {format_duration(step)} later[/]")

    with Journal(
        spec.state_url(), operator="demo", command=f"strangler run {SERVICE} --wait", clock=clock
    ) as journal:
        rb = Runbook(spec, journal, SERVICE)
        if rb.phase is not Phase.TRAFFIC_COMPLETE:
            console.print(
                f"skipped: {SERVICE} is '{rb.phase.value}'; decommission starts once traffic "
                "is at 100%"
            )
            return
        with world.connect_monolith() as conn:
            # The monolith's old code path (a reporting view over orders) goes with its PR.
            conn.execute("DROP VIEW IF EXISTS public.customer_order_totals")
        console.print("removed the old code path's view public.customer_order_totals")
        opts = RunOptions(say=lambda text: console.print(text, markup=False))
        done = run_until_done(rb, options=opts, clock=clock, sleep=later, max_nap=1e9)
        render_run(console, done)
        if done.status == "waiting" and done.waiting and done.waiting.reason == "attestation":
            attest(rb, "no_incident", "demo: no P1/P2 in the window")
            console.print("attested: no_incident (strangler attest order_service no_incident)")
            done = run_until_done(rb, options=opts, clock=clock, sleep=later, max_nap=1e9)
            render_run(console, done)
        for step in done.steps:
            if isinstance(step.result, DecommissionReport):
                for item in step.result.done:
                    if "archive" in item and "sha256" in item["archive"]:
                        world.facts["archive"] = item["archive"]
                        console.print(
                            f"archive: {item['archive']['path']} sha256 "
                            f"{item['archive']['sha256'][:16]}…"
                        )
        console.print(f"{SERVICE} is now [cyan]{rb.phase.value}[/]")
        world.facts["decommissioned"] = journal.state(SERVICE).phase == Phase.DECOMMISSIONED
        if done.status == "failed":
            raise done.error or CheckFailed("decommission failed")
