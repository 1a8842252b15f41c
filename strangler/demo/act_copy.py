"""Demo act: create order_service's schema and role, copy its tables, check the counts,
by ``strangler run --until copied``."""

from __future__ import annotations

from strangler.demo.world import SERVICE, World
from strangler.errors import CheckFailed
from strangler.phases import Phase
from strangler.render.copy import render_copy
from strangler.render.plan import render_boundary
from strangler.render.progress import RichCopyProgress
from strangler.steps.copy import CopyResult
from strangler.steps.create_schema import boundary_report
from strangler.steps.run import run
from strangler.steps.runbook import Runbook
from strangler.steps.types import RunOptions

__all__ = ["act_copy"]


def act_copy(world: World) -> None:
    spec = world.spec
    with world.journal("strangler run order_service --until copied") as journal:
        rb = Runbook(spec, journal, SERVICE)
        render_boundary(world.console, boundary_report(rb))
        world.console.print(
            "runbook pattern 2: a new instance; schema, types, role with least privilege, then "
            "rows from one snapshot by binary COPY, then keys, indexes and foreign keys"
        )
        with RichCopyProgress(world.console) as progress:
            done = run(rb, until=Phase.COPIED, options=RunOptions(copy_progress=progress))
            progress.finish()
    if done.status != "done":
        raise done.error or CheckFailed(f"the copy did not finish: {done.status}")
    result = next(s.result for s in done.steps if isinstance(s.result, CopyResult))
    render_copy(world.console, result)
    assert result.figures is not None
    world.facts["copied_rows"] = sum(c.target_rows for c in result.figures.tables.values())
    world.facts["copy_snapshot"] = result.figures.snapshot
