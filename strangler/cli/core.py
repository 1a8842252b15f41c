"""Commands about the spec and the journal: init, schema, plan, status, history, resolve."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from strangler.cli.app import (
    OperatorOpt,
    Output,
    OutputOpt,
    SpecOpt,
    app,
    console,
    emit,
    err_console,
    session,
)
from strangler.errors import BadInput, file_problem
from strangler.render.plan import render_plan
from strangler.render.status import render_history, render_status
from strangler.spec import DEFAULT_SPEC_NAME, Spec
from strangler.steps.plan import build_plan
from strangler.steps.status import status as service_statuses


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the spec.")] = Path(
        DEFAULT_SPEC_NAME
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example spec for the runbook's order_service."""
    if path.exists() and not force:
        raise BadInput(f"{path} already exists", hint="choose another path or pass --force")
    text = resources.files("strangler").joinpath("spec_template.yaml").read_text()
    try:
        path.write_text(text)
    except OSError as exc:
        raise file_problem(path, exc, "write the spec to") from exc
    console.print(
        f"wrote {path}; set MONOLITH_DSN, ORDER_SERVICE_DSN and "
        "ORDER_SERVICE_DB_PASSWORD, then run: strangler plan -f " + str(path)
    )


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (point your editor's YAML plugin at it)."""
    doc = Spec.model_json_schema(by_alias=True)
    for key in ("base_dir", "path"):
        doc.get("properties", {}).pop(key, None)
    typer.echo(json.dumps(doc, indent=2))


@app.command()
def plan(
    service: Annotated[str | None, typer.Argument(help="One service; default: all.")] = None,
    file: SpecOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Validate the spec and print what would happen, changing nothing."""
    with session(file) as s:
        names = [service] if service else sorted(s.spec.services)
        for name in names:
            s.spec.service(name)
        plans = [build_plan(s.spec, n, s.journal.state(n).phase, inspect=True) for n in names]
    data = {"spec": str(s.spec.path), "services": [p.to_dict() for p in plans]}

    def render() -> None:
        for p in plans:
            render_plan(console, p)

    emit(output, data, render)


@app.command()
def status(file: SpecOpt = None, output: OutputOpt = Output.text) -> None:
    """Every service: phase, traffic weight, last step and its age."""
    with session(file) as s:
        rows = service_statuses(s.spec, s.journal)
        now = s.journal.clock()
    emit(
        output,
        {"services": [r.to_dict(now) for r in rows]},
        lambda: render_status(console, err_console, rows, now),
    )


@app.command()
def history(
    service: Annotated[str, typer.Argument(help="The service.")],
    file: SpecOpt = None,
    limit: Annotated[int, typer.Option(help="Newest N entries.")] = 50,
    output: OutputOpt = Output.text,
) -> None:
    """The journal of one service: who did what, when, why, and how it ended."""
    with session(file) as s:
        s.spec.service(service)
        entries = s.journal.history(service, limit=limit)
    emit(
        output,
        {"service": service, "entries": [e.to_dict() for e in entries]},
        lambda: render_history(console, entries),
    )


@app.command()
def resolve(
    service: Annotated[str, typer.Argument(help="The service.")],
    reason: Annotated[str, typer.Option(help="Why the unfinished step may be set aside.")],
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Mark a step that crashed halfway as abandoned, after you have inspected it."""
    with session(file, operator) as s:
        found = s.runbook(service).resolve(reason)
    data = {"service": service, "abandoned": [e.to_dict() for e in found]}

    def render() -> None:
        if not found:
            console.print(f"{service}: no unfinished step; nothing to resolve")
        for e in found:
            console.print(f"{service}: step {e.step!r} from {e.at:%Y-%m-%d %H:%M:%S} abandoned")

    emit(output, data, render)
