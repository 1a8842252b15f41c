"""``strangler run SERVICE | --all``: the whole migration advanced by one command."""

from __future__ import annotations

import sys
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
    session,
)
from strangler.cli.observe import LogFormat, LogFormatOpt, Logger, MetricsPortOpt, observing
from strangler.errors import BadInput


@app.command("run", rich_help_panel=MIGRATE)
def run_cmd(
    service: Annotated[str | None, typer.Argument(help="The service; or --all.")] = None,
    all_services: Annotated[
        bool, typer.Option("--all", help="Every service of the spec, one after the other.")
    ] = False,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Stop once the service reaches this phase (e.g. verified)."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Sleep through waits that end by themselves (bakes, grace periods)."
        ),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Copy workers.")] = 2,
    metrics_port: MetricsPortOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Take every step the evidence, gates and schedule allow; say what it waits for.

    Call it again at any time (by hand, from cron or CI) to continue.

    Exit codes: 0 done (or at --until), 75 waiting (nothing wrong: call again later),
    1 a step or gate failed, 2 bad input, 3 a system could not be reached.

    Examples:
      strangler run order_service                 # as far as it can go now
      strangler run order_service --until verified
      strangler run --all -o json                 # from cron, for every service
    """
    from strangler.phases import Phase
    from strangler.render.plan import render_step_plan
    from strangler.render.run import render_run
    from strangler.steps.run import next_plan, run, run_until_done
    from strangler.steps.types import RunOptions

    if bool(service) == all_services:
        raise BadInput("name one service, or pass --all", hint="strangler run order_service")
    stop_at = None
    if until is not None:
        try:
            stop_at = Phase(until)
        except ValueError:
            raise BadInput(
                f"--until {until!r} is not a phase",
                hint="one of: " + ", ".join(p.value for p in Phase),
            ) from None
    log = Logger(log_format, "strangler run", to_stderr=output is Output.json)
    opts = RunOptions(jobs=jobs, say=lambda text: log.info(text))
    with session(file, operator) as s:
        names = sorted(s.spec.services) if all_services else [str(service)]
        for name in names:
            s.spec.service(name)
        if dry_run:
            plans = {n: next_plan(s.runbook(n), inspect=True) for n in names}
            data = {n: [p.to_dict() for p in ps] for n, ps in plans.items()}

            def render_plans() -> None:
                for name, ps in plans.items():
                    if not ps:
                        console.print(f"{name}: nothing left to do")
                    for p in ps:
                        render_step_plan(console, p)

            emit(output, {"dry_run": True, "services": data}, render_plans)
            return
        results = []
        with observing(s.spec, names, metrics_port, log):
            for name in names:
                rb = s.runbook(name)
                results.append(
                    run_until_done(rb, until=stop_at, options=opts)
                    if wait
                    else run(rb, until=stop_at, options=opts)
                )

    def render() -> None:
        for r in results:
            render_run(console, r)

    emit(output, {"services": [r.to_dict() for r in results]}, render)
    codes = [r.exit_code for r in results]
    failed = [c for c in codes if c not in (0, 75)]
    code = max(failed) if failed else (75 if 75 in codes else 0)
    sys.stdout.flush()
    if code:
        raise typer.Exit(code)
