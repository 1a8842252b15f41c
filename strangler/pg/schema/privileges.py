"""Whether the monolith's role may read what a copy reads, asked before anything is created.

A role without ``SELECT`` on a moved table (or on a sequence of one) is known from the
catalog; found only when the copy reached that table, it left a created schema behind and an
error about an exported snapshot instead of the missing grant (issue 15's bad-input suite).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import CheckFailed

__all__ = ["check_readable"]


def check_readable(
    conn: psycopg.Connection[Any],
    schema: str,
    tables: Sequence[str],
    sequences: Sequence[str] = (),
    where: str = "the monolith",
) -> None:
    """CheckFailed naming each relation of ``schema`` the session's role cannot SELECT,
    with the GRANT that fixes it."""
    rows = conn.execute(
        "SELECT c.relname, c.relkind = 'S', current_user FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND NOT has_table_privilege(c.oid, 'SELECT') "
        "ORDER BY 2, 1",
        (schema, [*tables, *sequences]),
    ).fetchall()
    if not rows:
        return
    user = rows[0][2]
    names = [r[0] for r in rows]
    grants = [
        sql.SQL("GRANT SELECT ON {}{} TO {};")
        .format(
            sql.SQL("SEQUENCE " if is_sequence else ""),
            sql.Identifier(schema, name),
            sql.Identifier(user),
        )
        .as_string(conn)
        for name, is_sequence, _ in rows
    ]
    raise CheckFailed(
        f"role {user!r} on {where} cannot read {', '.join(f'{schema}.{n}' for n in names)} "
        "(no SELECT); the copy reads every moved table and its sequences. Nothing was created.",
        hint="grant it, then run the same command again: " + " ".join(grants),
    )
