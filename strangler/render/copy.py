"""The summary of a copy (``strangler copy`` and the demo)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from strangler.steps.copy import CopyResult

__all__ = ["render_copy"]


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
