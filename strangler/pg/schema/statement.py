"""One DDL statement as data: a stable key for the journal, the SQL, and what to show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

__all__ = ["Query", "Statement", "search_path"]

Query = sql.SQL | sql.Composed


@dataclass(frozen=True)
class Statement:
    """One statement with a stable key (for the journal) and the table it belongs to."""

    key: str
    query: Query
    table: str | None = None
    # What --dry-run shows instead of ``query`` when the statement carries a secret.
    shown: Query | None = None


def search_path(schema: str, *, local: bool, then: Sequence[str] = ()) -> sql.Composed:
    """``SET search_path TO schema[, then…]``: the service's schema first, then the schemas
    where the extensions the moved tables use live on that server."""
    names = [schema, *(s for s in then if s != schema)]
    return sql.SQL("SET {}search_path TO {}").format(
        sql.SQL("LOCAL " if local else ""), sql.SQL(", ").join(map(sql.Identifier, names))
    )
