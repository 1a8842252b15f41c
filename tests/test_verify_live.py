"""``strangler verify --recheck`` while the monolith takes writes and sync applies them.

Differences that are only lag clear once sync has applied past the source's position (the
sync's :class:`~strangler.pg.sync.cdc.Watermark`); a real difference survives every recheck.
"""

from __future__ import annotations

import threading
from pathlib import Path

from strangler.pg.sync import cdc
from strangler.spec import load_spec
from strangler.steps.verify import sync_watermark as watermark_for
from strangler.steps.wiring import sync_route
from strangler.verify import SyncWatermark
from tests.cdc_world import WriteLoad, make_shop

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


def _sync_in_background(route: cdc.SyncRoute) -> tuple[threading.Thread, threading.Event, list]:
    stop, errors = threading.Event(), []

    def work() -> None:
        try:
            cdc.run(route, stop=stop)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, stop, errors


def test_verify_under_live_writes_clears_lag_and_keeps_a_real_difference(
    source_db, target_db, tmp_path: Path, cli
):
    make_shop(source_db, None, rows=3000)
    path = tmp_path / "strangler.yaml"
    path.write_text(SPEC.format(source=source_db.dsn, target=target_db.dsn))
    spec = load_spec(path)
    route = sync_route(spec, "shop")
    assert watermark_for(spec, "shop") is None  # no slot yet: verify has nothing to wait on
    try:
        assert cli("copy", "shop", "-f", str(path)).code == 0
        assert cli("sync", "shop", "-f", str(path), "--once").code == 0
        mark = watermark_for(spec, "shop")
        assert isinstance(mark, cdc.Watermark) and isinstance(mark, SyncWatermark)
        assert isinstance(mark.source_position(), str)
        # A real difference, in a row the write load never touches (it works near max(id)).
        target_db.execute(
            "SET session_replication_role = replica;"
            "UPDATE svc.orders SET note = 'edited on the service' WHERE id = 1"
        )
        thread, stop, errors = _sync_in_background(route)
        # A steady load the sync keeps up with on a shared machine (verify is about
        # correctness here; bench/bench_sync.py measures how much load sync absorbs).
        with WriteLoad(source_db.dsn, clients=2, pause=0.02) as load:
            damaged = cli(
                "verify", "shop", "-f", str(path), "--recheck", "4", "--output", "json", timeout=600
            )
            target_db.execute(
                "SET session_replication_role = replica;"
                "UPDATE svc.orders SET note = 'n1' WHERE id = 1"
            )
            clean = cli(
                "verify", "shop", "-f", str(path), "--recheck", "4", "--output", "json", timeout=600
            )
        stop.set()
        thread.join()
        assert errors == [] and load.committed > 0
        assert damaged.code == 1, damaged.stderr
        tables = {t["source"]: t for t in damaged.json()["tables"]}
        orders = tables["public.orders"]
        assert orders["rows"] == [{"kind": "changed", "key": {"id": "1"}, "columns": ["note"]}]
        assert orders["source_rows"] == orders["target_rows"]
        assert tables["public.items"]["passed"], tables["public.items"]
        assert clean.code == 0, clean.stdout
        assert clean.json()["status"] == "passed"
    finally:
        cdc.end(route)
