"""The manual brake: ``strangler throttle SERVICE --pause/--resume``, kept in the target.

Workers run on many machines and read no journal file; they all reach the service's
database, so the pause lives there, beside the chunk queue, and every brake reads it between
chunks or rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["ManualPause", "read_pause", "set_pause"]

_TABLE = sql.Identifier("_strangler", "throttle_pause")


@dataclass(frozen=True)
class ManualPause:
    service: str
    reason: str
    by: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "by": self.by, "since": self.since.isoformat()}


def _exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('_strangler.throttle_pause') IS NOT NULL").fetchone()
    return row == (True,)


def set_pause(
    conn: psycopg.Connection[Any], service: str, *, paused: bool, reason: str, by: str
) -> ManualPause | None:
    """Pause (or resume) every brake of ``service``; returns the pause now in force."""
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS _strangler")
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (service text PRIMARY KEY, reason text NOT NULL,"
                " paused_by text NOT NULL, since timestamptz NOT NULL DEFAULT now())"
            ).format(_TABLE)
        )
        if paused:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (service, reason, paused_by) VALUES (%s, %s, %s)"
                    " ON CONFLICT (service) DO UPDATE SET reason = EXCLUDED.reason,"
                    " paused_by = EXCLUDED.paused_by, since = now()"
                ).format(_TABLE),
                (service, reason, by),
            )
        else:
            conn.execute(sql.SQL("DELETE FROM {} WHERE service = %s").format(_TABLE), (service,))
    return read_pause(conn, service)


def read_pause(conn: psycopg.Connection[Any], service: str) -> ManualPause | None:
    if not _exists(conn):
        return None
    row = conn.execute(
        sql.SQL("SELECT service, reason, paused_by, since FROM {} WHERE service = %s").format(
            _TABLE
        ),
        (service,),
    ).fetchone()
    return None if row is None else ManualPause(*row)
