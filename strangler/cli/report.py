"""``strangler report SERVICE``: the evidence bundle for the change ticket and the post-mortem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strangler.cli.app import OBSERVE, Output, OutputOpt, SpecOpt, app, console, emit, session


@app.command(rich_help_panel=OBSERVE)
def report(
    service: Annotated[str, typer.Argument(help="The service.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write to. Default: ./strangler-report-SERVICE."),
    ] = None,
    inspect: Annotated[
        bool,
        typer.Option(
            "--inspect/--no-inspect", help="Read the catalogs for the plan's boundary findings."
        ),
    ] = True,
    file: SpecOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Write the migration's evidence bundle: Markdown, HTML with charts, sha256 manifest.

    report.md for the ticket, report.html with charts (self-contained: opens without
    network), evidence.json, and MANIFEST.sha256.

    Everything comes from the journal: plan and boundary findings, checklists and
    attestations, copy figures, every verification, sync lag over time, the write cutover
    window, each traffic step with its bake and gate verdicts, rollbacks and their reasons,
    decommission evidence (archive sha256, drops), and who did what when. Read-only.

    Examples:
      strangler report order_service
      strangler report order_service --out /tmp/CHG-1234 -o json
      sha256sum -c strangler-report-order_service/MANIFEST.sha256
    """
    from strangler.render.bundle import write_bundle  # plotly loads only for a report
    from strangler.steps.evidence import evidence

    with session(file) as s:
        ev = evidence(s.spec, s.journal, service, inspect=inspect)
    bundle = write_bundle(ev, out or Path(f"strangler-report-{service}"))

    def render() -> None:
        console.print(f"wrote the evidence of {service} to {bundle.directory}/", markup=False)
        for name, digest in bundle.files.items():
            console.print(f"  {name:14} sha256 {digest}", markup=False)
        console.print(
            f"  MANIFEST.sha256 sha256 {bundle.manifest_sha256} (put this in the ticket)",
            markup=False,
        )

    emit(output, {"service": service, **bundle.to_dict()}, render)
