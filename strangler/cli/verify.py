"""``strangler verify``: prove the copy, now or every hour, and say which rows differ."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
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
from strangler.cli.observe import LogFormat, LogFormatOpt, Logger
from strangler.durations import parse_duration
from strangler.errors import BadInput, file_problem


class Mode(StrEnum):
    counts = "counts"
    checksum = "checksum"
    rows = "rows"


@app.command(rich_help_panel=MIGRATE)
def verify(
    service: Annotated[str, typer.Argument(help="The service whose copy to verify.")],
    file: SpecOpt = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable).")
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(help="counts (fast, blind to values), checksum (ranges), rows (default)."),
    ] = Mode.rows,
    recheck: Annotated[
        int,
        typer.Option(help="Read differing rows again up to N times (after sync caught up)."),
    ] = 0,
    every: Annotated[
        str | None, typer.Option(help="Run again every interval (e.g. 1h) until stopped.")
    ] = None,
    runs: Annotated[
        int | None, typer.Option(help="With --every: stop after this many runs.")
    ] = None,
    show: Annotated[int, typer.Option(help="Differing rows shown per table.")] = 20,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the report's Markdown section here.")
    ] = None,
    output: OutputOpt = Output.text,
    log_format: LogFormatOpt = LogFormat.text,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Compare every row of the service's tables with the monolith; exit 1 on any difference.

    Each side hashes key ranges of each table on its own server, both at once; only ranges
    that differ are cut further, down to the rows. Every result is journaled, and a passing
    one is the evidence write and traffic cutover require.

    Examples:
      strangler verify order_service
      strangler verify order_service --table orders --mode checksum
      strangler verify order_service --every 1h --markdown verify.md
    """
    from strangler.pg.connect import describe_dsn
    from strangler.render.verify import render_report
    from strangler.steps.verify import verify as verify_step

    if recheck < 0:
        raise BadInput("--recheck must be 0 or more", hint="for example --recheck 3")
    interval = None
    if every is not None:
        try:
            interval = parse_duration(every).total_seconds()
        except ValueError as exc:
            raise BadInput(f"--every: {exc}", hint="for example --every 1h") from None
        if interval <= 0:
            raise BadInput("--every must be longer than zero", hint="for example --every 1h")
    with session(file, operator) as s:
        svc = s.spec.service(service)
        tables = table or list(svc.tables)
        if dry_run:
            pairs = [
                {"source": f"{s.spec.source.schema_}.{t}", "target": f"{svc.target.schema_}.{t}"}
                for t in tables
            ]
            data = {
                "service": service,
                "mode": mode.value,
                "dry_run": True,
                "source": describe_dsn(s.spec.source.dsn),
                "target": describe_dsn(s.spec.target_dsn(service)),
                "tables": pairs,
            }

            def render_plan() -> None:
                console.print(f"would verify {service} ({mode.value}); nothing is read or written")
                for p in pairs:
                    console.print(
                        f"  {data['source']} {p['source']} = {data['target']} {p['target']}"
                    )

            emit(output, data, render_plan)
            return
        failed = False
        done = 0
        log = Logger(log_format, f"strangler verify {service}", to_stderr=True)
        while True:
            report = verify_step(s.runbook(service), tables=table, mode=mode.value, recheck=recheck)
            failed = failed or not report.passed
            if markdown is not None:
                try:
                    markdown.write_text(report.markdown())
                except OSError as exc:
                    raise file_problem(markdown, exc, "write the Markdown report to") from exc
            if log_format is LogFormat.json:
                log.info(
                    f"verify {service}: {'passed' if report.passed else 'differences found'}",
                    passed=report.passed,
                    mode=mode.value,
                    seconds=round(report.seconds, 3),
                    run=done + 1,
                )
            if log_format is not LogFormat.json or machine(output):
                emit(output, report.to_dict(), lambda r=report: render_report(r, show, console))  # type: ignore[misc]
            done += 1
            if interval is None or (runs is not None and done >= runs):
                break
            time.sleep(interval)
    if failed:
        raise typer.Exit(1)
