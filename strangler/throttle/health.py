"""The monolith's health, as a throttle reads it: one query, a few numbers.

- replica replay lag: the largest ``replay_lag`` of ``pg_stat_replication`` (seconds);
- WAL generation rate: bytes of WAL per second between two samples;
- retained WAL: what the oldest replication slot keeps on the monolith's disk;
- active backends (client sessions running a statement) and sessions waiting on a lock;
- ``age(backend_xmin)``: how many transactions the oldest snapshot holds vacuum back;
- optionally one number from a query of the operator's own, or from Prometheus.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import psycopg

from strangler.errors import CheckFailed, MetricsUnreachable, StranglerError
from strangler.pg.sync.pgoutput import parse_lsn
from strangler.traffic.http import http_json

__all__ = ["Health", "prometheus_value", "read_health"]

_HEALTH = """
SELECT pg_current_wal_lsn()::text,
       (SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication),
       (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))::bigint
          FROM pg_replication_slots WHERE restart_lsn IS NOT NULL),
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state = 'active'
           AND pid <> pg_backend_pid()),
       (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'),
       (SELECT max(age(backend_xmin)) FROM pg_stat_activity WHERE pid <> pg_backend_pid()),
       (SELECT pid || ' (' || coalesce(nullif(application_name, ''), usename::text, '?')
               || ')' FROM pg_stat_activity WHERE pid <> pg_backend_pid()
               AND backend_xmin IS NOT NULL ORDER BY age(backend_xmin) DESC LIMIT 1)
"""


@dataclass(frozen=True)
class Health:
    """One reading of the monolith (None: not measurable, e.g. no replica, first sample)."""

    at: float  # time.monotonic() of the reading
    wal_lsn: int
    replica_lag: float | None
    wal_rate: float | None  # bytes per second since the previous reading
    slot_retained: int | None
    active_backends: int
    lock_waits: int
    xmin_age: int | None
    xmin_holder: str | None
    query_value: float | None = None
    prometheus_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("at")
        return out


def read_health(
    conn: psycopg.Connection[Any],
    previous: Health | None = None,
    *,
    query: str | None = None,
    clock: float | None = None,
) -> Health:
    """Read the monolith's signals on ``conn`` (autocommit); ``previous`` gives the WAL rate."""
    now = time.monotonic() if clock is None else clock
    row = conn.execute(_HEALTH).fetchone()
    assert row is not None
    lsn = parse_lsn(str(row[0]))
    rate = None
    if previous is not None and now > previous.at:
        rate = max(0.0, (lsn - previous.wal_lsn) / (now - previous.at))
    value = None
    if query:
        try:
            got = conn.execute(query.encode()).fetchone()  # the operator's own SQL, as written
        except psycopg.Error as exc:
            raise CheckFailed(
                f"the throttle's query failed on the monolith: {str(exc).strip()}",
                hint="fix throttle.query.sql in the spec; it must return one number",
            ) from exc
        if got is None or got[0] is None:
            value = None
        else:
            try:
                value = float(got[0])
            except (TypeError, ValueError):
                raise CheckFailed(
                    f"the throttle's query returned {got[0]!r}, not a number",
                    hint="throttle.query.sql must return one numeric value",
                ) from None
    return Health(
        at=now,
        wal_lsn=lsn,
        replica_lag=None if row[1] is None else float(row[1]),
        wal_rate=rate,
        slot_retained=None if row[2] is None else int(row[2]),
        active_backends=int(row[3]),
        lock_waits=int(row[4]),
        xmin_age=None if row[5] is None else int(row[5]),
        xmin_holder=row[6],
        query_value=value,
    )


def prometheus_value(url: str, query: str, *, timeout: float = 5.0) -> float | None:
    """The first sample of an instant PromQL query (None: no data)."""
    full = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        answer = http_json(full, timeout=timeout, unreachable=MetricsUnreachable, what="Prometheus")
    except MetricsUnreachable:
        raise
    except StranglerError as exc:
        raise MetricsUnreachable(
            f"Prometheus rejected the throttle's query: {exc.message}"
        ) from exc
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise MetricsUnreachable(f"Prometheus answered {answer!r:.200}")
    result = answer["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value
