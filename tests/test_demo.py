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
    # strategy online (the default): load, copy, sync, verify, cutover in that order
    out = done.stdout
    acts = ["write load", "copy", "sync", "verify", "cutover"]
    assert [out.index(f"─ {a} ─") for a in acts] == sorted(out.index(f"─ {a} ─") for a in acts)
    assert "caught up in " in out and "True" not in out and "None" not in out
    assert "writes cut over: the monolith refused writes for" in out
    assert "a late write to the monolith: strangler: writes to public.orders are refused" in out
    spec = where / "strangler.yaml"
    assert spec.exists()
    # The spec holds no password: DSNs point at a passfile.
    text = spec.read_text()
    assert "passfile=" in text
    password = (where / "pg-monolith.json").read_text()
    import json

    assert json.loads(password)["password"] not in text


@pytest.mark.slow
def test_demo_with_strategy_copy_skips_sync_and_cutover(
    cli: Callable[..., CliResult], demo_dir: Path
) -> None:
    done = cli("demo", "--scale", "300", "--strategy", "copy", "--dir", str(demo_dir))
    assert done.code == 0, done.stdout + done.stderr
    for act in ("write load", "sync", "cutover"):
        assert f"skipped: {act} is for strategy: online" in done.stdout
    assert "the copy is identical" in done.stdout
