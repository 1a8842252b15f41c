"""The ``boundary`` section of ``strangler plan``: what crosses the service boundary.

Planning stays read-only: one short read of the monolith's catalog. When the monolith cannot
be reached the section says so instead of failing the whole plan (the plan of a spec is
useful before the database exists).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from strangler.errors import StranglerError
from strangler.pg.connect import connect
from strangler.pg.schema.boundary import analyze
from strangler.pg.schema.catalog import read_catalog
from strangler.phases import Phase
from strangler.plan import register_section
from strangler.spec import Spec

__all__ = ["BoundarySection", "boundary_section"]


class BoundarySection(dict[str, Any]):
    """A plain dict for ``--output json``, with a rich rendering for people."""

    def render(self, console: Console) -> None:
        if self.get("error"):
            console.print(f"  [yellow]boundary:[/] not analysed: {self['error']}")
            return
        refs = self.get("references", [])
        console.print(
            f"  [bold]boundary[/]: {len(refs)} reference(s) cross it "
            f"(foreign keys leaving: {self.get('foreign_keys_leaving')})"
        )
        if refs and console.width < 140:
            for r in refs:
                colour = "red" if r["action"] == "cannot carry" else "cyan"
                console.print(
                    f"   · {r['kind']}: {r['from']} → {r['to']} "
                    f"[{colour}]\\[{r['action']}][/]\n       {r['breaks']}"
                )
        elif refs:
            table = Table(header_style="bold", box=None, padding=(0, 2))
            table.add_column("kind", no_wrap=True)
            table.add_column("from", overflow="fold", min_width=12)
            table.add_column("to", overflow="fold", min_width=12)
            table.add_column("action", no_wrap=True)
            table.add_column("what will break", overflow="fold", ratio=1)
            for r in refs:
                style = "red" if r["action"] == "cannot carry" else ""
                table.add_row(
                    r["kind"], r["from"], r["to"], f"[{style}]{r['action']}[/]" if style
                    else r["action"], r["breaks"],
                )  # fmt: skip
            console.print(table)
        for w in self.get("warnings", []):
            console.print(f"  [yellow]warning:[/] {w}")


@register_section
def boundary_section(spec: Spec, service: str, phase: Phase) -> tuple[str, Any] | None:
    svc = spec.service(service)
    section = BoundarySection(foreign_keys_leaving=svc.foreign_keys.leaving)
    try:
        with connect(spec.source.dsn, role="monolith", connect_timeout=5) as conn:
            catalog = read_catalog(conn, spec.source.schema_, list(svc.tables))
            found = analyze(conn, catalog, svc, same_instance=svc.target.dsn is None)
    except StranglerError as exc:
        section["error"] = exc.message
        return "boundary", section
    section["references"] = [r.to_dict() for r in found.references]
    section["blocking"] = len(found.blocking)
    section["warnings"] = list(found.warnings)
    section["tables_without_primary_key"] = [
        t.name for t in catalog.tables if t.has_data and t.primary_key is None
    ]
    return "boundary", section
