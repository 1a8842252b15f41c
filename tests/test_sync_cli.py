"""``strangler sync`` as a process: kill -9 at random moments under load, then resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from tests.cdc_world import WriteLoad, differences, make_shop

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


def test_kill_9_at_random_moments_then_resume_loses_and_doubles_nothing(
    source_db, target_db, tmp_path, cli
):
    make_shop(source_db, None, rows=2000)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(SPEC.format(source=source_db.dsn, target=target_db.dsn))
    rnd = random.Random(5)
    try:
        with WriteLoad(source_db.dsn, clients=2):
            copied = cli("copy", "shop", "-f", str(spec), "--output", "json")
        assert copied.code == 0, copied.stderr
        assert copied.json()["slot"] == "strangler_shop"
        first = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
        assert first.code == 0, first.stderr
        with WriteLoad(source_db.dsn, clients=2):
            for _ in range(6):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec)],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(rnd.uniform(0.5, 2.5))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        done = cli("sync", "shop", "-f", str(spec), "--until-caught-up", "--output", "json")
        assert done.code == 0, done.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        status = cli("sync", "shop", "-f", str(spec), "--status", "--output", "json").json()
        assert status["slot_exists"] and status["transactions_applied"] > 0
    finally:
        stopped = cli("sync", "shop", "-f", str(spec), "--stop", "--output", "json")
    assert stopped.code == 0, stopped.stderr
    assert source_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert source_db.execute("SELECT count(*) FROM pg_publication") == [(0,)]
