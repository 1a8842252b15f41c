"""``strangler sync SERVICE`` (live view, --status, --stop, --once, --until-caught-up) and
``strangler cutover SERVICE``."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

from strangler.cli.app import (
    MIGRATE,
    DryRunOpt,
    ForceOpt,
    OperatorOpt,
    Output,
    OutputOpt,
    ReasonOpt,
    SpecOpt,
    YesOpt,
    app,
    confirm,
    console,
    emit,
    err_console,
    machine,
    session,
)
from strangler.cli.observe import LogFormat, LogFormatOpt, Logger, MetricsPortOpt, observing
from strangler.cli.watch import IntervalOpt, TimeoutOpt, WatchOpt, timeout_seconds
from strangler.cli.watch import watch as watch_loop
from strangler.durations import format_bytes
from strangler.errors import BadInput
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.metrics_export import Metrics
    from strangler.pg.sync import cdc
    from strangler.pg.sync.apply import Round
    from strangler.steps.runbook import Runbook

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]


@app.command(rich_help_panel=MIGRATE)
def sync(
    service: ServiceArg,
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Show slot, lag and WAL retained (--watch: again on every change; exit 1 "
            "if the slot goes).",
        ),
    ] = False,
    stop_sync: Annotated[
        bool, typer.Option("--stop", help="Remove the slot, publication and position.")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Make reverse sync again after the server invalidated its slot: a new slot, "
            "the old tables copied level with the service, the stream caught up.",
        ),
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Apply one round and exit.")] = False,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Exit when everything committed is applied.")
    ] = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    watch: WatchOpt = False,
    timeout: TimeoutOpt = None,
    interval: IntervalOpt = 2.0,
    yes: YesOpt = False,
    metrics_port: MetricsPortOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
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

    Examples:
      strangler sync order_service                       # until Ctrl-C
      strangler sync order_service --metrics-port 9464 --log-format json
      strangler sync order_service --status --watch --timeout 10m
      strangler sync order_service --rebuild   # the reverse slot was invalidated
    """
    from strangler.render.plan import render_step_plan
    from strangler.steps import sync as sync_step
    from strangler.steps.wiring import sync_route

    if (force or reason) and not stop_sync:
        raise BadInput("--force and --reason go with --stop")
    if force and not reason:
        raise BadInput("--force needs --reason '…' (it is journaled)")
    with session(file, operator) as s:
        rb = s.runbook(service)
        route = sync_step.route(rb)
        if status:
            _status(rb, service, output, watch, timeout, interval)
            return
        if watch or timeout:
            raise BadInput("--watch and --timeout go with --status", hint="add --status")
        if rebuild:
            if stop_sync or once or until_caught_up:
                raise BadInput("--rebuild goes alone", hint="run 'strangler sync' after it")
            _rebuild(rb, service, output, yes=yes, dry_run=dry_run)
            return
        if stop_sync:
            direction = sync_step.stop_direction(rb)
            gone = sync_route(s.spec, service, direction).slot
            if dry_run:
                emit(
                    output,
                    {"would_drop": gone},
                    lambda: console.print(f"would drop slot and publication {gone}"),
                )
                return
            if direction == "reverse":
                confirm(
                    f"stop reverse sync of {service}? It keeps the monolith's tables current; "
                    f"without it 'strangler rollback {service} --writes' cannot go back",
                    yes=yes,
                )
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
        if output is Output.text:
            console.print(
                f"{route.direction} sync of {service}: {route.source_schema} → "
                f"{route.target_schema} ({route.source_role} → {route.target_role}), slot "
                f"{route.slot}",
                markup=False,
            )
        log = Logger(log_format, f"strangler sync {service}", to_stderr=output is Output.json)
        exported: list[Metrics] = []

        def show(r: Round) -> None:
            nonlocal total
            total += r.rows
            rate = total / max(1e-6, time.monotonic() - started)
            for metrics in exported:
                metrics.set(
                    "strangler_sync_apply_rows_per_second",
                    rate,
                    service=service,
                    direction=route.direction,
                )
            if r.rows or once:
                lag = max(r.lags) if r.lags else 0.0
                log.info(
                    f"{route.direction}: {r.rows} rows in {r.transactions} txns · "
                    f"{rate:,.0f} rows/s · lag {lag:.3f}s · last xid {r.last_xid} · "
                    f"position {r.position:X}"
                    + (f" · TRUNCATE {', '.join(r.truncated)}" if r.truncated else ""),
                    direction=route.direction,
                    rows=r.rows,
                    transactions=r.transactions,
                    rows_per_second=round(rate, 1),
                    lag_seconds=round(lag, 3),
                    position=f"{r.position:X}",
                )

        with observing(s.spec, [service], metrics_port, log, keep_lag=True) as served:
            exported.extend([served] if served else [])
            done = sync_step.apply(
                rb, stop=stop, on_round=show, once=once, until_caught_up=until_caught_up
            )
    lag = done.status.lag_bytes if done.status else None
    if done.handed_over:
        # Not a crash: a cutover (or its rollback) took the slot over, on purpose (exit 0).
        emit(output, done.to_dict(), lambda: console.print(done.handed_over, markup=False))
        return
    emit(
        output,
        done.to_dict(),
        lambda: console.print(
            f"{route.direction} sync stopped; lag {format_bytes(lag)}, slot {route.slot} "
            f"kept; run 'strangler sync {service}' again to continue"
        ),
    )


def _rebuild(rb: Runbook, service: str, output: Output, *, yes: bool, dry_run: bool) -> None:
    from strangler.steps import rebuild_reverse as rebuild_step

    route = rebuild_step.would_rebuild(rb)
    old = f"{route.target_schema}.{{{', '.join(route.tables)}}}"
    if dry_run:
        emit(
            output,
            {"would_rebuild": route.slot, "would_rewrite": [
                f"{route.target_schema}.{t}" for t in route.tables
            ]},
            lambda: console.print(
                f"would drop slot {route.slot}, make it again, rewrite {old} with the rows "
                f"of {route.source_schema}, and have reverse sync catch up",
                markup=False,
            ),
        )  # fmt: skip
        return
    confirm(
        f"rebuild reverse sync of {service}? The monolith's old tables {old} are rewritten "
        f"with the service's rows (they are write-gated since the cutover)",
        yes=yes,
    )
    done = rebuild_step.rebuild_reverse(rb)
    emit(
        output,
        done.to_dict(),
        lambda: console.print(
            f"reverse sync of {service} rebuilt: slot {done.slot}, "
            f"{sum(done.rows.values()):,} rows copied to {old}; run 'strangler sync {service}' "
            f"to catch up (to {done.catch_up_until}) and keep them current",
            markup=False,
        ),
    )


def _show(info: cdc.SyncStatus, output: Output, watching: bool) -> None:
    data = info.to_dict()
    if watching and machine(output):
        line = json.dumps(data, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
        sys.stdout.write(scrub(line) + "\n")
        sys.stdout.flush()
        return

    def human() -> None:
        applied = info.last_commit_time
        console.print(
            f"{info.service} {info.direction} sync · slot {info.slot} "
            + (f"(streaming to pid {info.active_pid})" if info.active_pid else "")
            + ("" if info.slot_exists else "[red]missing[/]")
            + f" · lag {format_bytes(info.lag_bytes)} · WAL retained "
            f"{format_bytes(info.retained_wal_bytes)} · applied {info.rows_applied:,} rows in "
            f"{info.transactions_applied:,} transactions"
            + (f", last committed {applied:%Y-%m-%d %H:%M:%S} UTC" if applied else ""),
            highlight=False,
        )
        for w in info.warnings:
            console.print(f"[yellow]warning:[/] {w}")

    emit(output, data, human)


def _status(
    rb: Runbook, service: str, output: Output, watch: bool, timeout: str | None, interval: float
) -> None:
    from strangler.steps import sync as sync_step

    if not watch:
        if timeout:
            raise BadInput("--timeout goes with --watch", hint="add --watch")
        _show(sync_step.status(rb), output, False)
        return

    def verdict(info: cdc.SyncStatus) -> int | None:
        if not info.slot_exists:
            err_console.print(
                f"the slot {info.slot} is gone: sync of {service} has ended or was stopped",
                markup=False,
            )
            return 1
        return None

    code = watch_loop(
        lambda: sync_step.status(rb),
        lambda info: _show(info, output, True),
        key=lambda info: (info.lag_bytes, info.retained_wal_bytes, info.rows_applied),
        verdict=verdict,
        interval=interval,
        timeout=timeout_seconds(timeout),
        on_timeout=lambda: None,
    )
    # A watch that ran its time with the slot in place is fine: 0, not "waiting".
    if code not in (0, 75):
        raise typer.Exit(code)


@app.command("cutover", rich_help_panel=MIGRATE)
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
    """Cut writes over to the service schema in under a second, with reverse sync started.

    Reverse sync keeps the monolith's tables current so 'strangler rollback SERVICE --writes'
    can always go back.

    Examples:
      strangler cutover order_service --dry-run
      strangler cutover order_service
    """
    from strangler.phases import Action
    from strangler.render.plan import render_step_plan
    from strangler.steps import cutover as cutover_step

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
