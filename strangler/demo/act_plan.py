"""Demo act: validate the spec and show the plan and the service's status."""

from __future__ import annotations

from rich.table import Table

from strangler.demo.world import World
from strangler.steps.plan import build_plan

__all__ = ["act_plan"]


def act_plan(world: World) -> None:
    spec = world.spec
    with world.journal() as journal:
        phase = journal.state("order_service").phase
    plan = build_plan(spec, "order_service", phase)
    world.console.print(f"source: {plan.source}")
    world.console.print(f"target: {plan.target}")
    table = Table(header_style="bold", box=None)
    table.add_column("step")
    table.add_column("to phase")
    table.add_column("what")
    for step in plan.steps:
        table.add_row(step.action, step.target, step.summary)
    world.console.print(table)
    world.facts["plan_steps"] = len(plan.steps)
