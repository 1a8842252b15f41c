"""The embedded-PostgreSQL module that the demo and these fixtures share."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from strangler.errors import DatabaseUnreachable
from strangler.pg.connect import connect, describe_dsn
from strangler.pg.embedded import PgInstance
from tests.fix_pg import Db


def test_servers_are_separate_and_logical(pg_source: PgInstance, pg_target: PgInstance) -> None:
    assert pg_source.port != pg_target.port
    assert pg_source.version() >= 17
    with psycopg.connect(pg_source.dsn()) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        assert row == ("logical",)
        row = conn.execute("SHOW listen_addresses").fetchone()
        assert row == ("127.0.0.1",)


def test_each_test_gets_a_fresh_database(source_db: Db, target_db: Db) -> None:
    assert source_db.name != target_db.name
    assert source_db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    assert target_db.execute("SELECT to_regclass('public.t')") == [(None,)]


def test_wrong_password_is_refused_with_a_clear_redacted_error(pg_source: PgInstance) -> None:
    dsn = pg_source.dsn(password="not-the-password-123")
    with pytest.raises(DatabaseUnreachable) as info:
        connect(dsn, role="monolith")
    msg = str(info.value)
    assert "the monolith (postgres@127.0.0.1:" in msg
    assert "refused the credentials" in msg
    assert "not-the-password-123" not in msg
    assert info.value.exit_code == 3


def test_unreachable_host_and_missing_database(pg_source: PgInstance) -> None:
    with pytest.raises(DatabaseUnreachable, match="could not be reached"):
        connect("postgresql://u:pw@127.0.0.1:1/db", connect_timeout=2)
    with pytest.raises(DatabaseUnreachable, match="has no such database"):
        connect(pg_source.dsn("no_such_db"))


def test_what_strangler_commits_is_durable_where_the_server_commits_asynchronously(
    source_db: Db,
) -> None:
    """Under ``synchronous_commit = off`` a commit returns before its WAL is written, and a
    server crash forgets it. strangler acts on its commits at once: the applier confirms a
    stored position to the monolith's slot (which then never sends those changes again), a
    step journals 'ok'. The fault campaign lost 291 rows when the service's server restarted
    during sync, and a cutover's publication change and reverse position when the monolith's
    did. So every session strangler opens commits synchronously, whatever the server's
    default (the test servers trade durability for speed: their default is off)."""
    assert source_db.execute("SHOW synchronous_commit") == [("off",)]
    for autocommit in (True, False):
        with connect(source_db.dsn, autocommit=autocommit) as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            conn.rollback()
    # An operator's own options in the DSN are kept beside it.
    with connect(source_db.dsn + "?options=-c%20statement_timeout%3D7s") as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("7s",)


def test_describe_dsn_hides_the_password() -> None:
    assert describe_dsn("postgresql://app:pw@db.internal:6432/shop") == "app@db.internal:6432/shop"
    assert describe_dsn("host=h user=u password=p dbname=d") == "u@h:5432/d"


def test_restart_keeps_data_and_password(tmp_path: Path, pg_root: Path) -> None:
    inst = PgInstance.create(pg_root / "restart").start()
    try:
        inst.create_database("keep")
        with psycopg.connect(inst.dsn("keep"), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 1 AS x")
        inst.stop()
        assert not inst.is_running()
        again = PgInstance.create(pg_root / "restart").start()
        assert again.password == inst.password
        with psycopg.connect(again.dsn("keep")) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (1,)
    finally:
        inst.destroy()


def test_a_server_restarts_on_its_own_port_while_old_sessions_linger_in_time_wait(
    pg_root: Path,
) -> None:
    """A server that ends its sessions first (a stop, a crash) leaves its ends of them in
    TIME_WAIT on its port. PostgreSQL binds with SO_REUSEADDR and starts there all the same;
    strangler must not take the port for busy and move the server elsewhere, or every DSN
    naming it breaks (issue 15's fault campaign met it after restarts). The lingering
    session is made here by hand, so that it is there every time."""
    inst = PgInstance.create(pg_root / "same-port")
    port = inst.port
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server's side closes first: its end goes to TIME_WAIT
        client.recv(1)
        client.close()
    try:
        inst.start()
        assert inst.port == port
        with psycopg.connect(inst.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        inst.destroy()


@pytest.mark.pg15
def test_debian_postgresql_15_runs_beside_18(pg15: PgInstance, pg_target: PgInstance) -> None:
    assert pg15.version() == 15
    assert pg_target.version() == 18
