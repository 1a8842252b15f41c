"""``strangler copy SERVICE``: create the service schema and copy the tables into it;
``strangler move SERVICE``: move them into it on the same instance (``strategy: move``)."""

from __future__ import annotations

from typing import Annotated

import typer

from strangler.cli.app import (
    MIGRATE,
    DryRunOpt,
    OperatorOpt,
    Output,
    OutputOpt,
    SpecOpt,
    app,
    console,
    emit,
    machine,
    session,
)
from strangler.cli.observe import LogFormat, LogFormatOpt, LoggedCopyProgress, Logger


@app.command("copy", rich_help_panel=MIGRATE)
def copy_cmd(
    service: Annotated[str, typer.Argument(help="The service whose tables to copy.")],
    schema_only: Annotated[
        bool,
        typer.Option("--schema-only", help="Create the schema, types, tables and role; no rows."),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Parallel workers.")] = 2,
    log_format: LogFormatOpt = LogFormat.text,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Copy a service's tables out of the monolith, faithfully, resumably, from one snapshot.

    Runs the runbook's step 1 (schema and role) if it has not run, then copies the rows and
    rebuilds keys, indexes, foreign keys, triggers and sequences. Run it again after a crash:
    finished chunks are skipped. --dry-run prints every SQL statement and changes nothing.

    Examples:
      strangler copy order_service --dry-run      # every SQL statement, nothing changed
      strangler copy order_service --jobs 4
      strangler copy order_service --schema-only  # schema and role, no rows
    """
    from rich.console import Console

    from strangler.render.copy import render_copy
    from strangler.render.progress import RichCopyProgress
    from strangler.steps.copy import copy
    from strangler.steps.create_schema import create_schema

    with session(file, operator) as s:
        rb = s.runbook(service)
        if schema_only:
            created = create_schema(rb, dry_run=dry_run)
            data = {"service": service, "dry_run": dry_run, **created.to_dict()}

            def render_schema() -> None:
                if created.sql is not None:
                    console.print(created.sql, markup=False, highlight=False, end="")
                    return
                console.print(f"created schema {created.schema} with {', '.join(created.tables)}")
                for w in created.warnings:
                    console.print(f"[yellow]warning:[/] {w}")

            emit(output, data, render_schema)
            return
        if log_format is LogFormat.json and not dry_run:
            log = Logger(log_format, f"strangler copy {service}", to_stderr=True)
            result = copy(rb, jobs=jobs, progress=LoggedCopyProgress(log))
            log.info(f"copy of {service} done")
        elif dry_run or machine(output):
            result = copy(rb, jobs=jobs, dry_run=dry_run)
        else:
            with RichCopyProgress(Console(stderr=True, highlight=False)) as progress:
                result = copy(rb, jobs=jobs, progress=progress)
                progress.finish()
    data = {"service": service, "dry_run": dry_run, **result.to_dict()}

    def render() -> None:
        if dry_run:
            text = result.sql or (result.schema.sql if result.schema else "") or ""
            console.print(text, markup=False, highlight=False, end="")
            warnings = result.schema.warnings if result.schema else result.warnings
            for w in warnings:
                console.print(f"-- warning: {w}", markup=False)
            return
        render_copy(console, result)

    emit(output, data, render)


@app.command("move", rich_help_panel=MIGRATE)
def move_cmd(
    service: Annotated[str, typer.Argument(help="The service whose tables to move.")],
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            min=0.01,
            max=60,
            help="Seconds one attempt waits for the tables' locks before trying again.",
        ),
    ] = 0.2,
    attempts: Annotated[int, typer.Option("--attempts", min=1, max=1000)] = 50,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Move a service's tables into its schema on the same instance (strategy: move).

    ALTER TABLE … SET SCHEMA in one short transaction, nothing copied; the monolith keeps
    working through compatibility views under the old names, with the tables' grants.
    --dry-run prints what moves, what the monolith will see and every SQL statement.

    Examples:
      strangler move order_service --dry-run
      strangler move order_service --lock-timeout 0.5 --attempts 20
    """
    from strangler.render.copy import render_move
    from strangler.steps.move import MoveStepResult, move

    with session(file, operator) as s:
        result = move(
            s.runbook(service), dry_run=dry_run, lock_timeout=lock_timeout, attempts=attempts
        )
    data = {"service": service, "dry_run": dry_run, **result.to_dict()}

    def render() -> None:
        if result.sql is not None:
            if result.plan is not None:
                render_move(console, MoveStepResult(service, plan=result.plan))
            console.print("\n".join(result.sql), markup=False, highlight=False)
            return
        render_move(console, result)

    emit(output, data, render)
