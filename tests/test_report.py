"""``strangler report`` on the journal of a real demo run (copy, sync, a damaged row found and
repaired, cutover, gated traffic steps, decommission), opened in a real headless Chromium.

The same run makes the README's screenshots (``STRANGLER_SCREENSHOTS=docs/images``): the
report, and the dashboard over the same journal.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strangler.pg.embedded import free_port
from tests.fix_browser import console_errors
from tests.fix_spec import CliResult


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.mark.slow
def test_report_of_a_whole_migration_in_a_browser(  # type: ignore[no-untyped-def]
    cli: Callable[..., CliResult], demo_dir: Path, tmp_path: Path, browser, screenshot
) -> None:
    done = cli("demo", "--scale", "300", "--dir", str(demo_dir), timeout=600)
    assert done.code == 0, done.stdout + done.stderr
    env = dict(line.split("=", 1) for line in (demo_dir / "env").read_text().splitlines())
    spec = demo_dir / "strangler.yaml"
    # The demo's ending: its explore commands work as printed (not the dashboard: it serves).
    ending = done.stdout.split("explore (")[1].splitlines()[1:]
    commands = [c.strip() for c in ending if c.startswith("  ")]
    assert commands[0].startswith("set -a; . ")
    for command in commands[1:]:
        if " dashboard " in command:
            continue
        ran = subprocess.run(["bash", "-c", f"{commands[0]}; {command}"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=120)  # fmt: skip
        assert ran.returncode == 0, command + ran.stdout + ran.stderr
    out = tmp_path / "CHG-0001"
    made = cli("report", "order_service", "-f", str(spec), "--out", str(out), "-o", "json", env=env)
    assert made.code == 0, made.stderr
    bundle = made.json()
    assert sorted(bundle["files"]) == ["evidence.json", "report.html", "report.md"]

    # Tamper-evident: the manifest checks with sha256sum, and fails once a file changes.
    manifest = (out / "MANIFEST.sha256").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == bundle["manifest_sha256"]
    assert subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=out).returncode == 0
    md = (out / "report.md").read_text()
    (out / "report.md").write_text(md.replace("passed", "PASSED", 1))
    assert subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=out,
                          capture_output=True).returncode == 1  # fmt: skip

    # The Markdown holds the evidence the runbook asks for.
    for heading in ("## Plan", "## Checklists and attestations", "## Copy", "## Verifications",
                    "## Sync lag", "## Write cutover", "## Traffic", "## Rollbacks",
                    "## Decommission", "## Who did what, when"):  # fmt: skip
        assert heading in md
    assert "**preflight** at" in md
    assert re.search(r"\| rows \| failed \| [1-9]", md)  # the damaged row the demo planted
    assert "writes refused for" in md and " ms |" in md
    evidence = json.loads((out / "evidence.json").read_text())
    archive = Path(evidence["decommission"][0]["archive_path"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in md  # the real archive's digest
    for weight in ("5", "20", "50", "100"):
        assert f"**Bake at {weight} %**" in md
    assert env["ORDER_SERVICE_DB_PASSWORD"] not in (md + (out / "report.html").read_text())

    # Self-contained: nothing is loaded from elsewhere when it is viewed.
    page = (out / "report.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", page)
    browser.get((out / "report.html").as_uri())
    charts = _wait(
        "four drawn charts",
        lambda: browser.execute_script(
            "const c = document.querySelectorAll('.js-plotly-plot');"
            "return c.length === 4 && [...c].every(d => d.querySelector('svg.main-svg'))"
            " ? c.length : 0"
        ),
    )
    assert charts == 4
    titles = browser.execute_script(
        "return [...document.querySelectorAll('.gtitle')].map(t => t.textContent)"
    )
    assert any("Traffic weight" in t for t in titles) and any("Sync lag" in t for t in titles)
    assert console_errors(browser) == []
    browser.execute_script("document.getElementById('charts').scrollIntoView()")
    screenshot(browser, "report.png")

    # The dashboard over the same journal.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "dashboard", "-f", str(spec), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**__import__("os").environ, **env},
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait("the dashboard", lambda: urllib.request.urlopen(url, timeout=2).status == 200)
        browser.get(url)
        _wait(
            "the demo's service",
            lambda: (
                browser.execute_script("return document.querySelector('[data-phase]').textContent")
                == "decommissioned"
            ),
        )
        assert console_errors(browser) == []
        screenshot(browser, "dashboard.png")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
