"""strangler's command line. Exit codes are mapped here and only here:

0 success · 1 a check, gate or verification failed · 2 bad input · 3 an external system
could not be reached · 130 interrupted.
"""

from __future__ import annotations

import json
import sys

# Importing the command modules registers their commands on the app.
from strangler.cli import (  # noqa: F401
    checks,
    copy,
    core,
    decommission,
    demo,
    rollback,
    sync,
    traffic,
    verify,
)
from strangler.cli.app import app, err_console
from strangler.errors import StranglerError
from strangler.secrets import scrub

__all__ = ["app", "main"]


def _wants_json(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("--output=json", "-o=json"):
            return True
        if arg in ("--output", "-o") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Standalone mode: click/typer handle usage errors (exit 2) and --help themselves and
        # end with SystemExit; our own errors pass through to be mapped below.
        app(args=args, prog_name="strangler", standalone_mode=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except StranglerError as exc:
        if _wants_json(args):
            sys.stdout.write(scrub(json.dumps(exc.to_dict(), indent=2)) + "\n")
        err_console.print(f"[bold red]error:[/] {scrub(exc.message)}", markup=True, highlight=False)
        if exc.hint:
            err_console.print(f"  [bold]hint:[/] {scrub(exc.hint)}")
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0
