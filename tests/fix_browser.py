"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``), driven by selenium.

Nothing is downloaded: the driver is /usr/bin/chromedriver and the browser /usr/bin/chromium
(``.ci/run`` installs both). Screenshots go to ``$STRANGLER_ARTIFACTS`` (default: the test's
tmp folder); with ``STRANGLER_SCREENSHOTS=docs/images`` they are also written there, which is
how the README's pictures are made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip("chromium is not installed (CI installs it: apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1100",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """``screenshot(driver, "report.png")``: saved in the artefacts (and docs/images on demand)."""
    artefacts = Path(os.environ.get("STRANGLER_ARTIFACTS") or tmp_path / "artifacts")
    artefacts.mkdir(parents=True, exist_ok=True)

    def take(driver: Any, name: str) -> Path:
        path = artefacts / name
        assert driver.save_screenshot(str(path)), f"no screenshot for {name}"
        extra = os.environ.get("STRANGLER_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / name)
        return path

    return take


def console_errors(driver: Any) -> list[str]:
    """The page's console messages at level SEVERE (errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
