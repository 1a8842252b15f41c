"""``strangler sync SERVICE`` (live view, --status, --stop, --once, --until-caught-up) and
``strangler cutover SERVICE``."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated

import typer

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
from strangler.errors import BadInput
from strangler.pg.sync.apply import Round
from strangler.phases import Action
from strangler.render.plan import render_step_plan
from strangler.steps import cutover as cutover_step
from strangler.steps import sync as sync_step
from strangler.steps.wiring import sync_route

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]


@app.command()
def sync(
    service: ServiceArg,
    status: Annotated[
        bool, typer.Option("--status", help="Show slot, lag and WAL retained.")
    ] = False,
    stop_sync: Annotated[
        bool, typer.Option("--stop", help="Remove the slot, publication and position.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Apply one round and exit.")] = False,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Exit when everything committed is applied.")
    ] = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Keep the service schema in step with the monolith (reverse after cutover).

    Applies changes from the slot that 'strangler copy' created with the copy's snapshot (or
    'strangler cutover' for the reverse direction); it never copies rows itself. --stop of
    the reverse sync waits for all of the route on the service and its final bake (it
    removes the way back for writes), unless --force --reason.
    """
    if (force or reason) and not stop_sync:
        raise BadInput("--force and --reason go with --stop")
    if force and not reason:
        raise BadInput("--force needs --reason '…' (it is journaled)")
    with session(file, operator) as s:
        rb = s.runbook(service)
        route = sync_step.route(rb)
        if status:
            info = sync_step.status(rb)

            def show_status() -> None:
                for k, v in info.to_dict().items():
                    if k != "warnings":
                        console.print(f"{k}: {v}", markup=False)
                for w in info.warnings:
                    console.print(f"[yellow]warning:[/] {w}")

            emit(output, info.to_dict(), show_status)
            return
        if stop_sync:
            gone = sync_route(s.spec, service, sync_step.stop_direction(rb)).slot
            if dry_run:
                emit(
                    output,
                    {"would_drop": gone},
                    lambda: console.print(f"would drop slot and publication {gone}"),
                )
                return
            stopped = sync_step.stop(rb, force=force, reason=reason)
            emit(
                output,
                stopped.to_dict(),
                lambda: console.print(f"removed slot and publication {stopped.slot}"),
            )
            return
        if dry_run:
            plan = sync_step.plan(rb)
            emit(output, plan.to_dict(), lambda: render_step_plan(console, plan))
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        started, total = time.monotonic(), 0

        def show(r: Round) -> None:
            nonlocal total
            total += r.rows
            if output is Output.text and (r.rows or once):
                rate = total / max(1e-6, time.monotonic() - started)
                lag = max(r.lags) if r.lags else 0.0
                console.print(
                    f"{route.direction}: {r.rows} rows in {r.transactions} txns · "
                    f"{rate:,.0f} rows/s · lag {lag:.3f}s · last xid {r.last_xid} · "
                    f"position {r.position:X}"
                    + (f" · TRUNCATE {r.truncated}" if r.truncated else "")
                )

        done = sync_step.apply(
            rb, stop=stop, on_round=show, once=once, until_caught_up=until_caught_up
        )
    lag = done.status.lag_bytes if done.status else None
    emit(
        output,
        done.to_dict(),
        lambda: console.print(f"stopped; lag {lag} bytes, slot {route.slot} kept"),
    )


@app.command("cutover")
def cutover_cmd(
    service: ServiceArg,
    reason: Annotated[str, typer.Option(help="Why; journaled.")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Skip evidence checks (needs --reason).")
    ] = False,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Cut writes over to the service schema in under a second; reverse sync keeps the
    monolith's tables current so 'strangler rollback SERVICE --writes' can always go back."""
    with session(file, operator) as s:
        rb = s.runbook(service)
        if dry_run:
            rb.check(Action.CUTOVER_WRITES)
            plan = cutover_step.plan(rb)
            emit(
                output,
                {"service": service, **plan.to_dict()},
                lambda: render_step_plan(console, plan),
            )
            return
        done = cutover_step.cutover(rb, reason=reason or None, force=force)
    emit(
        output,
        done.to_dict(),
        lambda: console.print(
            f"writes cut over; writes were refused for {done.window_seconds * 1000:.0f} ms; "
            f"reverse sync slot {done.reverse_slot} created: run 'strangler sync {service}'"
        ),
    )
