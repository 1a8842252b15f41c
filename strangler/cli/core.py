"""Commands about the spec and the journal: init, schema, plan, status, history, resolve."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strangler.cli.app import (
    MORE,
    OBSERVE,
    PREPARE,
    SPEC_FILE,
    UNDO,
    OperatorOpt,
    Output,
    OutputOpt,
    SpecOpt,
    app,
    console,
    emit,
    err_console,
    machine,
    session,
)
from strangler.cli.watch import IntervalOpt, TimeoutOpt, WatchOpt, timeout_seconds
from strangler.cli.watch import watch as watch_loop
from strangler.errors import BadInput, StranglerError, file_problem
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.phases import Phase
    from strangler.steps.status import ServiceStatus


@app.command(rich_help_panel=PREPARE)
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the spec.")] = Path(SPEC_FILE),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Write a commented example spec for the runbook's order_service.

    Examples:
      strangler init
      strangler init prod.yaml && strangler plan -f prod.yaml
    """
    if path.exists() and not force:
        raise BadInput(f"{path} already exists", hint="choose another path or pass --force")
    text = resources.files("strangler").joinpath("spec_template.yaml").read_text()
    try:
        path.write_text(text)
    except OSError as exc:
        raise file_problem(path, exc, "write the spec to") from exc
    needs = ["MONOLITH_DSN", "ORDER_SERVICE_DSN", "ORDER_SERVICE_DB_PASSWORD"]
    emit(
        output,
        {"path": str(path), "environment": needs, "next": f"strangler plan -f {path}"},
        lambda: console.print(
            f"wrote {path}; set {', '.join(needs[:-1])} and {needs[-1]} (and "
            "STRANGLER_PROXY_URL for the local router if it is not on 127.0.0.1:8600), then "
            f"run: strangler plan -f {path}",
            markup=False,
        ),
    )


@app.command(rich_help_panel=MORE)
def schema() -> None:
    """Print the spec's JSON Schema (point your editor's YAML plugin at it).

    Examples:
      strangler schema > strangler.schema.json
    """
    from strangler.spec import Spec

    doc = Spec.model_json_schema(by_alias=True)
    for key in ("base_dir", "path"):
        doc.get("properties", {}).pop(key, None)
    typer.echo(json.dumps(doc, indent=2))


@app.command(rich_help_panel=PREPARE)
def plan(
    service: Annotated[str | None, typer.Argument(help="One service; default: all.")] = None,
    file: SpecOpt = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Read the spec only; connect to nothing.")
    ] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="terraform's: 0 nothing left to do, 2 steps to come, 1 a finding or an error.",
        ),
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Validate the spec, check the databases read-only, and show every step still to come.

    Like 'terraform plan' it changes nothing and connects to what it will act on: the
    monolith and the service's database, the tables, wal_level for an online service, the
    references across the service boundary. Exit codes: 0 nothing wrong, 1 a finding that
    will stop a step (unreachable host, wrong password, missing table, wal_level, a table
    an online service cannot publish), 2 a bad spec. With --detailed-exitcode: 0 nothing
    left to do, 1 a finding or an error, 2 steps to come (terraform's meaning of 2).

    Examples:
      strangler plan
      strangler plan order_service -o json
      strangler plan --offline              # the spec alone, nothing reached
      strangler plan --detailed-exitcode   # 0 nothing to do, 2 steps to come, 1 a finding
    """
    from strangler.phases import Phase
    from strangler.render.plan import render_plan
    from strangler.steps.plan import build_plan
    from strangler.steps.plan_checks import findings

    try:
        with session(file) as s:
            names = [service] if service else sorted(s.spec.services)
            for name in names:
                s.spec.service(name)
            plans = [
                build_plan(s.spec, n, s.journal.state(n).phase, inspect=not offline) for n in names
            ]
            found = (
                []
                if offline
                else [
                    f
                    for p in plans
                    for f in findings(
                        s.spec, p.service, Phase(p.phase), boundary=p.sections.get("boundary")
                    )
                ]
            )
    except StranglerError as exc:
        if detailed_exitcode and exc.exit_code == 2:
            exc.exit_code = 1  # terraform: an error is 1; 2 means "changes to make"
        raise
    remaining = any(not st.done for p in plans for st in p.steps)
    data = {
        "spec": str(s.spec.path),
        "services": [p.to_dict() for p in plans],
        "findings": [f.to_dict() for f in found],
        "steps_to_come": remaining,
    }

    def render() -> None:
        for p in plans:
            render_plan(console, p)
        for f in found:
            err_console.print(
                f"[bold red]finding:[/] {f.service}: {f.where}: {f.message}", highlight=False
            )
            err_console.print(f"  [bold]fix:[/] {f.hint}", highlight=False)
        if found:
            err_console.print(
                f"{len(found)} finding(s) will stop a step; fix them, then plan again",
                markup=False,
            )

    emit(output, data, render)
    if found:
        raise typer.Exit(1)
    if detailed_exitcode and remaining:
        raise typer.Exit(2)


@app.command(rich_help_panel=OBSERVE)
def status(
    service: Annotated[str | None, typer.Argument(help="One service; default: all.")] = None,
    file: SpecOpt = None,
    output: OutputOpt = Output.text,
    watch: WatchOpt = False,
    until: Annotated[
        str | None,
        typer.Option(help="With --watch: exit 0 once every service shown is at this phase."),
    ] = None,
    timeout: TimeoutOpt = None,
    interval: IntervalOpt = 2.0,
) -> None:
    """Every service: phase, traffic weight, last step and its age, the step running now.

    With --watch it prints again whenever something changes (with -o json: one JSON
    object per line); it exits 0 once every service shown is at --until, 1 when one of
    their steps fails, 75 when --timeout passes first, 0 on Ctrl-C.

    Examples:
      strangler status
      strangler status -o wide
      strangler status order_service --watch --until verified --timeout 2h
    """
    from strangler.phases import Phase
    from strangler.render.status import render_status
    from strangler.steps.status import service_status

    stop_at = _phase(until) if until else None
    if (until or timeout) and not watch:
        raise BadInput("--until and --timeout go with --watch", hint="add --watch")
    wait = timeout_seconds(timeout)
    with session(file) as s:
        names = [service] if service else sorted(s.spec.services)
        for name in names:
            s.spec.service(name)
        started = s.journal.clock()

        def fetch() -> tuple[list[ServiceStatus], datetime]:
            rows = [service_status(s.spec, s.journal, n) for n in names]
            return rows, s.journal.clock()

        def show(found: tuple[list[ServiceStatus], datetime]) -> None:
            rows, now = found
            data = {"at": now.isoformat(), "services": [r.to_dict(now) for r in rows]}
            if watch and machine(output):
                sys.stdout.write(scrub(json.dumps(data, default=str)) + "\n")
                sys.stdout.flush()
                return
            if watch and output is not Output.json:
                console.print(f"[dim]{now:%Y-%m-%d %H:%M:%S} UTC[/]")
            emit(
                output,
                data,
                lambda: render_status(console, err_console, rows, now, wide=output is Output.wide),
            )

        if not watch:
            show(fetch())
            return

        def key(found: tuple[list[ServiceStatus], datetime]) -> Any:
            rows, now = found
            return [
                {k: v for k, v in r.to_dict(now).items() if "age" not in k and k != "sync"}
                for r in rows
            ]

        def verdict(found: tuple[list[ServiceStatus], datetime]) -> int | None:
            rows, _ = found
            for r in rows:
                if r.last_status == "failed" and r.last_at and r.last_at > started:
                    err_console.print(
                        f"{r.service}: step {r.last_step} failed; see 'strangler history "
                        f"{r.service}'",
                        markup=False,
                    )
                    return 1
            if stop_at is None:
                return None
            from strangler.steps.run import reached  # the runbook's order: --until only

            if all(reached(Phase(r.phase), stop_at) for r in rows):
                return 0
            return None

        code = watch_loop(
            fetch,
            show,
            key=key,
            verdict=verdict,
            interval=interval,
            timeout=wait,
            on_timeout=lambda: err_console.print(
                f"still waiting after {timeout}" + (f" for {until}" if until else ""),
                markup=False,
            ),
        )
    if code:
        raise typer.Exit(code)


def _phase(value: str) -> Phase:
    from strangler.phases import Phase

    try:
        return Phase(value)
    except ValueError:
        raise BadInput(
            f"{value!r} is not a phase", hint="one of: " + ", ".join(p.value for p in Phase)
        ) from None


@app.command(rich_help_panel=OBSERVE)
def describe(
    service: Annotated[str, typer.Argument(help="The service.")],
    file: SpecOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """One service in full: phase, traffic, sync, verification, gates, waits, recent events.

    Examples:
      strangler describe order_service
      strangler describe order_service -o yaml
    """
    from strangler.render.status import render_describe
    from strangler.steps.overview import service_overview
    from strangler.steps.status import service_status

    with session(file) as s:
        s.spec.service(service)
        view = service_overview(s.spec, s.journal, service)
        st = service_status(s.spec, s.journal, service)
        now = s.journal.clock()
    data = {**view.to_dict(), "status": st.to_dict(now)}
    emit(output, data, lambda: render_describe(console, view, st, now))


@app.command(rich_help_panel=OBSERVE)
def history(
    service: Annotated[str, typer.Argument(help="The service.")],
    file: SpecOpt = None,
    limit: Annotated[int, typer.Option(help="Newest N entries.")] = 50,
    output: OutputOpt = Output.text,
) -> None:
    """The journal of one service: who did what, when, why, and how it ended.

    Examples:
      strangler history order_service
      strangler history order_service --limit 500 -o json
    """
    from strangler.render.status import render_history

    with session(file) as s:
        s.spec.service(service)
        entries = s.journal.history(service, limit=limit)
    emit(
        output,
        {"service": service, "entries": [e.to_dict() for e in entries]},
        lambda: render_history(console, entries, wide=output is Output.wide),
    )


@app.command(rich_help_panel=UNDO)
def resolve(
    service: Annotated[str, typer.Argument(help="The service.")],
    reason: Annotated[str, typer.Option(help="Why the unfinished step may be set aside.")],
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Mark a step that crashed halfway as abandoned, after you have inspected it.

    Examples:
      strangler history order_service   # inspect the step that never finished
      strangler resolve order_service --reason 'copy killed by the OOM killer; rerun'
    """
    with session(file, operator) as s:
        found = s.runbook(service).resolve(reason)
    data = {"service": service, "abandoned": [e.to_dict() for e in found]}

    def render() -> None:
        if not found:
            console.print(f"{service}: no unfinished step; nothing to resolve")
        for e in found:
            console.print(f"{service}: step {e.step!r} from {e.at:%Y-%m-%d %H:%M:%S} abandoned")

    emit(output, data, render)


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command(rich_help_panel=MORE)
def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the shell completion script (commands, options, service names from the spec).

    Examples:
      source <(strangler completion bash)                # this shell
      strangler completion bash > /etc/bash_completion.d/strangler
      strangler completion zsh > "${fpath[1]}/_strangler"
      strangler completion fish > ~/.config/fish/completions/strangler.fish
    """
    from typer._completion_shared import get_completion_script

    typer.echo(
        get_completion_script(
            prog_name="strangler", complete_var="_STRANGLER_COMPLETE", shell=shell.value
        )
    )
