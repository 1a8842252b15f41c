"""Crash paths of the copy that must not strand the user (issue 12): rows a crashed or failed
copy placed are strangler's, so ``rollback --schema`` (which copy's hints point to) drops
them; a row anyone else wrote still refuses it; every hint printed on the way is followed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.errors import StranglerError
from tests.extract_world import build_rich, copy_service, rows_of, runbook, write_service_spec
from tests.fix_pg import Db
from tests.test_copy_resume import KILLER, TABLES


def _schemas(db: Db) -> list[str]:
    rows = db.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'order_service'")
    return [r[0] for r in rows]


def _killed_copy(source_db: Db, target_db: Db, tmp_path: Path) -> Path:
    """A copy killed (-9) right after a chunk committed on the target, before the journal
    heard of it."""
    build_rich(source_db.dsn, n=1500)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run(
        [sys.executable, str(script), str(spec), "3"], capture_output=True, text=True, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert target_db.execute("SELECT count(*) FROM order_service.orders")[0][0] > 0
    return spec


def test_rollback_schema_after_a_killed_copy(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    spec = _killed_copy(source_db, target_db, tmp_path)
    done = cli(
        "rollback",
        "order_service",
        "--schema",
        "--yes",
        "--reason",
        "crashed copy",
        "-f",
        str(spec),
    )
    assert done.code == 0, done.stderr
    assert _schemas(target_db) == []
    hist = cli("history", "order_service", "-f", str(spec), "--output", "json").json()
    outcomes = [(e["step"], e["status"]) for e in hist["entries"] if e["kind"] == "outcome"]
    assert ("copy", "crashed") in outcomes and outcomes[-1] == ("rollback_schema", "ok")
    again = cli("copy", "order_service", "-f", str(spec), "--output", "json")
    assert again.code == 0, again.stderr
    assert again.json()["resumed"] is False
    for t in TABLES:
        assert rows_of(target_db.dsn, "order_service", t) == rows_of(source_db.dsn, "public", t)


def test_a_row_someone_else_wrote_still_refuses_and_the_hint_is_followable(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    spec = _killed_copy(source_db, target_db, tmp_path)
    target_db.execute(
        "INSERT INTO order_service.orders (id, customer_id, total) "
        "OVERRIDING SYSTEM VALUE VALUES (-7, 1, 1)"
    )
    refused = cli(
        "rollback", "order_service", "--schema", "--yes", "--reason", "r", "-f", str(spec)
    )
    assert refused.code == 1
    assert "orders has 1 row(s) that strangler's copy did not write" in refused.stderr
    assert "delete them" in refused.stderr
    assert _schemas(target_db) == ["order_service"]
    # what the hint says: find them (xmin), delete them, run the rollback again
    target_db.execute("DELETE FROM order_service.orders WHERE id = -7")
    done = cli("rollback", "order_service", "--schema", "--yes", "--reason", "r", "-f", str(spec))
    assert done.code == 0, done.stderr
    assert _schemas(target_db) == []


class CutTarget:
    """After the first chunk lands, the target ends every session of the copy (a restart, a
    failover): the copy fails with rows of its own already committed."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.done = False

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None:
        pass

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        if self.done or not rows:
            return
        self.done = True
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def test_rollback_schema_after_a_failed_copy(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Any
) -> None:
    build_rich(source_db.dsn, n=1500)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    _, journal, rb = runbook(spec)
    with pytest.raises(StranglerError) as failed:
        copy_service(rb, jobs=2, chunk_rows=250, progress=CutTarget(target_db.dsn))
    journal.close()
    assert failed.value.exit_code == 3, failed.value.message
    assert target_db.execute("SELECT count(*) FROM order_service.orders")[0][0] > 0
    # the copy resumes (what the failure's hint says) ...
    hint = failed.value.hint or ""
    assert "strangler copy order_service" in hint, hint
    # ... or rolls back: the rows are the copy's own
    done = cli(
        "rollback", "order_service", "--schema", "--yes", "--reason", "failed", "-f", str(spec)
    )
    assert done.code == 0, done.stderr
    assert _schemas(target_db) == []
