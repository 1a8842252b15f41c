"""``strangler copy SERVICE``: create the service schema and copy the tables into it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import strangler.pg.plan_boundary  # registers the plan's boundary section
import strangler.pg.schema_rollback  # noqa: F401  (registers rollback --schema)
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
from strangler.pg.extract import copy_service, create_schema
from strangler.pg.progress import RichCopyProgress


def render_result(out: Console, data: dict[str, Any]) -> None:
    """The summary of a copy, shared with the demo."""
    for w in data.get("warnings", []):
        out.print(f"[yellow]warning:[/] {w}")
    tables = data.get("tables")
    if isinstance(tables, dict):
        table = Table(header_style="bold", title="row counts, from the copy's snapshot")
        for col in ("table", "monolith", "service", "check"):
            table.add_column(col, justify="right" if col != "table" else "left")
        for name, counts in tables.items():
            ok = counts["source_rows"] == counts["target_rows"]
            table.add_row(
                name,
                f"{counts['source_rows']:,}",
                f"{counts['target_rows']:,}",
                "[green]equal[/]" if ok else "[red]DIFFERENT[/]",
            )
        out.print(table)
        out.print(
            f"snapshot {data['snapshot']} · {data['chunks_copied']} chunk(s) copied, "
            f"{data['chunks_skipped']} skipped (already done) · formats: "
            f"{', '.join(data['formats']) or '-'} · {data['statements']} DDL statement(s) after "
            "the load"
        )
        if data.get("slot"):
            out.print(
                f"online: replication slot {data['slot']} exported that snapshot; changes since "
                f"{data['consistent_lsn']} wait in it for 'strangler sync'"
            )


@app.command("copy")
def copy_cmd(
    service: Annotated[str, typer.Argument(help="The service whose tables to copy.")],
    schema_only: Annotated[
        bool,
        typer.Option("--schema-only", help="Create the schema, types, tables and role; no rows."),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Parallel workers.")] = 2,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Copy a service's tables out of the monolith, faithfully, resumably, from one snapshot.

    Runs the runbook's step 1 (schema and role) if it has not run, then copies the rows and
    rebuilds keys, indexes, foreign keys, triggers and sequences. Run it again after a crash:
    finished chunks are skipped. --dry-run prints every SQL statement and changes nothing.
    """
    with session(file, operator) as s:
        rb = s.runbook(service)
        if schema_only:
            data = create_schema(rb, dry_run=dry_run)
        elif dry_run or output is Output.json:
            data = copy_service(rb, jobs=jobs, dry_run=dry_run)
        else:
            progress_console = Console(stderr=True, highlight=False)
            with RichCopyProgress(progress_console) as progress:
                data = copy_service(rb, jobs=jobs, progress=progress)
                progress.finish()
    data = {"service": service, "dry_run": dry_run, **data}

    def render() -> None:
        if dry_run:
            console.print(data["sql"], markup=False, highlight=False, end="")
            for w in data.get("warnings", []):
                console.print(f"-- warning: {w}", markup=False)
            return
        if schema_only:
            console.print(f"created schema {data['schema']} with {', '.join(data['tables'])}")
            for w in data.get("warnings", []):
                console.print(f"[yellow]warning:[/] {w}")
            return
        render_result(console, data)

    emit(output, data, render)
