"""Spec files for tests, written to tmp_path, and the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MINIMAL = """\
version: 1
state: sqlite:///state.db
source:
  dsn: {source}
  schema: public
services:
  order_service:
    tables: [orders, order_items]
    target:
      {target_dsn}schema: order_service
    strategy: {strategy}
"""


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec; ``write_spec(text)`` or ``write_spec(source=dsn, strategy=...)``."""

    def write(
        text: str | None = None,
        *,
        source: str = "postgresql://localhost/monolith",
        target: str | None = None,
        strategy: str = "copy",
        name: str = "strangler.yaml",
    ) -> Path:
        if text is None:
            text = MINIMAL.format(
                source=json.dumps(source),
                target_dsn=f"dsn: {json.dumps(target)}\n      " if target else "",
                strategy=strategy,
            )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., CliResult]]:
    """Run ``strangler …`` in a subprocess, as an operator would.

    Fails the test when a foreign exception (psycopg, sqlite3, OSError, …) reached the
    command line's last resort instead of being converted where it entered strangler."""
    escapes = tmp_path / "escaped-exceptions.log"

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        full_env = {
            **os.environ,
            "COLUMNS": "200",
            "STRANGLER_ESCAPES": str(escapes),
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        assert "Traceback (most recent call last)" not in done.stderr, done.stderr
        return CliResult(done.returncode, done.stdout, done.stderr)

    yield run
    if escapes.exists():
        pytest.fail("foreign exceptions reached the command line: " + escapes.read_text())


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A folder for a demo's servers that their system user can reach.

    Not under pytest's tmp_path: pytest keeps its own base folder mode 0700 and resets it at
    every session start, so a server user cannot traverse it reliably.
    """
    root = Path(tempfile.mkdtemp(prefix="strangler-demo-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root / "demo"
    finally:
        for meta in root.glob("demo/pg-*.json"):
            from strangler.pg.embedded import PgInstance

            PgInstance.create(meta.parent / meta.stem).stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
