"""strangler's command line. Exit codes are mapped here and only here:

0 success · 1 a check, gate or verification failed · 2 bad input · 3 an external system
could not be reached · 75 ``strangler run`` is waiting (call it again later) · 70 an
internal error (a bug) · 130 interrupted.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys

from strangler.cli.app import app, err_console
from strangler.errors import StranglerError, translate
from strangler.secrets import scrub

__all__ = ["COMMANDS", "app", "load_commands", "main"]

# The module that registers each command on the app, written out so that running one command
# imports (and has typer build) that command's module only; help, completion and an unknown
# name load them all. tests/test_cli.py keeps this equal to what the modules register.
COMMANDS = {
    "init": "core",
    "schema": "core",
    "plan": "core",
    "status": "core",
    "describe": "core",
    "history": "core",
    "resolve": "core",
    "completion": "core",
    "preflight": "checks",
    "attest": "checks",
    "validate": "checks",
    "alarms": "checks",
    "run": "run",
    "copy": "copy",
    "move": "copy",
    "worker": "bulk",
    "throttle": "bulk",
    "k8s": "bulk",
    "decoder": "bulk",
    "sync": "sync",
    "cutover": "sync",
    "verify": "verify",
    "shift": "traffic",
    "decommission": "decommission",
    "report": "report",
    "dashboard": "dashboard",
    "rollback": "rollback",
    "demo": "demo",
}


def load_commands(args: list[str] | None = None) -> None:
    """Register the commands ``args`` runs (all of them when ``args`` is None, asks for the
    top-level help, or names no known command). Importing a command module registers it."""
    name = next((a for a in args or [] if not a.startswith("-")), None)
    wanted = [COMMANDS[name]] if name in COMMANDS else sorted(set(COMMANDS.values()))
    for module in wanted:
        importlib.import_module(f"strangler.cli.{module}")


def _wants_json(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("--output=json", "-o=json"):
            return True
        if arg in ("--output", "-o") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
    return False


def _note_escape(exc: BaseException, args: list[str]) -> None:
    """Tests set ``STRANGLER_ESCAPES`` to a file: every foreign exception that got this far
    (instead of being converted where it entered) is written there, so a test can fail on it
    even when the command line still printed a clean error."""
    log = os.environ.get("STRANGLER_ESCAPES")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{type(exc).__module__}.{type(exc).__name__}: {scrub(' '.join(args))}\n")


def _report(exc: StranglerError, args: list[str]) -> int:
    if _wants_json(args):
        sys.stdout.write(scrub(json.dumps(exc.to_dict(), indent=2)) + "\n")
    err_console.print(f"[bold red]error:[/] {scrub(exc.message)}", markup=True, highlight=False)
    if exc.hint:
        err_console.print(f"  [bold]hint:[/] {scrub(exc.hint)}")
    return exc.exit_code


# What a second run of an interrupted command does, for the Ctrl-C message (issue 14).
_RESUMES = {
    "copy": "finished chunks are kept and skipped",
    "sync": "it applies from the position stored with the rows",
    "verify": "verification starts again; nothing was changed",
    "run": "it continues from the journal",
    "shift": "a bake resumes where it was",
    "cutover": "it resumes or refuses from the journal",
    "decommission": "it resumes from the journal (an archive already written is kept)",
    "demo": "the demo starts afresh",
}


def _resume_hint(args: list[str]) -> str:
    command = next((a for a in args if not a.startswith("-")), "")
    again = "strangler " + " ".join(shlex.quote(scrub(a)) for a in args)
    if command in _RESUMES:
        return f"Run '{again}' again to continue ({_RESUMES[command]})."
    return f"Nothing is half-done that the journal does not show; run '{again}' again if needed."


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "_STRANGLER_COMPLETE" in os.environ:
        # The shell asks for completions ('strangler completion bash' wrote the hook).
        from typer._completion_classes import completion_init

        completion_init()
        load_commands()
    else:
        load_commands(args)
    try:
        # Standalone mode: click/typer handle usage errors (exit 2) and --help themselves and
        # end with SystemExit; our own errors pass through to be mapped below.
        app(args=args, prog_name="strangler", standalone_mode=True)
    except SystemExit as done:
        code = done.code
        if code == 130:  # click turned a Ctrl-C into exit 130: say how to go on
            err_console.print(f"interrupted. {_resume_hint(args)}", markup=False, highlight=False)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except StranglerError as exc:
        return _report(exc, args)
    except KeyboardInterrupt:
        err_console.print(f"interrupted. {_resume_hint(args)}", markup=False, highlight=False)
        return 130
    except Exception as exc:
        _note_escape(exc, args)
        try:
            with translate("strangler"):
                raise exc
        except StranglerError as known:
            return _report(known, args)
        except Exception:
            pass  # not a kind translate knows: a bug, said below
        # Everything strangler expects is a StranglerError by now (converted where it
        # entered); anything else is a bug, said plainly rather than as a traceback.
        if os.environ.get("STRANGLER_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {scrub(str(exc))}",
            markup=True,
            highlight=False,
        )
        err_console.print(
            "  this is a bug in strangler; STRANGLER_DEBUG=1 shows the traceback. Nothing "
            "was half-done that the journal does not show: 'strangler status' says where "
            "things stand."
        )
        return 70
    return 0
