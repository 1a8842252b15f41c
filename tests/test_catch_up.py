"""An online copy under ``copy.max_snapshot_age`` (issue 17): no snapshot held for the whole
copy, the stream caught up from the slot's start, nothing lost or doubled, kill -9 included.

The writers touch rows of every chunk while the copy runs (old rows updated, TOASTed values
left unchanged or rewritten, keys changed, rows deleted and inserted), so a chunk read under
a later snapshot holds changes the stream replays again, and one read earlier misses changes
the stream brings: the strict rules of sync stop on both, the catch-up rules converge.
"""

from __future__ import annotations

import json
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

from strangler.journal import Journal
from strangler.pg.sync import cdc
from strangler.pg.sync.position import catch_up_until
from strangler.phases import Phase
from strangler.spec import load_spec
from strangler.steps.runbook import Runbook
from strangler.steps.wiring import sync_route
from tests.cdc_world import WriteLoad, differences, make_shop
from tests.extract_world import copy_service
from tests.fix_pg import Db
from tests.test_online_copy import SPEC as ONLINE_SPEC

# The online-copy tests' service, copied under fresh snapshots.
SPEC = ONLINE_SPEC + "    copy: {{ max_snapshot_age: {age}, chunk_rows: {chunk_rows} }}\n"


def _spec(tmp: Path, source: Db, target: Db, age: str = "1ms", chunk_rows: int = 300) -> Path:
    path = tmp / "strangler.yaml"
    path.write_text(
        SPEC.format(source=source.dsn, target=target.dsn, age=age, chunk_rows=chunk_rows)
    )
    return path


class OldRows(threading.Thread):
    """Writes to rows anywhere in the key range, the old ones too: what the newest-rows load
    of :class:`WriteLoad` does not reach (rows of chunks copied long before)."""

    def __init__(self, dsn: str, highest: int, seed: int = 11) -> None:
        super().__init__(daemon=True)
        self.dsn, self.highest, self.rnd = dsn, highest, random.Random(seed)
        self.stop = threading.Event()
        self.committed = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                key = self.rnd.randint(1, self.highest)
                op = self.rnd.random()
                try:
                    if op < 0.35:  # a TOASTed value left unchanged: not sent by the stream
                        conn.execute(
                            "UPDATE public.orders SET total = total + 1 WHERE id = %s", (key,)
                        )
                    elif op < 0.55:  # a TOASTed value written
                        conn.execute(
                            "UPDATE public.orders SET doc = repeat(md5(random()::text), 300) "
                            "WHERE id = %s",
                            (key,),
                        )
                    elif op < 0.75:  # a key changed
                        conn.execute(
                            "UPDATE public.items SET line = line + 10 "
                            "WHERE order_id = %s AND line = 1",
                            (key,),
                        )
                    elif op < 0.85:
                        conn.execute("DELETE FROM public.orders WHERE id = %s", (key,))
                    else:  # a deleted key comes back
                        conn.execute(
                            "INSERT INTO public.orders (id, customer, total) VALUES (%s, 'back', 1)"
                            " ON CONFLICT (id) DO UPDATE SET note = 'reborn'",
                            (key,),
                        )
                    self.committed += 1
                except psycopg.errors.UniqueViolation:
                    pass
                time.sleep(0.002)

    def __enter__(self) -> OldRows:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def _fk_valid(target: Db) -> list[tuple[Any, ...]]:
    return target.execute(
        "SELECT convalidated FROM pg_constraint WHERE conrelid = 'svc.items'::regclass "
        "AND contype = 'f'"
    )


def _doc_everywhere(source: Db) -> None:
    # Every row carries a TOASTed value, so an UPDATE that leaves it alone omits it.
    source.execute("UPDATE public.orders SET doc = repeat(md5(id::text), 300)")
    source.execute("ANALYZE")


def test_a_copy_under_fresh_snapshots_catches_up_exactly(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    make_shop(source_db, None, rows=3000)
    _doc_everywhere(source_db)
    spec = load_spec(_spec(tmp_path, source_db, target_db))
    journal = Journal(spec.state_url(), operator="test", command="test")
    route = sync_route(spec, "shop")
    try:
        with (
            WriteLoad(source_db.dsn, clients=1, pause=0.002) as load,
            OldRows(source_db.dsn, 3000) as old,
        ):
            result = copy_service(Runbook(spec, journal, "shop"), jobs=2, chunk_rows=300)
            # The slot holds no snapshot (a logical slot pins the catalog only).
            assert source_db.execute(
                "SELECT xmin FROM pg_replication_slots WHERE slot_name = 'strangler_shop'"
            ) == [(None,)]
            time.sleep(0.3)
        assert load.committed > 20 and old.committed > 20
        # One snapshot per chunk or so: the copy never held one for long.
        snapshots = {d["snapshot"] for d in journal.items("shop", "copy/chunk/").values()}
        assert result["snapshots"] >= 5 and len(snapshots) >= 5
        with route.connect_target() as dst:
            pending = catch_up_until(dst, route.slot)
        assert pending is not None and result["catch_up_until"]
        # Rows read under different snapshots need not agree yet: the foreign key waits.
        assert [t for t, _ in pending[1]] == ["items"]
        assert _fk_valid(target_db) == [(False,)]
        cdc.run(route, until_caught_up=True)
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert _fk_valid(target_db) == [(True,)]
        with route.connect_target() as dst:
            assert catch_up_until(dst, route.slot) is None  # over, for good
        # Past the catch-up point the strict rules are back: a write after it applies as ever.
        source_db.execute("UPDATE public.orders SET note = 'after' WHERE id = 2999")
        cdc.run(route, until_caught_up=True)
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        assert Runbook(spec, journal, "shop").phase is Phase.COPIED
    finally:
        cdc.end(route)
        journal.close()


def _strangler(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "strangler", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_kill_9_of_a_catch_up_copy_loses_and_doubles_nothing(
    source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    make_shop(source_db, None, rows=12000)
    _doc_everywhere(source_db)
    spec = _spec(tmp_path, source_db, target_db, chunk_rows=400)
    rnd = random.Random()
    kills = 0
    with WriteLoad(source_db.dsn, clients=1, pause=0.002), OldRows(source_db.dsn, 12000):
        for _ in range(8):
            copy = _strangler(["copy", "shop", "-f", str(spec), "-o", "json"], tmp_path)
            if kills < 2:
                time.sleep(rnd.uniform(0.8, 2.5))
                if copy.poll() is None:
                    os.kill(copy.pid, signal.SIGKILL)
                    copy.communicate()
                    kills += 1
                    continue
            out, err = copy.communicate(timeout=300)
            assert copy.returncode == 0, err
            done: dict[str, Any] = json.loads(out)
            break
        else:
            raise AssertionError("the copy never finished")
    assert kills >= 1 and done["catch_up_until"]
    journal = Journal(f"sqlite:///{tmp_path}/state.db", operator="test", command="test")
    chunks = journal.items("shop", "copy/chunk/")
    journal.close()
    assert len({c["snapshot"] for c in chunks.values()}) >= 5  # never one snapshot for all
    synced = subprocess.run(
        [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec), "--until-caught-up"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stderr
    assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    subprocess.run(
        [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec), "--stop"],
        cwd=tmp_path,
        capture_output=True,
    )
