"""The demo runs end to end on its own embedded servers, as `make demo` does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fix_spec import CliResult


@pytest.mark.slow
def test_demo_runs_every_built_phase(cli: Callable[..., CliResult], demo_dir: Path) -> None:
    where = demo_dir
    done = cli("demo", "--scale", "500", "--dir", str(where), timeout=600)
    assert done.code == 0, done.stdout + done.stderr
    assert "demo complete" in done.stdout
    assert "orders" in done.stdout and "500" in done.stdout
    spec = where / "strangler.yaml"
    assert spec.exists()
    # The spec holds no password: DSNs point at a passfile.
    text = spec.read_text()
    assert "passfile=" in text
    password = (where / "pg-monolith.json").read_text()
    import json

    assert json.loads(password)["password"] not in text
