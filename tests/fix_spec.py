"""Spec files for tests, written to tmp_path, and the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
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
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``strangler …`` in a subprocess, as an operator would."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run
