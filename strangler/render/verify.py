"""The rich view of a verification: shared by ``strangler verify`` and the demo."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from strangler.verify.report import VerifyReport

__all__ = ["render_report"]


def render_report(report: VerifyReport, show: int, console: Console) -> None:
    """The rich view: one line per table, then the first ``show`` differing rows of each."""
    table = Table(header_style="bold", title=f"verify {report.service} ({report.mode})")
    for col in ("table", "method", "source rows", "target rows", "missing", "extra", "changed"):
        table.add_column(col, justify="right" if "rows" in col or col[0] in "mec" else "left")
    table.add_column("result")
    for t in report.tables:
        c = t.counts()
        table.add_row(
            t.source,
            t.method + (" [yellow](weaker)[/]" if t.weaker else ""),
            f"{t.source_rows:,}",
            f"{t.target_rows:,}",
            str(c["missing"]),
            str(c["extra"]),
            str(c["changed"]),
            "[green]passed[/]" if t.passed else "[red]failed[/]",
        )
    console.print(table)
    for t in report.tables:
        for problem in t.problems:
            console.print(f"[red]{t.source}:[/] {problem}")
        for r in t.rows[:show]:
            cols = f"  columns: {', '.join(r.columns)}" if r.columns else ""
            console.print(f"  {t.source} {r.kind:8} {r.key_text()}{cols}")
        if len(t.rows) > show:
            console.print(f"  … {len(t.rows) - show} more rows (all of them with --output json)")
        for ch in t.differing_chunks[:show]:
            console.print(
                f"  {t.source} key range [{ch.low}, {ch.high}) differs: "
                f"{ch.source_rows} source rows, {ch.target_rows} target rows"
            )
    if report.passed:
        console.print(f"[green]{report.service}: the copy is identical[/] ({report.seconds:.1f}s)")
    else:
        console.print(f"[bold red]{report.service}: differences found: DO NOT proceed with cutover")
