"""``strangler sync SERVICE`` (live view, --status, --stop, --once, --until-caught-up),
``strangler cutover SERVICE`` and the ``--writes`` rollback handler."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer

from strangler.cli.app import (
    DryRunOpt,
    OperatorOpt,
    Output,
    OutputOpt,
    SpecOpt,
    app,
    console,
    emit,
    session,
)
from strangler.cli.core import status_fields
from strangler.pg.online_copy import start_sync
from strangler.pg.sync import cdc
from strangler.pg.sync import cutover as cut
from strangler.pg.sync.apply import Round
from strangler.pg.sync.slot import Direction
from strangler.pg.sync_health import direction_in, sync_status
from strangler.phases import Action
from strangler.rollbacks import RollbackRequest, register_rollback
from strangler.runbook import Runbook

if sync_status not in status_fields:
    status_fields.append(sync_status)  # 'strangler status' shows slot, lag and WAL warnings

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]


def _lines(items: list[str]) -> Any:
    def render() -> None:
        for item in items:
            console.print(item)

    return render


def _direction(rb: Runbook) -> Direction:
    return direction_in(rb.phase) or "forward"


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
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Keep the service schema in step with the monolith (reverse after cutover).

    Applies changes from the slot that 'strangler copy' created with the copy's snapshot (or
    'strangler cutover' for the reverse direction); it never copies rows itself.
    """
    with session(file, operator) as s:
        rb = s.runbook(service)
        route = cdc.SyncRoute.of(s.spec, service, _direction(rb))
        if status:
            info = cdc.status(route)
            lines = [f"{k}: {v}" for k, v in info.items() if k != "warnings"]
            lines += [f"[yellow]warning:[/] {w}" for w in info["warnings"]]
            emit(output, info, _lines(lines))
            return
        if stop_sync:
            if dry_run:
                emit(
                    output,
                    {"would_drop": route.slot},
                    lambda: console.print(f"would drop slot and publication {route.slot}"),
                )
                return
            result = cdc.end(route)
            s.journal.event(service, "stop_sync", status="ok", details=result)
            emit(
                output,
                result,
                lambda: console.print(f"removed slot and publication {route.slot}: {result}"),
            )
            return
        if dry_run:
            emit(
                output,
                {"slot": route.slot, "direction": route.direction},
                lambda: console.print(
                    f"would apply changes from slot {route.slot} "
                    f"({route.source_schema} → {route.target_schema}); the slot is made by "
                    "'strangler copy' (forward) or 'strangler cutover' (reverse)"
                ),
            )
            return
        start_sync(rb, route)
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

        last = cdc.run(route, stop=stop, on_round=show, once=once, until_caught_up=until_caught_up)
        info = cdc.status(route)
        info["rows_this_run"] = total
        info["caught_up"] = last.caught_up
        emit(
            output,
            info,
            lambda: console.print(
                f"stopped; lag {info['lag_bytes']} bytes, slot {route.slot} kept"
            ),
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
        fwd = cdc.SyncRoute.of(s.spec, service, "forward")
        rev = cdc.SyncRoute.of(s.spec, service, "reverse")
        if dry_run:
            rb.check(Action.CUTOVER_WRITES)
            emit(
                output,
                {"service": service, "steps": _STEPS},
                _lines([f"{i}. {t}" for i, t in enumerate(_STEPS, 1)]),
            )
            return
        with rb.step(Action.CUTOVER_WRITES, reason=reason or None, force=force) as step:
            done = cut.cutover(fwd, rev)
            step.details.update(window_seconds=done.window_seconds, sequences=done.sequences)
    data = {"service": service, "window_seconds": done.window_seconds, "sequences": done.sequences}
    emit(
        output,
        data,
        lambda: console.print(
            f"writes cut over; writes were refused for {done.window_seconds * 1000:.0f} ms; "
            f"reverse sync slot {rev.slot} created: run 'strangler sync {service}'"
        ),
    )


_STEPS = [
    "close the write gate on the monolith's tables (SQLSTATE 25006 names the migration)",
    "wait for transactions already writing to end",
    "mark the stream and drain forward sync up to the mark",
    "move the service's sequences past the monolith's",
    "drop the forward slot and publication; create the reverse ones",
    "open the service schema's write gate",
]


@register_rollback("writes", "writes back to the monolith; reverse sync drained first")
def rollback_writes(rb: Runbook, request: RollbackRequest) -> dict[str, Any]:
    fwd = cdc.SyncRoute.of(rb.spec, rb.name, "forward")
    rev = cdc.SyncRoute.of(rb.spec, rb.name, "reverse")
    if request.dry_run:
        rb.check(Action.ROLLBACK_WRITES)
        return {
            "steps": [
                s.replace("monolith", "§").replace("service", "monolith").replace("§", "service")
                for s in _STEPS
            ]
        }
    with rb.step(Action.ROLLBACK_WRITES, reason=request.reason) as step:
        done = cut.rollback(fwd, rev)
        step.details.update(window_seconds=done.window_seconds, sequences=done.sequences)
    return {"window_seconds": done.window_seconds, "forward_slot": fwd.slot}
