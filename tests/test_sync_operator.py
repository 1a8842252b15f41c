"""Online sync as an operator and a supervisor meet it (issue 12): a sync that a cutover hands
over exits 0 and says so, ``sync`` says its direction, a failed sync is in the history and in
``status``, ``status`` after ``sync --stop`` says sync is stopped, a ``start_sync`` killed
halfway resumes by itself, and changes of a table the service does not move get an error
that says what happened and a hint that works."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from strangler.journal import Journal
from strangler.phases import Action
from strangler.spec import load_spec
from tests.cdc_world import differences, make_shop
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
"""


def _spec(tmp_path: Path, source: Db, target: Db) -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(SPEC.format(source=source.dsn, target=target.dsn))
    return path


def _background_sync(tmp_path: Path, spec: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "sync", "shop", "-f", str(spec)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # let it take the slot; the cutover works either way
    return proc


def _history(cli, spec: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    done = cli("history", "shop", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    return done.json()["entries"] if isinstance(done.json(), dict) else done.json()


def _status(cli, spec: Path) -> dict:  # type: ignore[no-untyped-def]
    done = cli("status", "-f", str(spec), "--output", "json")
    assert done.code == 0, done.stderr
    found = done.json()
    services = found["services"] if isinstance(found, dict) else found
    return next(s for s in services if s["service"] == "shop")


def test_a_sync_handed_over_by_cutover_or_rollback_exits_0_and_says_its_direction(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=300)
    spec = _spec(tmp_path, source_db, target_db)
    try:
        assert cli("copy", "shop", "-f", str(spec)).code == 0
        assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
        assert cli("verify", "shop", "-f", str(spec)).code == 0
        forward = _background_sync(tmp_path, spec)
        cut = cli("cutover", "shop", "-f", str(spec))
        assert cut.code == 0, cut.stderr
        out, err = forward.communicate(timeout=60)
        assert forward.returncode == 0, err
        assert out.splitlines()[0].startswith("forward sync of shop: public → svc")
        assert "forward sync of shop ended: writes were cut over" in out
        assert "run 'strangler sync shop' again" in out

        reverse = _background_sync(tmp_path, spec)
        target_db.execute("INSERT INTO svc.orders (customer) VALUES ('service wrote this')")
        back = cli("rollback", "shop", "--writes", "-f", str(spec), "--reason", "test")
        assert back.code == 0, back.stderr
        out, err = reverse.communicate(timeout=60)
        assert reverse.returncode == 0, err
        assert out.splitlines()[0].startswith("reverse sync of shop: svc → public")
        assert "reverse sync of shop ended: writes were rolled back" in out
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
        handed = [e for e in _history(cli, spec) if e["step"] == "sync"]
        assert [e["status"] for e in handed] == ["handed_over", "handed_over"]
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop")


def test_a_failed_sync_is_journaled_and_status_says_so_and_after_stop_too(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=50)
    spec = _spec(tmp_path, source_db, target_db)
    assert cli("copy", "shop", "-f", str(spec)).code == 0
    assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
    assert _status(cli, spec)["sync"]["state"] == "idle"
    source_db.execute("ALTER TABLE public.orders ADD COLUMN extra int")
    source_db.execute("INSERT INTO public.orders (customer, extra) VALUES ('x', 1)")
    failed = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
    assert failed.code == 1 and "extra" in failed.stderr
    entry = next(e for e in _history(cli, spec) if e["step"] == "sync")
    assert entry["status"] == "failed"
    assert entry["details"]["error_type"] == "SchemaChanged"
    assert "extra" in entry["details"]["error"]
    status = _status(cli, spec)
    assert status["sync"]["state"] == "failed"
    assert any("stopped on an error" in w for w in status["warnings"])
    # Fixed the way the hint says, the next run applies and the failure is history.
    target_db.execute("ALTER TABLE svc.orders ADD COLUMN extra int")
    assert cli("sync", "shop", "-f", str(spec), "--until-caught-up").code == 0
    assert _status(cli, spec)["sync"]["state"] == "idle"

    assert cli("sync", "shop", "-f", str(spec), "--stop").code == 0
    status = _status(cli, spec)
    assert status["sync"]["state"] == "stopped"
    assert status["sync"]["slot_exists"] is False
    assert any("removed by 'strangler sync shop --stop'" in w for w in status["warnings"])
    assert any("strangler rollback shop --schema" in w for w in status["warnings"])


def test_a_start_sync_killed_halfway_resumes_by_itself(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=50)
    spec_path = _spec(tmp_path, source_db, target_db)
    try:
        assert cli("copy", "shop", "-f", str(spec_path)).code == 0
        # What a kill -9 between start_sync's intent and its outcome leaves in the journal.
        spec = load_spec(spec_path)
        with Journal(spec.state_url(), operator="test", command="strangler sync shop") as j:
            j.intent("shop", str(Action.START_SYNC), details={"pid": 1, "phase": "copied"})
        source_db.execute("INSERT INTO public.orders (customer) VALUES ('after the crash')")
        synced = cli("sync", "shop", "-f", str(spec_path), "--until-caught-up")
        assert synced.code == 0, synced.stderr
        assert _status(cli, spec_path)["phase"] == "syncing"
        assert _status(cli, spec_path)["incomplete_steps"] == []
        starts = [e for e in _history(cli, spec_path) if e["step"] == "start_sync"]
        assert sorted(e["status"] for e in starts if e["kind"] == "outcome") == ["crashed", "ok"]
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cli("sync", "shop", "-f", str(spec_path), "--stop")


def test_changes_of_a_table_the_service_does_not_move_say_what_is_true_and_what_helps(
    source_db: Db, target_db: Db, tmp_path: Path, cli
) -> None:
    make_shop(source_db, None, rows=50)
    source_db.execute("CREATE TABLE public.other (id int PRIMARY KEY, v text)")
    spec = _spec(tmp_path, source_db, target_db)
    try:
        assert cli("copy", "shop", "-f", str(spec)).code == 0
        source_db.execute("ALTER PUBLICATION strangler_shop ADD TABLE public.other")
        source_db.execute("INSERT INTO public.other VALUES (1, 'not the service''s')")
        source_db.execute("INSERT INTO public.orders (customer) VALUES ('the service''s')")
        refused = cli("sync", "shop", "-f", str(spec), "--until-caught-up")
        assert refused.code == 1
        assert "public.other, which this service does not move" in refused.stderr
        assert "added to the publication outside strangler" in refused.stderr
        fix = 'ALTER PUBLICATION "strangler_shop" DROP TABLE "public"."other"'
        assert fix in refused.stderr
        assert "--stop" in refused.stderr and "do not use" in refused.stderr
        # The hint, followed: the slot is kept, the foreign changes are skipped.
        source_db.execute(fix)
        synced = cli("sync", "shop", "-f", str(spec), "--until-caught-up", "--output", "json")
        assert synced.code == 0, synced.stderr
        assert json.loads(synced.stdout)["slot_exists"] is True
        assert differences(source_db, target_db) == {"orders": 0, "items": 0}
    finally:
        cli("sync", "shop", "-f", str(spec), "--stop")
