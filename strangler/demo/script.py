"""The demo's script: the runbook, act by act, as far as strangler has built it.

Each capability adds its act to :data:`ACTS` (one module per act, ``act_*.py``). An act
prints what it does and returns facts for the summary; a failing act stops the demo with
its error, like a failing runbook step would.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from strangler.demo.act_copy import act_copy
from strangler.demo.act_decommission import act_decommission
from strangler.demo.act_plan import act_plan
from strangler.demo.act_preflight import act_preflight
from strangler.demo.act_sync import act_cutover, act_load, act_sync
from strangler.demo.act_traffic import act_traffic
from strangler.demo.act_verify import act_verify
from strangler.demo.world import SERVICE, DemoOptions, World, demo_world

__all__ = ["ACTS", "run_demo"]

Act = Callable[[World], None]

# In runbook order. Later capabilities insert their acts where they belong.
ACTS: list[tuple[str, Act]] = [
    ("plan", act_plan),
    ("preflight", act_preflight),
    ("write load", act_load),
    ("copy", act_copy),
    ("sync", act_sync),
    ("verify", act_verify),
    ("cutover", act_cutover),
    ("traffic", act_traffic),
    ("decommission", act_decommission),
]


def _strangler() -> str:
    """How this shell can run strangler: the console script if it is on PATH, else this
    Python with ``-m strangler`` (``make demo`` does not put .venv/bin on PATH)."""
    found = shutil.which("strangler")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return "strangler"
    exe = Path(sys.executable)
    return shlex.quote(str(exe)) + " -m strangler"


def explore(world: World) -> list[str]:
    """The demo's ending: commands that work as printed, in a shell, after the demo."""
    spec = shlex.quote(str(world.spec_path))
    env = shlex.quote(str(world.spec_path.parent / "env"))
    run = f"{_strangler()} "
    report = shlex.quote(str(world.spec_path.parent / "report"))
    lines = [
        "explore (the journal stays; 'strangler demo --keep' leaves the servers running too):",
        f"  set -a; . {env}; set +a",
        f"  {run}history {SERVICE} -f {spec}",
        f"  {run}describe {SERVICE} -f {spec}",
        f"  {run}report {SERVICE} -f {spec} --out {report}",
        f"  {run}dashboard -f {spec}          # http://127.0.0.1:8484/, Ctrl-C to stop",
    ]
    return lines


def run_demo(options: DemoOptions, console: Console | None = None) -> World:
    console = console or Console(highlight=False)
    console.print(
        Panel.fit(
            "strangler demo: carve order_service out of a sample monolith\n"
            f"scale {options.scale:,} orders · strategy {options.strategy} · "
            f"folder {options.directory}",
            style="bold",
        )
    )
    with demo_world(options, console) as world:
        table = Table(title="the sample monolith (public)", header_style="bold")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, rows in world.counts.items():
            table.add_row(name, f"{rows:,}")
        if world.counts:
            console.print(table)
        for name, act in ACTS:
            console.rule(f"[bold]{name}")
            act(world)
        console.rule("[bold green]demo complete")
        console.print(f"spec: {world.spec_path}")
        for line in explore(world):
            console.print(line, markup=False, highlight=False)
    return world
