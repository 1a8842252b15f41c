"""Demo acts of online sync (``strategy: online``): the application keeps writing while the
copy runs, sync catches up, verify proves it under those writes, and the write cutover moves
the application's writes in well under a second, with reverse sync keeping the monolith's
tables current.

Three acts, placed in the runbook order by :mod:`strangler.demo.script`:

- ``act_load`` (before the copy): the demo application starts writing to the monolith;
- ``act_sync`` (after the copy): ``strangler run --until syncing`` starts sync, and the
  applier (``strangler sync``) runs in the background until the end of the cutover;
- ``act_cutover`` (after verify): ``strangler run --until writes_cut_over`` with its measured
  window, the application moved to the service, reverse sync, a final verify.

With ``strategy: copy`` each says so and does nothing (there is no sync to show).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

from strangler.demo.load import DemoLoad
from strangler.demo.world import SERVICE, World
from strangler.durations import format_bytes
from strangler.errors import CheckFailed, SlotGone
from strangler.metrics_export import Collector, Metrics, service_probes
from strangler.pg.sync import cdc
from strangler.pg.sync.apply import Round
from strangler.phases import Phase
from strangler.render.verify import render_report
from strangler.steps import sync as sync_step
from strangler.steps.cutover import CutoverResult
from strangler.steps.run import run
from strangler.steps.runbook import Runbook
from strangler.steps.verify import verify
from strangler.steps.wiring import sync_route

__all__ = ["act_cutover", "act_load", "act_sync"]


@dataclass
class _Running:
    load: DemoLoad | None = None
    sync: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    rows: int = 0


_RUNNING: dict[int, _Running] = {}  # by id(world): what runs in the background between acts


def _online(world: World, act: str) -> bool:
    if world.spec.service(SERVICE).strategy == "online":
        return True
    world.console.print(f"[yellow]skipped:[/] {act} is for strategy: online")
    world.facts[act] = "skipped: strategy copy"
    return False


def act_load(world: World) -> None:
    if not _online(world, "write load"):
        return
    load = DemoLoad(world.monolith_dsn(), world.spec.source.schema_, clients=2).start()
    _RUNNING[id(world)] = _Running(load=load)
    world.console.print(
        "the monolith's application places and advances orders from 2 clients, from now until "
        "the write cutover: the copy and the sync run under live writes"
    )


def act_sync(world: World) -> None:
    if not _online(world, "sync"):
        return
    running = _RUNNING.setdefault(id(world), _Running())
    with world.journal(f"strangler run {SERVICE} --until syncing") as journal:
        done = run(Runbook(world.spec, journal, SERVICE), until=Phase.SYNCING)
    if done.status != "done":
        raise done.error or CheckFailed(f"sync did not start: {done.status}")
    route = sync_route(world.spec, SERVICE)

    def apply() -> None:
        def count(r: Round) -> None:
            running.rows += r.rows

        try:
            # The lag is sampled beside the applier, as 'strangler sync' does, so the
            # report's lag chart has the demo's sync in it.
            with (
                world.journal(f"strangler sync {SERVICE}") as journal,
                Collector(
                    Metrics(),
                    service_probes(world.spec, journal, [SERVICE], keep_lag=True, lag_every=1),
                    every=1.0,
                ),
            ):
                cdc.run(route, stop=running.stop, on_round=count)
        except SlotGone:
            pass  # the cutover drained the slot and dropped it: sync's work is done
        except BaseException as exc:
            running.errors.append(exc)

    running.sync = threading.Thread(target=apply, daemon=True, name="demo-sync")
    running.sync.start()
    world.console.print(
        f"strangler sync {SERVICE}: applying from slot {route.slot} (made by the copy, at its "
        "snapshot), public → order_service, in the background"
    )
    started = time.monotonic()
    mark = cdc.Watermark(route)
    caught_up = mark.wait_applied(mark.source_position(), timeout=120)
    info = cdc.status(route)
    world.console.print(
        ("caught up" if caught_up else "NOT caught up")
        + f" in {time.monotonic() - started:.1f}s · "
        f"{info.transactions_applied:,} transactions, {info.rows_applied:,} rows applied "
        f"so far · lag {format_bytes(info.lag_bytes)}"
    )
    world.facts["sync"] = f"caught up {caught_up}, {info.rows_applied} rows applied"
    if not caught_up:
        raise CheckFailed("sync did not catch up with the demo load within 120 s")


def act_cutover(world: World) -> None:
    if not _online(world, "cutover"):
        return
    running = _RUNNING.pop(id(world), _Running())
    spec = world.spec
    con = world.console
    with world.journal(f"strangler run {SERVICE} --until writes_cut_over") as journal:
        done = run(Runbook(spec, journal, SERVICE), until=Phase.WRITES_CUT_OVER)
    if done.status != "done":
        raise done.error or CheckFailed(f"the cutover did not happen: {done.status}")
    switch = next(s.result for s in done.steps if isinstance(s.result, CutoverResult))
    monolith_load = running.load.stop() if running.load else None
    running.stop.set()
    if running.sync:
        running.sync.join()
    if running.errors:
        raise running.errors[0]
    con.print(
        f"writes cut over: the monolith refused writes for [bold]{switch.window_seconds * 1000:.0f}"
        " ms[/] (gate closed → drained → sequences moved → reverse slot → service gate open)"
    )
    if monolith_load:
        con.print(
            f"the application on the monolith: {monolith_load.committed:,} transactions "
            f"committed, {monolith_load.refused:,} refused by the gate, "
            f"{monolith_load.failed:,} lost races"
        )
    try:
        with world.connect_monolith() as conn:
            conn.execute("UPDATE public.orders SET notes = 'too late' WHERE id = 1")
    except psycopg.errors.ReadOnlySqlTransaction as refused:
        con.print(f"a late write to the monolith: [yellow]{str(refused).splitlines()[0]}[/]")
    schema = spec.service(SERVICE).target.schema_
    service_load = DemoLoad(world.service_dsn(), schema, clients=2, seed=100).start()
    time.sleep(1.0)
    served = service_load.stop()
    con.print(
        f"the application now writes to the service: {served.committed:,} transactions in 1 s; "
        f"reverse sync ({switch.reverse_slot}) keeps the monolith's tables current"
    )
    with world.journal(f"strangler verify {SERVICE}") as journal:
        rb = Runbook(spec, journal, SERVICE)
        sync_step.drain(rb, 120)
        report = verify(rb)
    render_report(report, 10, con)
    world.facts["cutover"] = (
        f"window {switch.window_seconds * 1000:.0f} ms, verify after reverse sync {report.status}"
    )
    if not report.passed:
        raise CheckFailed(
            "the monolith's tables differ from the service after the cutover",
            hint=f"strangler verify {SERVICE} -f {world.spec_path}",
        )
