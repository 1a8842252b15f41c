"""``strangler worker``, ``strangler k8s`` and ``strangler throttle`` (issue 17): bulk work
on many machines, and the brake that protects the monolith."""

from __future__ import annotations

import signal
import threading
from enum import StrEnum
from typing import Annotated

import typer

from strangler.cli.app import (
    MIGRATE,
    OperatorOpt,
    Output,
    OutputOpt,
    ReasonOpt,
    SpecOpt,
    app,
    console,
    emit,
    err_console,
    session,
)
from strangler.errors import BadInput

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]


class JobChoice(StrEnum):
    copy = "copy"
    verify = "verify"
    all = "all"


@app.command(rich_help_panel=MIGRATE)
def worker(
    service: ServiceArg,
    job: Annotated[JobChoice, typer.Option(help="Which queue to drain.")] = JobChoice.all,
    name: Annotated[
        str | None,
        typer.Option(help="This worker's name. Default: host#$JOB_COMPLETION_INDEX or host:pid."),
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for chunks out of reach (a copy's snapshot gone)."),
    ] = 600.0,
    wait_for_queue: Annotated[
        float,
        typer.Option(help="Seconds to wait for a queue to be filled at all (started early)."),
    ] = 60.0,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Take copy and verification chunks of SERVICE from its queue until the queue is empty.

    'strangler copy' (with copy.engine: workers) and 'strangler verify' fill the queue in the
    service's database; start any number of workers on any machine (or 'strangler k8s' for an
    Indexed Job). Each chunk is copied and marked done in one transaction: kill a worker at
    any moment and its chunk goes back to the queue.

    Examples:
      strangler worker order_service
      strangler worker order_service --job copy --name batch-host-1
    """
    from strangler.steps import worker as worker_step

    jobs = ("copy", "verify") if job is JobChoice.all else (job.value,)
    with session(file, operator) as s:
        rb = s.runbook(service)
        report = worker_step.work(
            rb,
            jobs=jobs,  # type: ignore[arg-type]
            worker=name,
            idle_timeout=idle_timeout,
            wait_for_queue=wait_for_queue,
        )
    data = {"service": service, **report.to_dict()}

    def render() -> None:
        console.print(
            f"{service}: worker {report.worker} finished {report.chunks['copy']} copy and "
            f"{report.chunks['verify']} verification chunk(s), {report.rows:,} rows, "
            f"{report.bytes:,} bytes in {report.seconds:.1f}s; the queue is empty"
        )
        for failure in report.failures:
            console.print(f"[yellow]failed:[/] {failure}")

    emit(output, data, render)


@app.command(rich_help_panel=MIGRATE)
def throttle(
    service: ServiceArg,
    pause: Annotated[bool, typer.Option("--pause", help="Hold every brake of SERVICE.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Release the pause.")] = False,
    reason: ReasonOpt = None,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Pause or resume SERVICE's copy, verification, sync and workers between two chunks or
    rounds; without an option, show the pause and the last decision of its brakes.

    Examples:
      strangler throttle order_service
      strangler throttle order_service --pause --reason "month-end close"
      strangler throttle order_service --resume --reason "close done"
    """
    from strangler.steps import throttle as throttle_step

    if pause and resume:
        raise BadInput("--pause and --resume together", hint="give one of them")
    with session(file, operator) as s:
        rb = s.runbook(service)
        if pause or resume:
            if not reason:
                raise BadInput(
                    "--pause and --resume need --reason", hint="--reason '…' (journaled)"
                )
            throttle_step.pause(rb, paused=pause, reason=reason)
        line = throttle_step.throttle_status(s.spec, s.journal, service)
    data = {"service": service, "throttle": line.to_dict() if line else None}

    def render() -> None:
        if line is None:
            console.print(f"{service}: no throttle in the spec, nothing paused")
            return
        if line.error:
            console.print(f"{service}: throttle state unreadable: {line.error}")
        if line.paused:
            p = line.paused
            console.print(
                f"{service}: paused by {p.by} since {p.since:%Y-%m-%d %H:%M:%S}: {p.reason}"
            )
        else:
            console.print(f"{service}: not paused")
        if line.last_action:
            console.print(
                f"  last decision: {line.last_action} ({line.last_for}) "
                f"at {line.last_at:%Y-%m-%d %H:%M:%S}"
                + (f": {line.last_reason}" if line.last_reason else "")
            )

    emit(output, data, render)


@app.command("k8s", rich_help_panel=MIGRATE)
def k8s(
    service: ServiceArg,
    parallelism: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Worker pods. Default: copy.workers.parallelism."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create the objects through the Kubernetes API.")
    ] = False,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Write (or --apply) the Kubernetes Indexed Job whose pods run 'strangler worker SERVICE'.

    Two objects: a ConfigMap with the spec file as written, and the Job. Every ${VAR} of the
    spec comes from a Secret key (secretKeyRef), never from the manifest. Both are checked
    against the official Kubernetes client's models before they are printed or applied.

    Examples:
      strangler k8s order_service --parallelism 8 > workers.yaml
      strangler k8s order_service --apply
    """
    import yaml

    from strangler.steps import worker as worker_step

    with session(file, operator) as s:
        rb = s.runbook(service)
        job = worker_step.worker_job(rb, parallelism=parallelism)
        done = worker_step.apply_worker_job(rb, job) if apply else []
    data = {"service": service, **job.to_dict(), "applied": done}

    def render() -> None:
        if apply:
            for line in done:
                console.print(line)
        else:
            console.print(
                yaml.safe_dump_all(list(job.objects), sort_keys=False),
                markup=False,
                highlight=False,
                end="",
            )
        for w in job.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")

    emit(output, data, render)


@app.command(rich_help_panel=MIGRATE)
def decoder(
    group: Annotated[str, typer.Argument(help="The decoder group (services' sync.decoder).")],
    join: Annotated[
        bool, typer.Option("--join", help="Move the group's services onto one shared slot.")
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="Slot and each service's lag.")] = False,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Exit once everything committed is applied.")
    ] = False,
    stop_group: Annotated[
        bool, typer.Option("--stop", help="Drop the group's slot, publication and positions.")
    ] = False,
    leave: Annotated[
        str | None,
        typer.Option(help="Give this service its own slot again (before its cutover)."),
    ] = None,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """One decoding of the monolith's WAL for every service of GROUP: each change goes to its
    service's target with that service's remap, each service keeping its own position.

    Examples:
      strangler decoder billing --join
      strangler decoder billing                          # until Ctrl-C
      strangler decoder billing --leave order_service    # before its cutover
    """
    from strangler.steps import decoder as decoder_step

    with session(file, operator) as s:
        if join:
            data: dict[str, object] = {
                "group": group,
                "joined": decoder_step.join(s.spec, s.journal, group),
            }
        elif leave:
            data = {
                "group": group,
                "left": leave,
                "position": decoder_step.leave(s.spec, s.journal, group, leave),
            }
        elif status:
            data = {"group": group, **decoder_step.status(s.spec, group)}
        elif stop_group:
            data = {"group": group, **decoder_step.stop(s.spec, s.journal, group)}
        else:
            halt = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: halt.set())
            rows = [0]

            def count(r: object) -> None:
                rows[0] += getattr(r, "rows", 0)

            try:
                last = decoder_step.run(
                    s.spec, group, stop=halt, until_caught_up=until_caught_up, on_round=count
                )
            except KeyboardInterrupt:
                last = None
            data = {
                "group": group,
                "rows_this_run": rows[0],
                "position": None if last is None else last.position,
            }
    emit(output, data, lambda: console.print_json(data=data, default=str))
