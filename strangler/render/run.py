"""``strangler run`` for people: the steps taken, then what it waits for or why it failed."""

from __future__ import annotations

from rich.console import Console

from strangler.steps.run import RunResult

__all__ = ["render_run"]


def render_run(out: Console, result: RunResult) -> None:
    # The steps taken were said as they happened (RunOptions.say); this is where it ended.
    if result.status == "done":
        out.print(f"{result.service}: [green]done[/], now [cyan]{result.phase}[/]")
    elif result.status == "waiting" and result.waiting is not None:
        w = result.waiting
        when = f" until {w.until:%Y-%m-%d %H:%M:%S} UTC" if w.until else ""
        out.print(f"{result.service}: [yellow]waiting[/] ({w.reason}{when}) at {result.phase}")
        out.print(f"  {w.message}", markup=False)
        if w.command:
            out.print(f"  next: {w.command}", markup=False)
        out.print("  run 'strangler run' again later (it continues from the journal)")
    elif result.error is not None:
        out.print(f"{result.service}: [red]failed[/] at {result.phase}: {result.error.message}")
        if result.error.hint:
            out.print(f"  hint: {result.error.hint}", markup=False)
