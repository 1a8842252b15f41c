"""``strangler preflight | attest | validate | alarms``: the runbook's checklists as commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from strangler.checks.attestations import KNOWN, check_attestation
from strangler.checks.base import CheckResult, blocking
from strangler.cli.app import (
    PREPARE,
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
from strangler.durations import parse_duration
from strangler.errors import BadInput, file_problem

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]


def render_results(title: str, results: list[CheckResult]) -> None:
    from strangler.render.checks import render_results as _render

    _render(console, title, results)


def _finish(output: Output, service: str, what: str, results: list[CheckResult]) -> None:
    failed = blocking(results)
    data: dict[str, Any] = {
        "service": service,
        "passed": not failed,
        "results": [r.to_dict() for r in results],
    }

    def render() -> None:
        render_results(f"{what}: {service}", results)
        if failed:
            console.print(f"[red]{what} failed[/]: " + ", ".join(r.name for r in failed))
        else:
            console.print(f"[green]{what} passed[/]")

    emit(output, data, render)
    if failed:
        raise typer.Exit(1)


@app.command(rich_help_panel=PREPARE)
def preflight(
    service: ServiceArg,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Run the runbook's pre-migration checklist; exit 1 when a required item fails.

    The verdicts are journaled; copy and write cutover need a recent passing preflight when
    the spec has a preflight: section.

    Examples:
      strangler preflight order_service
      strangler preflight order_service -o json
    """
    from strangler.steps import preflight as checklists

    with session(file, operator) as s:
        done = checklists.preflight(s.runbook(service))
    _finish(output, service, "preflight", done.results)


@app.command(name="attest", rich_help_panel=PREPARE)
def attest_cmd(
    service: ServiceArg,
    what: Annotated[
        str, typer.Argument(help=f"What you vouch for: {', '.join(sorted(KNOWN))}, or a name.")
    ],
    note: Annotated[str, typer.Option("--note", help="Ticket id, channel, who was told.")] = "",
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Record that a person did something no API can show (on-call alerted, ticket, …).

    Examples:
      strangler attest order_service oncall --note 'paged #orders-oncall'
      strangler attest order_service change_ticket --note CHG-1234
    """
    from strangler.steps import preflight as checklists

    with session(file, operator) as s:
        s.spec.service(service)
        if dry_run:
            check_attestation(what, note)
            data = {
                "service": service,
                "attestation": what,
                "by": s.journal.operator,
                "note": note.strip(),
                "dry_run": True,
            }
            emit(
                output,
                data,
                lambda: console.print(
                    f"would record: {what} attested by {s.journal.operator}: {note.strip()}"
                ),
            )
            return
        entry = checklists.attest(s.runbook(service), what, note)
    data = {
        "service": service,
        "attestation": what,
        "by": entry.operator,
        "at": entry.at.isoformat(),
        "note": entry.reason,
    }
    emit(
        output,
        data,
        lambda: console.print(
            f"recorded: {what} attested by {entry.operator} at {entry.at:%Y-%m-%d %H:%M:%S} UTC"
        ),
    )


@app.command(rich_help_panel=PREPARE)
def validate(
    service: ServiceArg,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """The runbook's validate-service.sh: pods, health, ExternalSecret, HPA; exit 1 on a fail.

    Pods ready, /health/ready through the Kubernetes API, ExternalSecret synced, HPA shown.

    Examples:
      strangler validate order_service
    """
    from strangler.steps import preflight as checklists

    with session(file, operator) as s:
        results = checklists.validate(s.runbook(service)).results
    _finish(output, service, "validate", results)


class AlarmFormat(StrEnum):
    terraform = "terraform"
    prometheus = "prometheus"


@app.command(rich_help_panel=PREPARE)
def alarms(
    service: ServiceArg,
    format: Annotated[
        AlarmFormat, typer.Option("--format", help="terraform or prometheus.")
    ] = AlarmFormat.terraform,
    prefix: Annotated[str, typer.Option(help="Alarm name prefix.")] = "strangler-",
    sync_lag: Annotated[
        str, typer.Option("--sync-lag", help="Sync lag that alarms (a duration: 60s, 5m).")
    ] = "60s",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    file: SpecOpt = None,
) -> None:
    """Print the service's 5xx, latency and sync-lag alarms as Terraform or Prometheus rules.

    Examples:
      strangler alarms order_service --format terraform --out alarms.tf
      strangler alarms order_service --format prometheus --sync-lag 2m > rules.yaml
    """
    from strangler.alarms import alarm_set, render_prometheus, render_terraform

    try:
        lag = parse_duration(sync_lag).total_seconds()
    except ValueError as exc:
        raise BadInput(f"--sync-lag: {exc}", hint="for example --sync-lag 60s") from None
    with session(file) as s:
        a = alarm_set(service, s.spec.service(service), prefix, lag_seconds=lag)
    text = render_terraform(a) if format is AlarmFormat.terraform else render_prometheus(a)
    if out is None:
        typer.echo(text, nl=False)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            raise file_problem(out, exc, "write the alarms to") from exc
        console.print(f"wrote {out}; alarms: {', '.join(a.names)}")
