"""``strangler shift SERVICE --to N | --auto | --approve``: move the route's traffic."""

from __future__ import annotations

import sys
from typing import Annotated, Any

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
    console,
    emit,
    err_console,
    session,
)
from strangler.cli.observe import LogFormat, LogFormatOpt, Logger, MetricsPortOpt, observing
from strangler.errors import BadInput


@app.command(rich_help_panel=MIGRATE)
def shift(
    service: Annotated[str, typer.Argument(help="The service.")],
    to: Annotated[
        float | None, typer.Option("--to", help="One manual step to N percent (0..100).")
    ] = None,
    auto: Annotated[
        bool, typer.Option("--auto", help="Walk the spec's steps with gated bakes.")
    ] = False,
    approve: Annotated[
        bool, typer.Option("--approve", help="Approve the step --auto paused before.")
    ] = False,
    retry: Annotated[
        bool, typer.Option("--retry", help="With --auto: start again after a rollback.")
    ] = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    metrics_port: MetricsPortOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Shift the service's route from the monolith, one step or the whole gated walk.

    Examples:
      strangler shift order_service --to 5
      strangler shift order_service --auto --metrics-port 9464
      strangler shift order_service --approve
    """
    from strangler.steps.facts import newest_id
    from strangler.steps.shift import Shifter
    from strangler.steps.wiring import router, router_context, traffic_of

    if sum([to is not None, auto, approve]) != 1:
        raise BadInput("choose one of --to N, --auto or --approve")
    if force and not reason:
        raise BadInput("--force needs --reason '…' (it is journaled)")
    if metrics_port is not None and not auto:
        raise BadInput("--metrics-port goes with --auto (the long-running walk)")
    say_to = err_console if output is Output.json else console
    log = Logger(log_format, f"strangler shift {service}", to_stderr=output is Output.json)

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise BadInput(f"{question}: no terminal to ask on", hint="pass --yes to proceed")
        return typer.confirm(question, default=False)

    with session(file, operator) as s:
        rb = s.runbook(service)
        traffic = traffic_of(rb.service, service)
        ctx = router_context(
            s.spec, service, confirm=confirm, say=say_to.print, assume_yes=yes, reason=reason or ""
        )
        route_to = router(s.spec, service, ctx)
        shifter = Shifter(rb, route_to, say=lambda text: log.info(str(text)))
        data: dict[str, Any]
        code = 0
        if approve:
            step = shifter.approve(reason)
            data = {"service": service, "approved": step}
        elif auto:
            with observing(s.spec, [service], metrics_port, log):
                walked = shifter.auto(retry=retry, force=force, reason=reason)
            data, code = walked.to_dict(), walked.exit_code
        else:
            assert to is not None
            seen = newest_id(s.journal, service)  # what the operator decides on
            if not dry_run:
                before = route_to.weights()
                question = (
                    f"{service} on {traffic.route}: {before.service:g} % → {to:g} %. Continue?"
                )
                if not confirm(question):
                    raise BadInput("aborted; nothing changed")
            data = shifter.shift_to(
                to, dry_run=dry_run, force=force, reason=reason, seen=seen
            ).to_dict()

    def render() -> None:
        if "calls" in data and data.get("dry_run"):
            console.print(f"would shift {service}: {data['before']:g} % → {data['after']:g} %")
            for call in data["calls"]:
                console.print(f"  {call}")
        elif "status" in data:
            console.print(f"{service}: {data['status']} at {data['weight']:g} %: {data['message']}")
        elif "approved" in data:
            console.print(f"{service}: step {data['approved']:g} % approved")

    emit(output, data, render)
    if code:
        raise typer.Exit(code)
