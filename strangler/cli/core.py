"""Commands about the spec and the journal: init, schema, plan, status, history, resolve."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
from strangler.durations import format_duration
from strangler.errors import BadInput
from strangler.journal import Entry
from strangler.plan import build_plan
from strangler.spec import DEFAULT_SPEC_NAME, Spec


def _age(at: datetime | None) -> str:
    if at is None:
        return "-"
    return format_duration(datetime.now(UTC) - at) + " ago"


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
    path.write_text(text)
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
        plans = [build_plan(s.spec, n, s.journal.state(n).phase) for n in names]
    data = {"spec": str(s.spec.path), "services": [p.to_dict() for p in plans]}

    def render() -> None:
        for p in plans:
            console.print(f"[bold]{p.service}[/] ({p.strategy}), now [cyan]{p.phase}[/]")
            console.print(f"  from {p.source}\n  to   {p.target}")
            console.print(f"  tables: {', '.join(p.tables)}")
            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
            table.add_column("")
            table.add_column("step")
            table.add_column("to phase")
            table.add_column("what")
            for st in p.steps:
                table.add_row("[green]✓[/]" if st.done else "·", st.action, st.target, st.what)
            console.print(table)
            for w in p.warnings:
                console.print(f"  [yellow]warning:[/] {w}")
            for name, section in p.sections.items():
                render_section = getattr(section, "render", None)
                if callable(render_section):
                    render_section(console)
                else:
                    console.print(f"  {name}: {section}")

    emit(output, data, render)


# Capabilities add per-service fields to 'strangler status': (spec, service, phase) -> a dict
# merged into the service's row (a "warnings" list in it is printed under the table).
status_fields: list[Callable[[Any, str, Any], dict[str, Any] | None]] = []


def _status_rows(s: Any) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(s.spec.services):
        st = s.journal.state(name)
        hist = s.journal.history(name, limit=1)
        last: Entry | None = hist[-1] if hist else None
        dangling = s.journal.dangling(name)
        verdicts = [s.journal.last(name, "verify", status=v) for v in ("passed", "failed")]
        verified = max((e for e in verdicts if e), key=lambda e: e.id, default=None)
        rows.append(
            {
                "service": name,
                "strategy": s.spec.services[name].strategy,
                "phase": st.phase,
                "weight": st.weight,
                "last_step": last.step if last else None,
                "last_status": (last.status or last.kind) if last else None,
                "last_at": last.at.isoformat() if last else None,
                "last_age": _age(last.at) if last else None,
                "last_verification": (
                    {
                        "status": verified.status,
                        "at": verified.at.isoformat(),
                        "age": _age(verified.at),
                    }
                    if verified
                    else None
                ),
                "incomplete_steps": [
                    {"step": e.step, "at": e.at.isoformat(), "operator": e.operator}
                    for e in dangling
                ],
            }
        )
        for add in status_fields:
            rows[-1].update(add(s.spec, name, st.phase) or {})
    return rows


@app.command()
def status(file: SpecOpt = None, output: OutputOpt = Output.text) -> None:
    """Every service: phase, traffic weight, last step and its age."""
    with session(file) as s:
        rows = _status_rows(s)

    def render() -> None:
        table = Table(header_style="bold")
        for col in ("service", "strategy", "phase", "weight %", "last step", "status", "age"):
            table.add_column(col)
        table.add_column("verified")
        for r in rows:
            table.add_row(
                r["service"],
                r["strategy"],
                r["phase"],
                f"{r['weight']:g}",
                r["last_step"] or "-",
                r["last_status"] or "-",
                r["last_age"] or "-",
                f"{r['last_verification']['status']} {r['last_verification']['age']}"
                if r["last_verification"]
                else "never",
            )
        console.print(table)
        for r in rows:
            if r.get("sync"):
                sync = r["sync"]
                console.print(
                    f"{r['service']}: {sync['direction']} sync "
                    + (
                        f"error: {sync['error']}"
                        if "error" in sync
                        else f"slot {sync['slot']} · lag {sync['lag_bytes']} bytes · WAL "
                        f"retained {sync['retained_wal_bytes']} bytes"
                    )
                )
            for w in r.get("warnings", []):
                err_console.print(f"[yellow]warning:[/] {r['service']}: {w}")
            for e in r["incomplete_steps"]:
                err_console.print(
                    f"[red]{r['service']}: step {e['step']!r} began {e['at']} by {e['operator']} "
                    "and never finished[/] (see 'strangler history')"
                )

    emit(output, {"services": rows}, render)


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

    def render() -> None:
        table = Table(header_style="bold")
        for col in ("#", "at (UTC)", "operator", "step", "kind", "status", "reason / details"):
            table.add_column(col, overflow="fold")
        for e in entries:
            info = e.reason or ""
            if e.details:
                shown = {k: v for k, v in e.details.items() if k not in ("pid", "host")}
                info = (info + " " if info else "") + json.dumps(shown, default=str)[:200]
            table.add_row(
                str(e.id),
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.operator,
                e.step,
                e.kind,
                e.status or "",
                info,
            )
        console.print(table)

    emit(output, {"service": service, "entries": [e.to_dict() for e in entries]}, render)


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
