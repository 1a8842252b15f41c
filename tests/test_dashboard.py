"""``strangler dashboard`` in a real headless Chromium: it loads, shows every service, follows
the journal live (a phase change appears without a reload), and changes nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strangler.journal import Journal
from strangler.pg.embedded import free_port
from tests.fix_browser import console_errors
from tests.fix_spec import CliResult
from tests.fix_traffic import at_phase


def _wait(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # the page or server is still coming up
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def dashboard(write_spec: Callable[..., Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    spec = write_spec()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "dashboard", "-f", str(spec), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait("the dashboard", lambda: urllib.request.urlopen(url, timeout=2).status == 200)
        yield url, tmp_path / "state.db"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert b"Traceback" not in err, err.decode()


def test_a_phase_change_in_the_journal_appears_without_reload(
    dashboard: tuple[str, Path], browser: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    url, state_db = dashboard
    browser.get(url)
    phase = '[data-service="order_service"] [data-phase]'

    def shown() -> str:
        return str(browser.execute_script(f"return document.querySelector('{phase}').textContent"))

    assert _wait("the service", lambda: shown() == "planned")
    browser.execute_script("window.__same_page = 42")
    at_phase(state_db, "copied")
    assert _wait("the new phase", lambda: shown() == "copied")
    assert browser.execute_script("return window.__same_page") == 42  # not reloaded
    journal = Journal(f"sqlite:///{state_db}", operator="alice", command="test")
    try:
        journal.outcome(journal.intent("order_service", "shift_traffic"), "ok", weight=20)
    finally:
        journal.close()
    weight = '[data-service="order_service"] [data-weight]'
    assert _wait(
        "the new weight",
        lambda: (
            browser.execute_script(f"return document.querySelector('{weight}').textContent")
            == "20 %"
        ),
    )
    assert "alice" in browser.find_element("css selector", "main").text  # history, live
    assert console_errors(browser) == []
    screenshot(browser, "dashboard-live.png")


def test_the_dashboard_is_read_only(dashboard: tuple[str, Path]) -> None:
    url, _ = dashboard
    for method in ("POST", "PUT", "DELETE"):
        req = urllib.request.Request(url + "api/services", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        assert refused.value.code == 405
    with urllib.request.urlopen(url + "api/services", timeout=5) as resp:
        assert b'"phase": "planned"' in resp.read()


def test_another_address_needs_a_token(
    cli: Callable[..., CliResult], write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec()
    refused = cli("dashboard", "-f", str(spec), "--host", "0.0.0.0")
    assert refused.code == 2
    assert "needs a token" in refused.stderr and "--token" in refused.stderr
    port = free_port()
    args = ["--host", "127.0.0.2", "--port", str(port), "--token", "s3cret-t0ken"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "dashboard", "-f", str(spec), *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.2:{port}/api/services"

    def status() -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert _wait("the dashboard", status) == 401
        req = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret-t0ken"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url + "?token=s3cret-t0ken", timeout=5) as resp:
            assert "strangler_token=" in resp.headers["Set-Cookie"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
