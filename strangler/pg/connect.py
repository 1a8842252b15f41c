"""Connections to the monolith and the service databases, with errors that say what to fix.

psycopg's OperationalError covers a host that is down, a wrong password and a missing
database alike; the operator needs to know which, and must never see the password. Every
connection strangler makes goes through :func:`connect`.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from strangler.errors import BadInput, DatabaseUnreachable
from strangler.secrets import dsn_password, redact_dsn, register_secret, scrub

__all__ = ["connect", "describe_dsn"]


def describe_dsn(dsn: str) -> str:
    """``user@host:port/dbname`` for messages: enough to recognise, nothing secret."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return redact_dsn(dsn)
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    port = parts.get("port") or "5432"
    user = parts.get("user") or "(default user)"
    db = parts.get("dbname") or "(default db)"
    return f"{user}@{host}:{port}/{db}"


def connect(
    dsn: str, *, role: str = "database", autocommit: bool = True, **kwargs: Any
) -> psycopg.Connection[Any]:
    """Open a connection; failures become DatabaseUnreachable/BadInput with a precise hint.

    ``role`` names what the database is to the operator ("monolith", "order_service target").
    """
    register_secret(dsn_password(dsn))
    kwargs.setdefault("connect_timeout", 10)
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise BadInput(
            f"the {role} DSN is not a valid libpq connection string: {scrub(str(exc))}",
            hint="use postgresql://user@host:port/dbname or 'host=… dbname=…'",
        ) from None
    # Row-level security never filters what strangler reads or writes silently: a query that
    # policies would filter fails instead (issue 12). ``plan`` names the roles it would affect.
    # (libpq reads PGOPTIONS only when no options are given: keep the operator's.)
    given = conninfo_to_dict(dsn).get("options") or os.environ.get("PGOPTIONS")
    kwargs["options"] = " ".join(
        str(o) for o in (given, kwargs.get("options"), "-c row_security=off") if o
    )
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        text = scrub(str(exc)).strip()
        where = describe_dsn(dsn)
        if "password authentication failed" in text or "no password supplied" in text:
            hint = "check the user and password (PGPASSWORD, ~/.pgpass or the DSN's variable)"
            what = "refused the credentials"
        elif "does not exist" in text and "database" in text:
            hint = "create the database, or fix dbname in the DSN"
            what = "has no such database"
        elif "role" in text and "does not exist" in text:
            hint = "create the role, or fix the user in the DSN"
            what = "has no such role"
        else:
            hint = "check host and port, that the server runs, and that this machine may reach it"
            what = "could not be reached"
        raise DatabaseUnreachable(f"the {role} ({where}) {what}: {text}", hint=hint) from None
    if "replication" not in kwargs:  # a walsender commits nothing of ours
        try:
            _durable(conn)
        except psycopg.OperationalError as exc:  # the server went away right after
            conn.close()
            raise DatabaseUnreachable(
                f"the {role} ({describe_dsn(dsn)}) closed the connection: {scrub(str(exc))}",
                hint="check that the server runs, then run the same command again",
            ) from None
    return conn


def _durable(conn: psycopg.Connection[Any]) -> None:
    """Commit synchronously in this session, whatever the server's default. strangler acts on
    a commit at once (the applier confirms the stored position to the monolith's slot, which
    never sends those changes again; a step journals 'ok'), so a commit a crash may forget
    (``synchronous_commit = off``) lost rows in issue 15's fault campaign. A SET, not a
    startup option: connection poolers refuse unknown startup options."""
    conn.execute("SET synchronous_commit = on")
    if not conn.autocommit:
        conn.commit()
