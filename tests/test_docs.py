"""The README documents every command, as sqlite-utils' test_docs does for its CLI."""

from __future__ import annotations

import re
from pathlib import Path

from strangler.cli import app, load_commands

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands() -> list[str]:
    import typer.main

    load_commands()
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_every_command_is_in_the_readme_commands_table() -> None:
    documented = set(re.findall(r"^\| `strangler ([a-z][a-z0-9]*)", README, flags=re.M))
    missing = [c for c in _commands() if c not in documented]
    assert not missing, f"commands without a row in README.md's table: {missing}"


def test_quick_start_has_exactly_the_two_commands_ci_runs() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci
