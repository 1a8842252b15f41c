"""The typer application and what every command shares: options, context, output.

Commands live in sibling modules (``core.py``, ``demo.py``, …) that import :data:`app` and
register themselves; :mod:`strangler.cli` imports them all. Commands only parse arguments
and render results; the work happens in the library.

Start-up (issue 16): ``strangler --help`` builds every command's options, so what a command
module imports at its top is paid by every command. These modules import only typer, rich's
console and the small modules below; the library (spec and pydantic, journal and psycopg,
steps, renderers) is imported inside the command that uses it. ``tests/test_startup.py``
fails when ``--help`` loads a heavy package again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from strangler import __version__
from strangler.errors import BadInput
from strangler.secrets import scrub

if TYPE_CHECKING:
    from strangler.journal import Journal
    from strangler.spec import Spec
    from strangler.steps.runbook import Runbook

__all__ = [
    "MIGRATE",
    "MORE",
    "OBSERVE",
    "PREPARE",
    "SPEC_FILE",
    "UNDO",
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
    "confirm",
    "console",
    "emit",
    "err_console",
    "machine",
    "plain_table",
    "session",
]

# The default spec file: strangler.spec.DEFAULT_SPEC_NAME, written here too so that the
# command line's defaults need not load the spec's models (tests/test_startup.py keeps them equal).
SPEC_FILE = "strangler.yaml"

# Help panels, in the order a migration meets them (issue 14: commands in workflow order).
PREPARE = "1. Prepare"
MIGRATE = "2. Migrate"
OBSERVE = "3. Observe"
UNDO = "4. Undo and repair"
MORE = "5. More"

# The commands in the order a migration uses them, within and across the panels above.
WORKFLOW = (
    "init", "plan", "preflight", "attest", "validate", "alarms",
    "run", "copy", "move", "worker", "k8s", "throttle", "sync", "decoder", "verify",
    "cutover", "shift", "decommission",
    "status", "describe", "history", "report", "dashboard",
    "rollback", "resolve",
    "demo", "schema", "completion",
)  # fmt: skip


class WorkflowGroup(TyperGroup):
    """Lists commands in :data:`WORKFLOW` order, not in the order modules were imported."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(WORKFLOW)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # Not typer's rich formatter: it costs half of --help's start-up (helptext.py).
        from strangler.cli.helptext import render

        formatter.write(render(self, ctx))


class Command(TyperCommand):
    """Every strangler command: its help drawn by :mod:`strangler.cli.helptext`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from strangler.cli.helptext import render

        formatter.write(render(self, ctx))


class _App(typer.Typer):
    """A typer application whose commands are :class:`Command` unless told otherwise."""

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


app = _App(
    name="strangler",
    cls=WorkflowGroup,
    help="Carve services out of a PostgreSQL monolith: extract, sync, verify, cut over, shift "
    "traffic and decommission, from one declarative spec, with evidence at every step.\n\n"
    "Start with 'strangler init', then 'strangler plan'; 'strangler run SERVICE' takes every "
    "step the evidence allows. Exit codes: 0 done, 1 a check or gate failed, 2 bad input, 3 "
    "a system unreachable, 75 waiting (call again later), 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    # typer labels a flag's type "<bool>"; a flag takes no value, so it shows none (issue 14).
    if self.is_flag and not self.count:
        return None
    return _typed(self, ctx)


_typed = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


class _Console(Console):
    """A rich console that never truncates a table's cells when its output is not a terminal.

    Piped into ``grep``, a file or a CI log, a table is printed plain: columns padded with
    spaces, every cell whole, however wide (issue 12's "output when piped")."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal or not any(isinstance(o, Table) for o in objects):
            super().print(*objects, **kwargs)
            return
        for obj in objects:
            if isinstance(obj, Table):
                self.file.write(plain_table(obj))
                self.file.flush()
            else:
                super().print(obj, **kwargs)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def plain_table(table: Table) -> str:
    """A rich Table as plain text: a header row, then one line per row, nothing cut."""
    heads = [_plain(c.header) for c in table.columns]
    cols = [[_plain(cell).replace("\n", " ") for cell in c._cells] for c in table.columns]
    rows = list(zip(*cols, strict=True)) if cols else []
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]
    lines = []
    if table.title:
        lines.append(_plain(table.title))
    if table.show_header and any(heads):
        lines.append("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


console = _Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"
    wide = "wide"


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
    Output,
    typer.Option(
        "--output",
        "-o",
        help="text for people; wide: text, every column, no width limit; json or yaml for "
        "programs (timestamps ISO-8601 UTC, durations in seconds).",
    ),
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
        from strangler.steps.runbook import Runbook

        return Runbook(self.spec, self.journal, service)


@contextmanager
def session(file: Path | None, operator: str | None = None, command: str = "") -> Iterator[Session]:
    """Load the spec and open its journal for one command."""
    from strangler.journal import Journal
    from strangler.spec import find_spec_file, load_spec

    spec = load_spec(find_spec_file(file))
    cmd = command or "strangler " + " ".join(scrub(a) for a in sys.argv[1:])
    journal = Journal(spec.state_url(), operator=operator, command=cmd)
    try:
        yield Session(spec, journal)
    finally:
        journal.close()


def emit(output: Output, data: Any, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON or YAML, or call ``render`` to draw it for a person (``wide``:
    with no width limit, so nothing is folded or cut)."""
    if output is Output.json:
        sys.stdout.write(scrub(json.dumps(data, indent=2, default=_json_default)) + "\n")
        sys.stdout.flush()
    elif output is Output.yaml:
        import yaml

        plain = json.loads(json.dumps(data, default=_json_default))
        sys.stdout.write(scrub(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)))
        sys.stdout.flush()
    elif output is Output.wide:
        width = console.width
        console.width = max(width, 1000)
        try:
            render()
        finally:
            console.width = width
    else:
        render()


def confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal before a destructive step; without one, require ``--yes`` (as
    ``shift --to`` does). Raises BadInput (exit 2, nothing changed) when the answer is no."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{question}: no terminal to ask on", hint="pass --yes to proceed")
    if not typer.confirm(question, default=False):
        raise BadInput("aborted; nothing changed")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def machine(output: Output) -> bool:
    """Whether ``output`` is for a program (JSON, YAML): progress then goes to stderr."""
    return output in (Output.json, Output.yaml)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"strangler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Carve services out of a PostgreSQL monolith."""
