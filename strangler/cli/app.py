"""The typer application and what every command shares: options, context, output.

Commands live in sibling modules (``core.py``, ``demo.py``, …) that import :data:`app` and
register themselves; :mod:`strangler.cli` imports them all. Commands only parse arguments
and render results; the work happens in the library.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from strangler.journal import Journal
from strangler.secrets import scrub
from strangler.spec import Spec, find_spec_file, load_spec
from strangler.steps.runbook import Runbook

__all__ = [
    "DryRunOpt",
    "ForceOpt",
    "OperatorOpt",
    "Output",
    "OutputOpt",
    "ReasonOpt",
    "Session",
    "SpecOpt",
    "YesOpt",
    "app",
    "console",
    "emit",
    "err_console",
    "session",
]

app = typer.Typer(
    name="strangler",
    help="Carve services out of a PostgreSQL monolith: extract, sync, verify, cut over, shift "
    "traffic and decommission, from one declarative spec, with evidence at every step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    text = "text"
    json = "json"


SpecOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Spec file. Default: $STRANGLER_SPEC, else ./strangler.yaml.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for programs.")
]
OperatorOpt = Annotated[
    str | None,
    typer.Option("--operator", help="Who is acting, for the journal. Default: the login name."),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Override a refusal of the phase rules or evidence (needs --reason)."
    ),
]
ReasonOpt = Annotated[str | None, typer.Option(help="Why; journaled.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print exactly what would be done; change nothing.")
]


@dataclass
class Session:
    spec: Spec
    journal: Journal

    def runbook(self, service: str) -> Runbook:
        return Runbook(self.spec, self.journal, service)


@contextmanager
def session(file: Path | None, operator: str | None = None, command: str = "") -> Iterator[Session]:
    """Load the spec and open its journal for one command."""
    spec = load_spec(find_spec_file(file))
    cmd = command or "strangler " + " ".join(scrub(a) for a in sys.argv[1:])
    journal = Journal(spec.state_url(), operator=operator, command=cmd)
    try:
        yield Session(spec, journal)
    finally:
        journal.close()


def emit(output: Output, data: Any, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` to draw it for a person."""
    if output is Output.json:
        sys.stdout.write(scrub(json.dumps(data, indent=2, default=str)) + "\n")
        sys.stdout.flush()
    else:
        render()
