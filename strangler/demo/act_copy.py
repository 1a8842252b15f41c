"""Demo act: create order_service's schema and role, copy its tables, check the counts."""

from __future__ import annotations

from strangler.demo.world import World
from strangler.pg.extract import copy_service
from strangler.pg.plan_boundary import boundary_section
from strangler.pg.progress import RichCopyProgress
from strangler.phases import Phase
from strangler.runbook import Runbook

__all__ = ["act_copy"]


def act_copy(world: World) -> None:
    # Imported here: the CLI module imports the demo script, not the other way round.
    from strangler.cli.copy import render_result

    spec = world.spec
    found = boundary_section(spec, "order_service", Phase.PLANNED)
    if found is not None:
        found[1].render(world.console)
    with world.journal("strangler copy order_service") as journal:
        rb = Runbook(spec, journal, "order_service")
        world.console.print(
            "runbook pattern 2: a new instance; schema, types, role with least privilege, then "
            "rows from one snapshot by binary COPY, then keys, indexes and foreign keys"
        )
        with RichCopyProgress(world.console) as progress:
            result = copy_service(rb, jobs=2, progress=progress)
            progress.finish()
        render_result(world.console, result)
    world.facts["copied_rows"] = sum(t["target_rows"] for t in result["tables"].values())
    world.facts["copy_snapshot"] = result["snapshot"]
