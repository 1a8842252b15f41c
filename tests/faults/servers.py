"""The campaign's two PostgreSQL servers, each reached through a fault proxy.

The monolith's server (``source``) and the service's (``target``) are embedded PostgreSQL 18
servers started once per campaign; every trial gets fresh databases on them. strangler only
ever reaches them through a :class:`~tests.faults.proxy.FaultProxy`, so a trial can cut or
stall its connections; the harness itself connects directly. The target's data directory
lives on a small tmpfs (:class:`~tests.faults.mounts.Tmpfs`) so that a trial can fill its
disk; the source keeps little WAL (``max_wal_size``) so that a slot can be invalidated by
``max_slot_wal_keep_size`` in seconds.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from strangler.pg.embedded import FAST_SETTINGS, PgInstance
from tests.faults.mounts import Tmpfs
from tests.faults.proxy import FaultProxy

__all__ = ["Server", "Servers", "Side"]

Side = Literal["source", "target"]

# Little WAL kept, so that a slot held back is invalidated after a few segments, and a full
# disk is reached by the data, not by WAL recycling.
_SETTINGS = {
    **FAST_SETTINGS,
    "shared_buffers": "64MB",
    "max_wal_size": "64MB",
    "min_wal_size": "32MB",
    "wal_keep_size": "0",
    "checkpoint_timeout": "30s",
    "max_connections": "200",
}


@dataclass
class Server:
    """One server, its proxy, and (for the target) the tmpfs its data lives on."""

    side: Side
    instance: PgInstance
    proxy: FaultProxy
    disk: Tmpfs | None = None

    def dsn(self, dbname: str = "postgres", *, direct: bool = False, **kwargs: Any) -> str:
        """A DSN for ``dbname``: through the fault proxy (what strangler uses), or direct."""
        dsn = self.instance.dsn(dbname, **kwargs)
        if direct:
            return dsn
        return dsn.replace(f"127.0.0.1:{self.instance.port}/", f"127.0.0.1:{self.proxy.port}/")

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.dsn(dbname, direct=True), **kwargs)

    def restart(self, *, down_for: float = 0.0) -> None:
        """``pg_ctl stop -m immediate`` (a crash, as far as clients can tell), then start."""
        self.instance.stop("immediate")
        if down_for:
            time.sleep(down_for)
        self.ensure_up()

    def ensure_up(self) -> None:
        """Start the server if it is down (after a crash, a full disk, a restart)."""
        for attempt in range(3):
            try:
                self.instance.start()
                break
            except Exception:
                if attempt == 2:
                    raise
                self.instance.stop("immediate")
                time.sleep(1)
        self.proxy.upstream = ("127.0.0.1", self.instance.port)

    def set_system(self, name: str, value: str | None) -> None:
        """``ALTER SYSTEM SET name = value`` (None: RESET) and reload."""
        with self.connect() as conn:
            if value is None:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            conn.execute("SELECT pg_reload_conf()")

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )

    def drop_database(self, name: str) -> None:
        """Drop ``name`` with the slots and sessions that keep it alive."""
        with self.connect() as conn:
            for (slot,) in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)
            ).fetchall():
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                        "WHERE slot_name = %s AND active_pid IS NOT NULL",
                        (slot,),
                    )
                    time.sleep(0.2)
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class Servers:
    """Both servers of a campaign under ``root``; the target's data on a tmpfs when
    ``target_disk_mb`` is given (root only)."""

    def __init__(self, root: Path, *, target_disk_mb: int | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        disk = None
        if target_disk_mb:
            disk = Tmpfs(root / "target-disk", target_disk_mb)
        source = PgInstance.create(root / "source", settings=_SETTINGS).start()
        target_home = disk.path if disk else root
        target = PgInstance.create(target_home / "target", settings=_SETTINGS).start()
        self.source = Server("source", source, FaultProxy(("127.0.0.1", source.port), name="src"))
        self.target = Server(
            "target", target, FaultProxy(("127.0.0.1", target.port), name="dst"), disk
        )

    def side(self, side: Side) -> Server:
        return self.source if side == "source" else self.target

    def heal(self) -> None:
        """Everything back to normal between trials."""
        for server in (self.source, self.target):
            server.proxy.heal()
            if server.disk:
                server.disk.heal()
            server.ensure_up()

    def close(self) -> None:
        for server in (self.source, self.target):
            server.proxy.stop()
            with contextlib.suppress(Exception):
                server.instance.destroy()
            if server.disk:
                server.disk.unmount()
