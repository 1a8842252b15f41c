"""The monolith's old tables at the end of a migration: watch them, archive them, move them out
of the way, and (a later run) drop them.

* **Write guard**: a statement-level trigger on each old table that records any INSERT,
  UPDATE, DELETE or TRUNCATE into ``strangler_guard.old_table_writes`` (who, when, what). It
  never blocks: its job is evidence. Its function is ``SECURITY DEFINER`` so an application
  role that still writes gets recorded rather than failing on the log table's permissions.
  Readers ask for the writes after the newest row they already accounted for
  (``after_id``), and the rows they accounted for can be pruned: a write counts once, in
  the window it happened in, not forever.
* **Write counters**: ``n_tup_ins + n_tup_upd + n_tup_del`` from ``pg_stat_user_tables``,
  snapshotted when the guard is installed and compared later: they catch writes that happened
  while the guard was not there (or was dropped).
* **Archive**: ``pg_dump -Fc`` of exactly those tables, by the pg_dump whose major version
  matches the server, with its sha256 recorded; restorable with ``pg_restore``.
* **Rename**: ``ALTER TABLE … SET SCHEMA retired_<service>``: one catalog change per table, the
  names kept (so the archive and the retired tables match), and nothing can reach them under
  their old name. Dropping happens only in a later run, after ``drop_old_tables_after``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from strangler.errors import CheckFailed, Unreachable
from strangler.pg.embedded import debian_bin_dir, embedded_bin_dir
from strangler.pg.own import GUARD_SCHEMA
from strangler.secrets import scrub

__all__ = [
    "GUARD_SCHEMA",
    "Archive",
    "add_guard_triggers",
    "archive_tables",
    "dependents",
    "drop_tables",
    "ensure_write_log",
    "existing",
    "guard_installed",
    "install_guard",
    "last_write_id",
    "pg_tool",
    "prune_writes",
    "recorded_writes",
    "remove_guard",
    "retire_tables",
    "retired_schema",
    "sha256_of",
    "write_counters",
]

_TRIGGER = "strangler_guard_write"

_LOG_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.old_table_writes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    operation text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    by_role text NOT NULL DEFAULT session_user,
    application text NOT NULL DEFAULT current_setting('application_name')
);
"""

_GUARD_DDL = """
CREATE OR REPLACE FUNCTION {schema}.record_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    INSERT INTO {schema}.old_table_writes (table_schema, table_name, operation)
    VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP);
    RETURN NULL;
END
$fn$;
"""


def retired_schema(service: str) -> str:
    return f"retired_{service}"


def existing(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')",
        (schema, list(tables)),
    ).fetchall()
    found = {r[0] for r in rows}
    return [t for t in tables if t in found]


def ensure_write_log(conn: psycopg.Connection[Any]) -> None:
    """The guard's schema and its log table (idempotent; in the caller's transaction)."""
    conn.execute(sql.SQL(_LOG_DDL).format(schema=sql.Identifier(GUARD_SCHEMA)))


def add_guard_triggers(
    conn: psycopg.Connection[Any],
    schema: str,
    tables: Sequence[str],
    function: str = "record_write",
    args: Sequence[str] = (),
) -> None:
    """A recording trigger calling ``strangler_guard.<function>(args)`` on each table that
    has none yet (in the caller's transaction)."""
    for table in tables:
        if _has_trigger(conn, schema, table):
            continue
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {trg} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {tbl} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {fn}({args})"
            ).format(
                trg=sql.Identifier(_TRIGGER),
                tbl=sql.Identifier(schema, table),
                fn=sql.Identifier(GUARD_SCHEMA, function),
                args=sql.SQL(", ").join(sql.Literal(a) for a in args),
            )
        )


def install_guard(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> None:
    """Create the write log and a recording trigger on each table (idempotent)."""
    ident = sql.Identifier(GUARD_SCHEMA)
    with conn.transaction():
        ensure_write_log(conn)
        conn.execute(sql.SQL(_GUARD_DDL).format(schema=ident))
        add_guard_triggers(conn, schema, tables)


def _has_trigger(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND t.tgname = %s",
        (schema, table, _TRIGGER),
    ).fetchone()
    return row is not None


def remove_guard(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> None:
    """Take the recording triggers off (before the archive, so it restores anywhere)."""
    with conn.transaction():
        for table in existing(conn, schema, tables):
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(_TRIGGER), sql.Identifier(schema, table)
                )
            )


def guard_installed(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> bool:
    return all(_has_trigger(conn, schema, t) for t in tables)


def _log_exists(conn: psycopg.Connection[Any]) -> bool:
    present = conn.execute(
        "SELECT to_regclass(%s)", (f'"{GUARD_SCHEMA}".old_table_writes',)
    ).fetchone()
    return bool(present and present[0] is not None)


def recorded_writes(
    conn: psycopg.Connection[Any],
    schema: str,
    tables: Sequence[str],
    *,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """Writes the guard recorded on these tables, oldest first (``after_id``: only those
    after that log row, the newest one a reader already accounted for). Each has its log
    ``id`` (int) and ``schema``, ``table``, ``operation``, ``at``, ``by``, ``application``."""
    if not _log_exists(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT id, table_schema, table_name, operation, at, by_role, application FROM {} "
            "WHERE table_schema = %s AND table_name = ANY(%s) AND id > %s ORDER BY id"
        ).format(sql.Identifier(GUARD_SCHEMA, "old_table_writes")),
        (schema, list(tables), after_id or 0),
    ).fetchall()
    keys = ("schema", "table", "operation", "at", "by", "application")
    return [
        {"id": int(r[0]), **dict(zip(keys, (str(v) for v in r[1:]), strict=True))} for r in rows
    ]


def last_write_id(conn: psycopg.Connection[Any]) -> int:
    """The newest row of the write log (0 when it is empty or missing): what a guard put on
    now has already accounted for, so rows left by an earlier guard do not count again."""
    if not _log_exists(conn):
        return 0
    row = conn.execute(
        sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(
            sql.Identifier(GUARD_SCHEMA, "old_table_writes")
        )
    ).fetchone()
    return int(row[0]) if row else 0


def prune_writes(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str], up_to_id: int
) -> int:
    """Delete the log rows of these tables up to ``up_to_id`` (their evidence is in the
    journal by then); returns how many went."""
    if not _log_exists(conn):
        return 0
    done = conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE table_schema = %s AND table_name = ANY(%s) AND id <= %s"
        ).format(sql.Identifier(GUARD_SCHEMA, "old_table_writes")),
        (schema, list(tables), up_to_id),
    )
    return int(done.rowcount or 0)


def write_counters(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]
) -> dict[str, int]:
    """Rows inserted + updated + deleted per table since the statistics were last reset."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname = ANY(%s)",
        (schema, list(tables)),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def dependents(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """Views and foreign keys outside ``tables`` that depend on them (they would break)."""
    rows = conn.execute(
        """
        WITH old AS (
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
        )
        SELECT DISTINCT format('%%I.%%I (view) depends on %%I', vn.nspname, v.relname, o.relname)
        FROM pg_depend d
        JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
        JOIN pg_class v ON v.oid = r.ev_class
        JOIN pg_namespace vn ON vn.oid = v.relnamespace
        JOIN pg_class o ON o.oid = d.refobjid
        WHERE d.refobjid IN (SELECT oid FROM old) AND v.oid NOT IN (SELECT oid FROM old)
        UNION
        SELECT format('%%I.%%I (foreign key %%I) references %%I', fn.nspname, f.relname,
                      con.conname, o.relname)
        FROM pg_constraint con
        JOIN pg_class f ON f.oid = con.conrelid
        JOIN pg_namespace fn ON fn.oid = f.relnamespace
        JOIN pg_class o ON o.oid = con.confrelid
        WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM old)
          AND con.conrelid NOT IN (SELECT oid FROM old)
        ORDER BY 1
        """,
        {"schema": schema, "tables": list(tables)},
    ).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------------------- pg_dump


def _major_of(tool: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
    except OSError:
        return None
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else None


def pg_tool(name: str, server_major: int) -> Path:
    """``pg_dump``/``pg_restore`` of the server's major version: the embedded wheel's (18),
    Debian's ``/usr/lib/postgresql/N/bin``, or ``PATH``'s; never an older one (it refuses)."""
    candidates: list[Path] = []
    with contextlib.suppress(Exception):  # the wheel is optional for this purpose
        candidates.append(embedded_bin_dir() / name)
    deb = debian_bin_dir(server_major)
    if deb is not None:
        candidates.append(deb / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    usable = [(c, _major_of(c)) for c in candidates if c.is_file()]
    exact = [c for c, m in usable if m == server_major]
    newer = [c for c, m in usable if m is not None and m > server_major]
    if exact or newer:
        return (exact or newer)[0]
    raise Unreachable(
        f"no {name} for PostgreSQL {server_major} (found: "
        + (", ".join(f"{c} ({m})" for c, m in usable) or "none")
        + ")",
        hint=f"install postgresql-client-{server_major}",
    )


def _env_and_dsn(dsn: str) -> tuple[dict[str, str], str]:
    """Keep the password out of the command line: it goes to PGPASSWORD."""
    parts = conninfo_to_dict(dsn)
    env = dict(os.environ)
    password = parts.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return env, make_conninfo("", **{k: v for k, v in parts.items() if v is not None})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Archive:
    """A ``pg_dump -Fc`` file and, beside it, the ``pg_restore -L`` list that restores it
    anywhere: triggers on the old tables (the cutover's write gate, which calls a function
    the archive does not hold) are commented out of it."""

    path: Path
    sha256: str
    size: int
    tables: list[str]
    pg_dump: str
    restore_list: Path

    @property
    def restore_command(self) -> str:
        return f"pg_restore -L {self.restore_list} -d DBNAME {self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "tables": self.tables,
            "pg_dump": self.pg_dump,
            "restore_list": str(self.restore_list),
            "restore": self.restore_command,
        }


def _pattern(schema: str, table: str) -> str:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{q(schema)}.{q(table)}"


def archive_tables(
    dsn: str, server_major: int, schema: str, tables: Sequence[str], dest: Path
) -> Archive:
    """``pg_dump -Fc`` of exactly ``tables`` (definitions and rows) into ``dest``."""
    tool = pg_tool("pg_dump", server_major)
    dest.parent.mkdir(parents=True, exist_ok=True)
    env, conninfo = _env_and_dsn(dsn)
    args = [
        str(tool),
        "--format=custom",
        "--strict-names",
        f"--file={dest}",
        f"--dbname={conninfo}",
    ]
    for table in tables:
        args.append(f"--table={_pattern(schema, table)}")
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        dest.unlink(missing_ok=True)
        raise CheckFailed(f"pg_dump of the old tables failed: {scrub(done.stderr.strip())}")
    listing = subprocess.run(
        [str(pg_tool("pg_restore", server_major)), "--list", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise CheckFailed(f"the archive {dest} cannot be read back: {listing.stderr.strip()}")
    restore_list = dest.with_suffix(".list")
    restore_list.write_text(
        "".join(
            (";" + line if " TRIGGER " in line and not line.startswith(";") else line) + "\n"
            for line in listing.stdout.splitlines()
        )
    )
    return Archive(
        dest, sha256_of(dest), dest.stat().st_size, list(tables), str(tool), restore_list
    )


def retire_tables(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str], service: str
) -> str:
    """Move the tables to ``retired_<service>`` in one transaction; returns that schema."""
    target = retired_schema(service)
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target)))
        for table in existing(conn, schema, tables):
            conn.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    sql.Identifier(schema, table), sql.Identifier(target)
                )
            )
    return target


def drop_tables(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """Drop the retired tables (no CASCADE: a dependent object stops the drop), then the
    retired schema when it is empty. Returns the tables dropped."""
    present = existing(conn, schema, tables)
    with conn.transaction():
        if present:
            conn.execute(
                sql.SQL("DROP TABLE {}").format(
                    sql.SQL(", ").join(sql.Identifier(schema, t) for t in present)
                )
            )
        left = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
        if left and left[0] == 0:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(schema)))
    return present
