"""`strangler demo --faulty`: the order service breaks at 20 % and the gates roll it back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fix_spec import CliResult


@pytest.mark.slow
def test_faulty_demo_rolls_back_by_itself(cli: Callable[..., CliResult], demo_dir: Path) -> None:
    done = cli("demo", "--scale", "200", "--dir", str(demo_dir), "--faulty", timeout=600)
    assert done.code == 0, done.stdout + done.stderr
    out = done.stdout
    assert "automatic rollback" in out and "gates failed at 20 %" in out
    assert out.count("consecutive failed intervals") == 1  # the rollback is told once
    assert "proxy now sends 0 % of /api/v1/orders*" in out
    assert "50 % interval" not in out  # it never went past the failing step
    env = dict(line.split("=", 1) for line in (demo_dir / "env").read_text().splitlines())
    status = cli("status", "-f", str(demo_dir / "strangler.yaml"), "-o", "json", env=env)
    assert status.json()["services"][0]["weight"] == 0
