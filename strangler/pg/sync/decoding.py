"""What the monolith must allow before online sync creates anything: logical decoding.

Each of these is known from the server's settings and catalogs, so it is refused before a
schema, a slot or a row exists (issue 15's bad-input suite found ``wal_level = replica`` met
only after the service schema had been created): ``wal_level = logical``, a free replication
slot and a free WAL sender, and a role that may replicate.
"""

from __future__ import annotations

from typing import Any

import psycopg

from strangler.errors import CheckFailed

__all__ = ["check_logical_decoding"]


def check_logical_decoding(conn: psycopg.Connection[Any], where: str = "the monolith") -> None:
    """Raise CheckFailed naming the fix when ``conn``'s server cannot feed a logical slot."""
    row = conn.execute(
        "SELECT current_setting('wal_level'), "
        "current_setting('max_replication_slots')::int, "
        "(SELECT count(*) FROM pg_replication_slots)::int, "
        "current_setting('max_wal_senders')::int, "
        "(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user), "
        "current_user"
    ).fetchone()
    assert row is not None
    level, max_slots, slots, senders, may_replicate, user = row
    if level != "logical":
        raise CheckFailed(
            f"{where} runs with wal_level = {level}; online sync reads its changes by logical "
            "decoding, which needs wal_level = logical",
            hint="ALTER SYSTEM SET wal_level = logical; then restart the server (or use "
            "strategy: copy, with writes to the moved tables stopped)",
        )
    if slots >= max_slots:
        raise CheckFailed(
            f"{where} has no free replication slot ({slots} of max_replication_slots = "
            f"{max_slots} in use)",
            hint="raise max_replication_slots (a restart), or drop a slot nobody reads",
        )
    if senders < 1:
        raise CheckFailed(
            f"{where} allows no WAL sender (max_wal_senders = {senders}); sync streams its "
            "changes over a replication connection",
            hint="raise max_wal_senders (a restart)",
        )
    if not may_replicate:
        raise CheckFailed(
            f"role {user!r} on {where} may not replicate; sync needs a role with REPLICATION "
            "to create and read its slot",
            hint=f"ALTER ROLE {user} WITH REPLICATION (as a superuser), or use a DSN whose "
            "role has it",
        )
