"""The summary of a copy (``strangler copy`` and the demo) and of a move (``strangler move``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from strangler.steps.copy import CopyResult
from strangler.steps.move import MoveStepResult

__all__ = ["render_copy", "render_move", "render_move_plan"]


def render_copy(out: Console, result: CopyResult) -> None:
    f = result.figures
    for w in f.warnings if f else result.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if f is None:
        return
    table = Table(header_style="bold", title="row counts, from the copy's snapshot")
    for col in ("table", "monolith", "service", "check"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, counts in f.tables.items():
        table.add_row(
            name,
            f"{counts.source_rows:,}",
            f"{counts.target_rows:,}",
            "[green]equal[/]" if counts.equal else "[red]DIFFERENT[/]",
        )
    out.print(table)
    out.print(
        f"snapshot {f.snapshot} · {f.chunks_copied} chunk(s) copied, "
        f"{f.chunks_skipped} skipped (already done) · formats: "
        f"{', '.join(f.formats) or '-'} · {f.statements} DDL statement(s) after the load"
    )
    if result.online is not None:
        out.print(
            f"online: replication slot {result.online.slot} exported that snapshot; changes "
            f"since {result.online.consistent_lsn} wait in it for 'strangler sync'"
        )


def render_move_plan(out: Console, plan: dict[str, Any]) -> None:
    """What moves and what the monolith will see (a :meth:`MovePlan.to_dict`)."""
    table = Table(header_style="bold", box=None, padding=(0, 2))
    for col in ("table moves", "the monolith sees", "grants on the view"):
        table.add_column(col, overflow="fold")
    for m in plan["moves"]:
        table.add_row(m["table"], m["monolith_sees"], ", ".join(m["grants"]) or "-")
    out.print(table)
    for key, what in (
        ("sequences_kept", "stay in the monolith's schema until the old path is removed"),
        ("sequences_moved", "move with their table"),
        ("sequences_shared", "stay (shared sequences the defaults draw from)"),
        ("types_staying", "stay (the monolith's types; the service's columns refer to them)"),
    ):
        if plan[key]:
            out.print(f"   · {', '.join(plan[key])}: {what}", markup=False)
    for r in plan["references"]:
        out.print(f"   · {r['kind']}: {r['from']} → {r['to']}: {r['breaks']}", markup=False)
    for w in plan["warnings"]:
        out.print(f"  [yellow]warning:[/] {w}")


def render_move(out: Console, result: MoveStepResult) -> None:
    if result.recovered:
        out.print(f"the move of {', '.join(result.tables)} had committed before a crash; recorded")
        return
    if result.plan is not None:
        render_move_plan(out, result.plan.to_dict())
    if result.result is not None:
        r = result.result
        out.print(
            f"moved {len(result.tables)} table(s) in {r.seconds:.2f}s: the tables were locked "
            f"{r.locked_seconds * 1000:.1f} ms (waited {r.lock_wait_seconds * 1000:.1f} ms for "
            f"the locks, {r.attempts} attempt(s))"
        )
