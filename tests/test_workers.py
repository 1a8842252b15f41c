"""The chunk queue and ``strangler worker`` (issue 17): copy and verify exactly once, with
workers killed at random, on real PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.phases import Phase
from strangler.steps.copy import copy as copy_service
from strangler.steps.verify import verify as verify_step
from tests.extract_world import build_rich, rows_of, runbook, write_service_spec
from tests.fix_pg import Db

TABLES = ["orders", "Order Items"]


def workers_spec(tmp: Path, source: str, target: str | None, chunk_rows: int) -> Path:
    spec, _ = write_service_spec(tmp, source, target, tables=TABLES)
    spec.write_text(
        spec.read_text() + f"    copy: {{ engine: workers, chunk_rows: {chunk_rows} }}\n"
    )
    return spec


def queue_rows(dsn: str, job: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT chunk, state, rows, worker FROM _strangler.work_chunks"
            " WHERE service = 'order_service' AND job = %s ORDER BY chunk",
            (job,),
        ).fetchall()


def same_rows(source: Db, target_dsn: str) -> None:
    for t in TABLES:
        assert rows_of(target_dsn, "order_service", t) == rows_of(source.dsn, "public", t), t


@pytest.mark.parametrize("same_instance", [False, True], ids=["new-instance", "same-instance"])
def test_the_copy_goes_through_the_queue_and_is_exact(
    source_db: Db, target_db: Db, tmp_path: Path, same_instance: bool
) -> None:
    build_rich(source_db.dsn, n=3000)
    target = None if same_instance else target_db.dsn
    _, journal, rb = runbook(workers_spec(tmp_path, source_db.dsn, target, 400))
    result = copy_service(rb, jobs=2)
    assert rb.phase == Phase.COPIED
    figures = result.figures
    assert figures is not None and not figures.mismatched
    where = target or source_db.dsn
    same_rows(source_db, where)
    done = queue_rows(where, "copy")
    assert len(done) == figures.chunks > 10
    assert {r[1] for r in done} == {"done"}
    assert sum(r[2] for r in done) == sum(c.target_rows for c in figures.tables.values())
    # every chunk is in the journal too, so a resumed copy skips them
    assert len(rb.progress.chunks()) == figures.chunks
    journal.close()
