"""``strangler decommission SERVICE [--check]``: post-migration evidence, then the steps."""

from __future__ import annotations

from typing import Annotated

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
    session,
)
from strangler.cli.checks import render_results
from strangler.errors import BadInput


@app.command(rich_help_panel=MIGRATE)
def decommission(
    service: Annotated[str, typer.Argument(help="The service.")],
    check: Annotated[bool, typer.Option("--check", help="Only gather the evidence.")] = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    yes: YesOpt = False,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """The post-migration checklist (--check), then remove the old path, archive, drop.

    Removes the old route, archives and renames the old tables, and in a later run drops
    them and tags the infrastructure repo. Asks before it acts (--yes without a terminal).

    Examples:
      strangler decommission order_service --check
      strangler decommission order_service --dry-run
      strangler decommission order_service --yes
    """
    from strangler.render.status import describe_details
    from strangler.steps import decommission as steps

    if force and not reason:
        raise BadInput("--force needs --reason '…' (it is journaled)")
    with session(file, operator) as s:
        rb = s.runbook(service)
        source = steps.metric_source_of(s.spec, service)
        if check:
            found = steps.check(rb, source, dry_run=dry_run)

            def render() -> None:
                render_results(f"decommission evidence: {service}", found.results)
                console.print(
                    "[green]all evidence holds[/]"
                    + (f"; {service} is now stable" if found.marked_stable else "")
                    if found.passed
                    else "[red]not ready to decommission[/]"
                )

            emit(output, found.to_dict(), render)
            if not found.passed:
                raise typer.Exit(1)
            return
        if not dry_run:
            confirm(
                f"decommission {service}: remove its old route, archive and retire the old "
                "tables (a later run drops them after the grace period)?",
                yes=yes,
            )
        report = steps.decommission(
            rb,
            source=source,
            remove_route=steps.route_remover(s.spec, service),
            dry_run=dry_run,
            force=force,
            reason=reason,
        )

    def render_report() -> None:
        if report.evidence:
            render_results(f"decommission evidence: {service}", report.evidence)
        for done in report.done:
            what = done.get("would") or {k: v for k, v in done.items() if k != "step"}
            text = what if isinstance(what, str) else describe_details(what, limit=None)
            console.print(f"[bold]{done['step']}[/]: ", end="")
            console.print(text, markup=False)
        console.print(f"{service} is now [cyan]{report.phase}[/]")
        if report.waiting:
            console.print("[yellow]waiting[/]: ", end="")
            console.print(str(report.waiting), markup=False)

    emit(output, report.to_dict(), render_report)
