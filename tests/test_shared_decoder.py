"""One decoder for many services (issue 17): two services of one monolith on one slot, the
decoder killed with kill -9 at random moments under writes, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.cdc_world import WriteLoad, differences, make_shop
from tests.fix_pg import Db

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: online
    sync: {{ decoder: main }}
  ledger:
    tables: [ledger]
    target: {{ dsn: "{second}", schema: led }}
    strategy: online
    sync: {{ decoder: main }}
"""


class LedgerLoad:
    """Inserts, updates and deletes on the ledger, the other service's table."""

    def __init__(self, dsn: str) -> None:
        self.dsn, self.stop = dsn, threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True)

    def __enter__(self) -> LedgerLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _work(self) -> None:
        rnd = random.Random(3)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                n = rnd.randint(1, 400)
                conn.execute(
                    "INSERT INTO ledger (id, amount) VALUES (%s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET amount = ledger.amount + 1",
                    (n, rnd.randint(1, 99)),
                )
                if rnd.random() < 0.2:
                    conn.execute("DELETE FROM ledger WHERE id = %s", (rnd.randint(1, 400),))


def ledger_rows(db: Db, schema: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT id, amount FROM {schema}.ledger ORDER BY id")


def test_one_slot_for_two_services_killed_at_random_loses_nothing(
    source_db: Db, target_db: Db, second_target_db: Db, tmp_path: Path, cli: Any
) -> None:
    make_shop(source_db, None, rows=300)
    source_db.execute(
        "CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL);"
        "INSERT INTO ledger SELECT g, g FROM generate_series(1, 200) g"
    )
    spec = tmp_path / "strangler.yaml"
    spec.write_text(
        SPEC.format(source=source_db.dsn, target=target_db.dsn, second=second_target_db.dsn)
    )
    f = ["-f", str(spec)]
    rnd = random.Random()
    try:
        with WriteLoad(source_db.dsn, clients=1, pause=0.005), LedgerLoad(source_db.dsn):
            for service in ("shop", "ledger"):
                copied = cli("copy", service, *f)
                assert copied.code == 0, copied.stderr
            # a service's own sync refuses to run: its changes belong to the group now
            joined = cli("decoder", "main", "--join", *f, "-o", "json")
            assert joined.code == 0, joined.stderr
            assert set(joined.json()["joined"]) == {"shop", "ledger"}
            alone = cli("sync", "shop", "--once", *f)
            assert alone.code == 1 and "decoder group 'main'" in alone.stderr
            for _ in range(3):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "strangler", "decoder", "main", *f],
                    cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                time.sleep(rnd.uniform(6.0, 10.0))  # its start-up (seconds here), then rounds
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        done = cli("decoder", "main", "--until-caught-up", *f, "-o", "json")
        assert done.code == 0, done.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert ledger_rows(second_target_db, "led") == ledger_rows(source_db, "public")
        slots = source_db.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")
        assert slots == [("strangler_shared_main",)]  # one decoding for both services
        shown = cli("decoder", "main", "--status", *f, "-o", "json").json()
        assert set(shown["members"]) == {"shop", "ledger"}
        assert all(m["rows_applied"] > 0 for m in shown["members"].values())

        # shop leaves the group (before its cutover) under writes; ledger stays in it
        with WriteLoad(source_db.dsn, clients=1, pause=0.005), LedgerLoad(source_db.dsn):
            left = cli("decoder", "main", "--leave", "shop", *f)
            assert left.code == 0, left.stderr
        own = cli("sync", "shop", "--until-caught-up", *f)  # its own slot again
        assert own.code == 0, own.stderr
        group = cli("decoder", "main", "--until-caught-up", *f)
        assert group.code == 0, group.stderr
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert ledger_rows(second_target_db, "led") == ledger_rows(source_db, "public")
        slots = source_db.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")
        assert slots == [("strangler_shared_main",), ("strangler_shop",)]
    finally:
        stopped = cli("decoder", "main", "--stop", *f)
        cli("sync", "shop", "--stop", *f)
    assert stopped.code == 0, stopped.stderr
    assert source_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]
