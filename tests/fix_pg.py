"""Real PostgreSQL for tests: session-scoped servers, a fresh database per test.

Two embedded PostgreSQL 18 servers (``pg_source``, ``pg_target``) start once per session;
each test gets its own database on them (``source_db``, ``target_db``) and it is dropped
afterwards. ``pg15`` is Debian's PostgreSQL 15 for cross-version tests: skipped where it is
not installed, but a failure under CI, which installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.pg.embedded import PgInstance, debian_bin_dir


@dataclass
class Db:
    """One test database on one server."""

    instance: PgInstance
    name: str

    @property
    def dsn(self) -> str:
        return self.instance.dsn(self.name)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn, **kwargs)

    def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    # Under /tmp with a short name: the server's own user must be able to traverse it.
    root = Path(tempfile.mkdtemp(prefix="strangler-test-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _server(root: Path, name: str, bin_dir: Path | None = None) -> Iterator[PgInstance]:
    inst = PgInstance.create(root / name, bin_dir=bin_dir).start()
    try:
        yield inst
    finally:
        inst.destroy()


@pytest.fixture(scope="session")
def pg_source(pg_root: Path) -> Iterator[PgInstance]:
    yield from _server(pg_root, "source")


@pytest.fixture(scope="session")
def pg_target(pg_root: Path) -> Iterator[PgInstance]:
    yield from _server(pg_root, "target")


@pytest.fixture(scope="session")
def pg15(pg_root: Path) -> Iterator[PgInstance]:
    bin_dir = debian_bin_dir(15)
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's postgresql-15 (see .ci/run)")
        pytest.skip("Debian's PostgreSQL 15 is not installed (apt-get install postgresql-15)")
    yield from _server(pg_root, "pg15", bin_dir)


def _fresh(inst: PgInstance) -> Iterator[Db]:
    name = "t_" + uuid.uuid4().hex[:12]
    inst.create_database(name)
    try:
        yield Db(inst, name)
    finally:
        inst.drop_database(name)


@pytest.fixture
def source_db(pg_source: PgInstance) -> Iterator[Db]:
    yield from _fresh(pg_source)


@pytest.fixture
def target_db(pg_target: PgInstance) -> Iterator[Db]:
    yield from _fresh(pg_target)


@pytest.fixture
def second_source_db(pg_source: PgInstance) -> Iterator[Db]:
    """Another database on the source server, for tests that compare two worlds."""
    yield from _fresh(pg_source)


@pytest.fixture
def second_target_db(pg_target: PgInstance) -> Iterator[Db]:
    yield from _fresh(pg_target)


@pytest.fixture
def pg15_db(pg15: PgInstance) -> Iterator[Db]:
    yield from _fresh(pg15)
