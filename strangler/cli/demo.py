"""``strangler demo``: the whole runbook, as far as it is built, on embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strangler.cli.app import MORE, app, console


@app.command(rich_help_panel=MORE)
def demo(
    scale: Annotated[int, typer.Option(help="Orders in the sample monolith.", min=100)] = 100_000,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its servers and spec.")
    ] = Path(".strangler/demo"),
    strategy: Annotated[str, typer.Option(help="copy or online.")] = "online",
    faulty: Annotated[
        bool, typer.Option("--faulty", help="Make the new service fail at 20 % traffic.")
    ] = False,
    fast_forward: Annotated[
        bool,
        typer.Option(
            "--fast-forward/--no-fast-forward",
            help="Move the journal's clock over the weeks decommission waits, to show it.",
        ),
    ] = True,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the servers running.")] = False,
) -> None:
    """Rehearse the runbook end to end on two embedded PostgreSQL servers.

    Examples:
      strangler demo
      strangler demo --scale 1000000 --keep
      strangler demo --faulty    # the service fails at 20 %, the gates roll it back
    """
    from strangler.demo.script import run_demo
    from strangler.demo.world import DemoOptions

    if strategy not in ("copy", "online"):
        raise typer.BadParameter("strategy must be copy or online", param_hint="--strategy")
    run_demo(
        DemoOptions(
            directory=directory,
            scale=scale,
            strategy=strategy,
            faulty=faulty,
            fast_forward=fast_forward,
            keep=keep,
        ),
        console,
    )
