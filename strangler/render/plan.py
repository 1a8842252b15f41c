"""``strangler plan`` and ``--dry-run`` for people: the steps' own plan objects, drawn."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from strangler.render.copy import render_move_plan
from strangler.steps.create_schema import BoundaryReport
from strangler.steps.move import MoveReport
from strangler.steps.sync import SyncMechanism
from strangler.steps.types import ServicePlan, StepPlan

__all__ = ["render_boundary", "render_plan", "render_step_plan", "render_sync"]


def render_boundary(console: Console, report: BoundaryReport) -> None:
    if report.error:
        console.print(f"  [yellow]boundary:[/] not analysed: {report.error}")
        return
    refs = report.references
    console.print(
        f"  [bold]boundary[/]: {len(refs)} reference(s) cross it "
        f"(foreign keys leaving: {report.foreign_keys_leaving})"
    )
    if refs and console.width < 140:
        for r in refs:
            colour = "red" if r["action"] in ("cannot carry", "breaks") else "cyan"
            console.print(
                f"   · {r['kind']}: {r['from']} → {r['to']} "
                f"[{colour}]\\[{r['action']}][/]{_sure(r)}\n       {r['breaks']}"
            )
    elif refs:
        table = Table(header_style="bold", box=None, padding=(0, 2))
        table.add_column("kind", no_wrap=True)
        table.add_column("from", overflow="fold", min_width=12)
        table.add_column("to", overflow="fold", min_width=12)
        table.add_column("action", no_wrap=True)
        table.add_column("what will break", overflow="fold", ratio=1)
        for r in refs:
            style = "red" if r["action"] in ("cannot carry", "breaks") else ""
            action = f"[{style}]{r['action']}[/]" if style else r["action"]
            table.add_row(r["kind"], r["from"], r["to"], action + _sure(r), r["breaks"])
        console.print(table)
    for e in report.extensions:
        console.print(
            f"   · extension {e['extension']}: monolith {e['monolith']}; target {e['target']}",
            markup=False,
        )
    for w in report.warnings:
        console.print(f"  [yellow]warning:[/] {w}")


def _sure(ref: dict[str, str]) -> str:
    """How sure a finding in code is, when it is less than the catalogs' word."""
    sure = ref.get("certainty", "certain")
    return "" if sure == "certain" else f" ({sure})"


def render_sync(console: Console, sync: SyncMechanism) -> None:
    console.print(f"  [bold]sync[/]: {sync.mechanism}")
    console.print(f"   · why: {sync.why}")
    if sync.native:
        console.print(f"   · native publication/subscription: {sync.native}")
    for key, value in (
        ("slots", sync.slots),
        ("limits", sync.limits),
        ("monolith", sync.monolith),
        ("partitions", sync.partitions),
    ):
        if value:
            console.print(f"   · {key}: {value}")
    for w in sync.warnings:
        console.print(f"  [yellow]warning:[/] {w}")


def render_move_report(console: Console, report: MoveReport) -> None:
    if report.error:
        console.print(f"  [red]move:[/] cannot be done: {report.error}", highlight=False)
    elif report.moved:
        console.print("  [bold]move[/]: done; the compatibility views stand in the monolith")
    elif report.plan is not None:
        console.print("  [bold]move[/]: what moves, and what the monolith will see")
        render_move_plan(console, report.plan)


def _render_section(console: Console, name: str, section: Any) -> None:
    if isinstance(section, BoundaryReport):
        render_boundary(console, section)
    elif isinstance(section, MoveReport):
        render_move_report(console, section)
    elif isinstance(section, SyncMechanism):
        render_sync(console, section)
    elif isinstance(section, dict):
        console.print(f"  [bold]{name}[/]:")
        for key, value in section.items():
            console.print(f"   · {key}: {value}", markup=False)
    else:
        console.print(f"  {name}: {section}", markup=False)


def render_plan(console: Console, plan: ServicePlan) -> None:
    console.print(f"[bold]{plan.service}[/] ({plan.strategy}), now [cyan]{plan.phase}[/]")
    console.print(f"  from {plan.source}\n  to   {plan.target}")
    console.print(f"  tables: {', '.join(plan.tables)}")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("")
    table.add_column("step")
    table.add_column("to phase")
    table.add_column("what")
    for st in plan.steps:
        table.add_row("[green]✓[/]" if st.done else "·", st.action, st.target, st.summary)
    console.print(table)
    for w in plan.warnings:
        console.print(f"  [yellow]warning:[/] {w}")
    for name, section in plan.sections.items():
        _render_section(console, name, section)


def render_step_plan(console: Console, plan: StepPlan) -> None:
    """One step's plan: what it would do, where, and what it requires."""
    console.print(f"[bold]{plan.action}[/] ({plan.source} → {plan.target}): {plan.summary}")
    for i, op in enumerate(plan.operations, 1):
        console.print(f"  {i}. [{op.where}] {op.what}", markup=False)
    for req in plan.requires:
        console.print(f"  requires: {req}", markup=False)
