"""The sync-lag alarm fires on real exported lag (issue 14).

A real ``strangler sync --metrics-port`` applies a real slot; the target's table is locked so
the applier stalls while the monolith keeps committing; a real Prometheus scrapes the process
with the rules ``strangler alarms --format prometheus`` wrote, and puts the alert in
``pending`` (its expression holds on the scraped data). ``promtool test rules`` then takes the
samples Prometheus scraped, continues them at the stalled slope, and proves the generated
rule fires once its ``for`` has passed. When the lock goes, the lag falls back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from strangler.pg.embedded import free_port
from tests.cdc_world import make_shop

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: online
"""

PROMETHEUS = """\
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: strangler_sync
    static_configs: [{{ targets: ["127.0.0.1:{port}"] }}]
"""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _query(prom: str, expr: str) -> list[Any]:
    try:
        data = _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    except OSError:
        return []  # Prometheus still starting
    return list(data["data"]["result"])


def _until(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def prometheus_exe() -> str:
    exe = shutil.which("prometheus")
    if exe is None or shutil.which("promtool") is None:
        pytest.skip("prometheus is not installed (CI installs it: apt-get install prometheus)")
    return exe


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sync_lag_alarm_fires_on_real_exported_lag(  # type: ignore[no-untyped-def]
    source_db, target_db, tmp_path, cli, prometheus_exe, running
) -> None:
    make_shop(source_db, None, rows=300)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(SPEC.format(source=source_db.dsn, target=target_db.dsn))
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    rules = tmp_path / "rules.yaml"
    alarms = cli("alarms", "shop", "-f", str(spec), "--format", "prometheus", "--sync-lag", "3s")
    assert alarms.code == 0, alarms.stderr
    rules.write_text(alarms.stdout)
    assert "ShopSyncLagAbsent" in alarms.stdout  # an online service: missing data alerts too

    port = free_port()
    metrics = ["--metrics-port", str(port), "--log-format", "json"]
    running.append(
        subprocess.Popen(
            [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec), *metrics],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(PROMETHEUS.format(rules=rules, port=port))
    running.append(
        subprocess.Popen(
            [
                prometheus_exe,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    prom = f"http://127.0.0.1:{prom_port}"
    selector = 'strangler_sync_lag_seconds{service="shop",direction="forward"}'
    # Healthy first: the applier keeps up, the lag is scraped and small, no alert.
    _until("the lag to be scraped", lambda: _query(prom, selector), timeout=90)
    assert float(_query(prom, selector)[0]["value"][1]) < 3

    # Stall the applier: a lock on the target table, while the monolith commits.
    blocker = target_db.connect(autocommit=False)
    try:
        blocker.execute("LOCK TABLE svc.orders IN ACCESS EXCLUSIVE MODE")
        source_db.execute("INSERT INTO public.orders (customer, total) VALUES ('late', 1)")
        alerts = _until(
            "the SyncLag alert",
            lambda: _query(prom, 'ALERTS{alertname="ShopSyncLag"}'),
        )
        assert alerts[0]["metric"]["alertstate"] in ("pending", "firing")
        assert alerts[0]["metric"]["service"] == "shop"
        # The dashboard's live source shows the same stall.
        board = free_port()
        running.append(
            subprocess.Popen(
                [sys.executable, "-m", "strangler", "dashboard", "-f", str(spec),
                 "--port", str(board)],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip

        def live_lag() -> float:
            try:
                data = _get(f"http://127.0.0.1:{board}/api/services")
            except OSError:
                return 0.0
            lag = data["services"][0]["lag"] or {}
            return float(lag.get("seconds") or 0) if lag.get("live") else 0.0

        _until("the dashboard's live lag above 3 s", lambda: live_lag() > 3)
        end = time.time()
        scraped = _get(
            f"{prom}/api/v1/query_range?"
            + urllib.parse.urlencode(
                {"query": selector, "start": end - 30, "end": end, "step": "1"}
            )
        )["data"]["result"][0]["values"]
    finally:
        blocker.rollback()
        blocker.close()
    values = [float(v) for _, v in scraped]
    assert max(values) > 3 and values[-1] > values[0]  # it grew while the applier stalled

    # promtool: the scraped samples, then the stall going on at one second per second.
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    {
                        "series": selector,
                        "values": " ".join(f"{v:g}" for v in values) + f" {values[-1]:g}+1x400",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "10s", "alertname": "ShopSyncLag", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "ShopSyncLag",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "service": "shop",
                                    "direction": "forward",
                                    "severity": "page",
                                },
                                "exp_annotations": {
                                    "summary": "strangler sync lag above 3s for shop"
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    if values[0] > 3:  # the stall began before the window: it has been pending since
        test["tests"][0]["alert_rule_test"].pop(0)  # type: ignore[index]
    test_file = tmp_path / "lag_test.yaml"
    test_file.write_text(yaml.safe_dump(test))
    done = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # The lock is gone: the applier catches up and the exported lag falls back.
    _until(
        "the lag to fall back",
        lambda: (r := _query(prom, selector)) and float(r[0]["value"][1]) < 3,
        timeout=90,
    )

    # sync --status --watch, as kubectl -w: JSON lines while it runs, exit 0 at --timeout.
    watched = cli("sync", "shop", "-f", str(spec), "--status", "--watch", "--timeout", "3s",
                  "--interval", "0.5", "-o", "json")  # fmt: skip
    assert watched.code == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert lines and all(x["slot_exists"] and x["direction"] == "forward" for x in lines)
    human = cli("sync", "shop", "-f", str(spec), "--status")
    assert "shop forward sync · slot strangler_shop" in human.stdout
    assert "None" not in human.stdout and "True" not in human.stdout
