"""Demo acts of online sync (``strategy: online``): the application keeps writing while the
copy runs, sync catches up, verify proves it under those writes, and the write cutover moves
the application's writes in well under a second, with reverse sync keeping the monolith's
tables current.

Three acts, placed in the runbook order by :mod:`strangler.demo.script`:

- ``act_load`` (before the copy): the demo application starts writing to the monolith;
- ``act_sync`` (after the copy): ``strangler sync`` from the slot the copy created, in the
  background, until the end of the cutover;
- ``act_cutover`` (after verify): the write cutover with its measured window, the
  application moved to the service, reverse sync, a final verify.

With ``strategy: copy`` each says so and does nothing (there is no sync to show).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

from strangler.demo.load import DemoLoad
from strangler.demo.world import World
from strangler.errors import CheckFailed
from strangler.pg.online_copy import start_sync
from strangler.pg.sync import cdc
from strangler.pg.sync import cutover as cut
from strangler.phases import Action
from strangler.runbook import Runbook
from strangler.verify import run_verification
from strangler.verify.render import render_report

__all__ = ["act_cutover", "act_load", "act_sync"]

SERVICE = "order_service"


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
    route = cdc.SyncRoute.of(world.spec, SERVICE)
    with world.journal(f"strangler sync {SERVICE}") as journal:
        start_sync(Runbook(world.spec, journal, SERVICE), route)

    def apply() -> None:
        def count(r: object) -> None:
            running.rows += getattr(r, "rows", 0)

        try:
            cdc.run(route, stop=running.stop, on_round=count)
        except cdc.SlotGone:
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
        f"caught up: {caught_up} in {time.monotonic() - started:.1f}s · "
        f"{info['transactions_applied']:,} transactions, {info['rows_applied']:,} rows applied "
        f"so far · lag {info['lag_bytes']} bytes"
    )
    world.facts["sync"] = f"caught up {caught_up}, {info['rows_applied']} rows applied"
    if not caught_up:
        raise CheckFailed("sync did not catch up with the demo load within 120 s")


def act_cutover(world: World) -> None:
    if not _online(world, "cutover"):
        return
    running = _RUNNING.pop(id(world), _Running())
    spec = world.spec
    fwd, rev = cdc.SyncRoute.of(spec, SERVICE), cdc.SyncRoute.of(spec, SERVICE, "reverse")
    con = world.console
    with world.journal(f"strangler cutover {SERVICE}") as journal:
        rb = Runbook(spec, journal, SERVICE)
        with rb.step(Action.CUTOVER_WRITES) as step:
            done = cut.cutover(fwd, rev)
            step.details.update(window_seconds=done.window_seconds, sequences=done.sequences)
    monolith_load = running.load.stop() if running.load else None
    running.stop.set()
    if running.sync:
        running.sync.join()
    if running.errors:
        raise running.errors[0]
    con.print(
        f"writes cut over: the monolith refused writes for [bold]{done.window_seconds * 1000:.0f}"
        f" ms[/] (gate closed → drained {done.drained_rows} rows → sequences moved → reverse "
        "slot → service gate open)"
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
        f"reverse sync ({rev.slot}) keeps the monolith's tables current"
    )
    cdc.run(rev, until_caught_up=True)
    with world.journal(f"strangler verify {SERVICE}") as journal:
        report = run_verification(spec, journal, SERVICE)
    render_report(report, 10, con)
    world.facts["cutover"] = (
        f"window {done.window_seconds * 1000:.0f} ms, verify after reverse sync {report.status}"
    )
    if not report.passed:
        raise CheckFailed(
            "the monolith's tables differ from the service after the cutover",
            hint=f"strangler verify {SERVICE} -f {world.spec_path}",
        )
