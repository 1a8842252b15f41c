"""Snapshots of what strangler could have changed, to prove that a refused command changed
nothing: the catalog of a database (relations, functions, triggers, schemas, slots,
publications, the cluster's roles, row counts) and the journal (every row of every table).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from psycopg import sql

from tests.fix_pg import Db

__all__ = ["catalog", "journal"]

_QUERIES = {
    "schemas": "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
    "AND nspname <> 'information_schema' ORDER BY 1",
    "relations": "SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint >= 0 FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg\\_%' "
    "AND n.nspname <> 'information_schema' ORDER BY 1, 2",
    "functions": "SELECT n.nspname, p.proname, md5(p.prosrc) FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT LIKE 'pg\\_%' "
    "AND n.nspname <> 'information_schema' ORDER BY 1, 2, 3",
    "triggers": "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger "
    "WHERE NOT tgisinternal ORDER BY 1, 2",
    "roles": "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
    "slots": "SELECT slot_name FROM pg_replication_slots WHERE database = current_database() "
    "ORDER BY 1",
    "publications": "SELECT pubname FROM pg_publication ORDER BY 1",
    "settings": "SELECT coalesce(setdatabase::regclass::text, ''), setconfig::text "
    "FROM pg_db_role_setting ORDER BY 1, 2",
}


def catalog(db: Db) -> dict[str, Any]:
    """Everything strangler might create or drop in ``db`` (and roles, cluster-wide)."""
    out: dict[str, Any] = {}
    with db.connect() as conn:
        for name, query in _QUERIES.items():
            out[name] = [tuple(r) for r in conn.execute(query).fetchall()]
        counts = {}
        for schema, rel, kind, _ in out["relations"]:
            if kind in ("r", "p"):
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, rel))
                row = conn.execute(query).fetchone()
                counts[f"{schema}.{rel}"] = row[0] if row else None
        out["rows"] = counts
    return out


def journal(path: Path, *, empty_is_none: bool = False) -> dict[str, Any] | None:
    """Every row of every table of a SQLite journal (None: there is no journal, or, with
    ``empty_is_none``, one without a row)."""
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as lite:
        tables = [
            r[0]
            for r in lite.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
            ).fetchall()
        ]
        rows = {t: lite.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    if empty_is_none and not any(rows.values()):
        return None
    return rows
