"""Check verdicts as a table for people (the CLI and the demo share it)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from strangler.checks.base import CheckResult, Verdict

__all__ = ["render_results"]

_MARK = {
    Verdict.PASS: "[green]✓ pass[/]",
    Verdict.FAIL: "[red]✗ fail[/]",
    Verdict.WARN: "[yellow]! warn[/]",
    Verdict.ATTESTED: "[cyan]✓ attested[/]",
    Verdict.SKIPPED: "[dim]- skipped[/]",
}


def render_results(console: Console, title: str, results: Sequence[CheckResult]) -> None:
    table = Table(title=title, header_style="bold", box=None, padding=(0, 2))
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("evidence")
    for r in results:
        name = r.name if r.required else f"{r.name} [dim](info)[/]"
        table.add_row(name, _MARK[r.verdict], r.message)
    console.print(table)
