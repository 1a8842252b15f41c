"""Help pages drawn with string work instead of typer's rich formatter (issue 16, start-up).

typer draws ``--help`` through ``typer.rich_utils``, which imports rich's Markdown (and with it
markdown-it), its traceback and pretty-printer, then lays the panels out with rich's layout
engine: measured on this machine, about 100 ms of imports and 150 ms of layout in a 500 ms
``strangler --help``. People read help far more often than any other output, so it gets the
same panels (usage, text, Arguments, Options, and the commands in their workflow panels)
from this module, which needs nothing but the standard library and the click objects typer
already built.

It also keeps what rich's layout lost: an indented block of a docstring (the Examples) stays
indented line by line, and a command's one-line summary is its first paragraph on one line.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Iterable, Iterator
from typing import Any

# Help is easiest to read at most this wide, as typer's own panels are.
MAX_WIDTH = 100


def width() -> int:
    """The terminal's width ($COLUMNS first, 80 when not a terminal), capped at MAX_WIDTH."""
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, MAX_WIDTH))


def _paragraphs(text: str) -> Iterator[list[str]]:
    block: list[str] = []
    for line in text.splitlines():
        if line.strip() in ("", "\b"):
            if block:
                yield block
            block = []
        else:
            block.append(line.rstrip())
    if block:
        yield block


def prose(text: str, wide: int, indent: str = " ") -> list[str]:
    """A docstring as lines: plain lines joined and wrapped, indented lines kept as written.

    An indented line is an example or a list someone laid out by hand; rewrapping it would
    merge two commands into one line."""
    out: list[str] = []
    for block in _paragraphs(text):
        if out:
            out.append("")
        run: list[str] = []
        for line in [*block, ""]:
            if line and not line[0].isspace():
                run.append(line.strip())
                continue
            if run:
                joined = " ".join(run)
                out += [indent + x for x in textwrap.wrap(joined, wide - len(indent) - 1)]
                run = []
            if line:
                out.append(indent + line)
    return out


def summary(command: Any) -> str:
    """A command's one-line summary: its short help, else its help's first paragraph."""
    if getattr(command, "short_help", None):
        return str(command.short_help)
    first = next(_paragraphs(command.help or ""), [])
    return " ".join(line.strip() for line in first)


def panel(
    title: str, rows: list[tuple[str, ...]], wide: int, lead: list[int] | None = None
) -> list[str]:
    """A titled box of rows; the last column wraps, the others are padded to their widest
    (or to ``lead``, so that several panels line up)."""
    if not rows:
        return []
    inner = wide - 4  # "│ " and " │"
    lead = lead or columns(rows)
    used = sum(w + 2 for w in lead if w)
    # Too narrow for the text beside the names: it goes below them, indented, as man does.
    below = inner - used < 24
    room = inner - 4 if below else inner - used
    lines = ["╭─ " + title + " " + "─" * max(0, wide - len(title) - 5) + "╮"]
    for row in rows:
        head = "".join(cell.ljust(w) + "  " for cell, w in zip(row, lead, strict=False) if w)
        text = textwrap.wrap(row[-1], room, break_on_hyphens=False) or [""]
        if below:
            lines.append("│ " + head.rstrip()[:inner].ljust(inner) + " │")
            lines += ["│ " + ("    " + part).ljust(inner) + " │" for part in text if part]
            continue
        for i, part in enumerate(text):
            left = head if i == 0 else " " * len(head)
            lines.append("│ " + (left + part).ljust(inner) + " │")
    lines.append("╰" + "─" * (wide - 2) + "╯")
    return lines


def columns(rows: Iterable[tuple[str, ...]]) -> list[int]:
    """The width of every column but the last (the one that wraps) over ``rows``."""
    lead: list[int] = []
    for row in rows:
        lead = [max(a, len(b)) for a, b in zip(lead or [0] * (len(row) - 1), row, strict=False)]
    return lead


def _default(param: Any, ctx: Any) -> str:
    # typer's own reading of a default (enums by value, flags by their name), as its panels.
    value = param._extract_default_help_str(ctx=ctx)
    as_str = isinstance(param.show_default, str)
    if not as_str and (value is None or not (param.show_default or ctx.show_default)):
        return ""
    return str(param._get_default_string(ctx=ctx, show_default_is_str=as_str, default_value=value))


def _param_rows(params: Iterable[Any], ctx: Any) -> dict[str, list[tuple[str, ...]]]:
    """Arguments and options grouped by panel: required mark, long names, short names, the
    type (none for a flag: issue 14), then the help with its default and env var."""
    panels: dict[str, list[tuple[str, ...]]] = {}
    for param in params:
        if getattr(param, "hidden", False):
            continue
        is_arg = param.param_type_name == "argument"
        title = getattr(param, "rich_help_panel", None) or ("Arguments" if is_arg else "Options")
        longs = [o for o in param.opts if o.startswith("--")]
        shorts = [o for o in param.opts if not o.startswith("--")]
        if is_arg:
            shorts = [str(param.display_name_raw)]
        names = ",".join(longs)
        if param.secondary_opts:
            names += "/" + ",".join(param.secondary_opts)
        kind = param.display_type_rich(ctx=ctx) or ""
        extras = [" ".join((getattr(param, "help", None) or "").split())]
        if param.envvar and getattr(param, "show_envvar", False):
            extras.append(f"[env var: {param.envvar}]")
        default = _default(param, ctx)
        if default:
            extras.append(f"[default: {default}]")
        if param.required:
            extras.append("[required]")
        mark = "*" if param.required else ""
        row = (mark, names, ",".join(shorts), kind, " ".join(x for x in extras if x))
        panels.setdefault(title, []).append(row)
    return panels


def render(command: Any, ctx: Any) -> str:
    """The whole help page of a command or group, as typer's rich panels lay it out."""
    wide = width()
    # typer writes a required argument as {service}; people and man pages write SERVICE.
    pieces = [
        re.sub(r"\{(\w+)\}", lambda m: m[1].upper(), p) for p in command.collect_usage_pieces(ctx)
    ]
    usage = " ".join([ctx.command_path, *pieces])
    lines = ["", " Usage: " + usage, ""]
    if command.help:
        lines += prose(command.help, wide)
        lines.append("")
    for title, rows in _param_rows(command.get_params(ctx), ctx).items():
        lines += panel(title, rows, wide)
    if hasattr(command, "list_commands"):
        groups: dict[str, list[tuple[str, ...]]] = {}
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            title = getattr(sub, "rich_help_panel", None) or "Commands"
            groups.setdefault(title, []).append((name, summary(sub)))
        lead = columns(row for rows in groups.values() for row in rows)
        for title, rows in groups.items():
            lines += panel(title, rows, wide, lead)
    if command.epilog:
        lines += ["", *prose(command.epilog, wide)]
    return "\n".join(lines) + "\n"
