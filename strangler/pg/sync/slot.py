"""The publication and logical replication slot of one service, and their safety checks.

Names come from the service (``strangler_<service>`` forward, ``strangler_<service>_rev`` for
reverse sync after cutover), so every object strangler creates on a monolith is recognisable
and removable by ``strangler sync SERVICE --stop``.

Why a replication connection for the slot: ``CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')``
hands out the snapshot the slot starts at; the initial copy imports it (``SET TRANSACTION
SNAPSHOT``), so every row is either in the copy or in the stream, never both and never neither.
The snapshot lives only while that connection stays open and idle, hence :func:`exported_slot`
is a context manager around the copy.

Never harm the monolith (issue 5): a table without a usable replica identity in a
publication makes the monolith's own UPDATEs and DELETEs on it fail, so
:func:`check_replica_identity` refuses before anything is created and prints the SQL to fix
it. Creating a slot waits for every transaction that already holds an xid; we wait with a
timeout and name the sessions in the way instead of hanging.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from strangler.errors import CheckFailed, StranglerError
from strangler.pg.sync.pgoutput import parse_lsn
from strangler.pg.sync.stream import APPLICATION_NAME
from strangler.secrets import scrub

__all__ = [
    "Direction",
    "ExportedSlot",
    "SlotStatus",
    "blocking_sessions",
    "check_replica_identity",
    "create_publication",
    "drop_sync_objects",
    "exported_slot",
    "slot_name",
    "slot_status",
]

Direction = Literal["forward", "reverse"]


def slot_name(service: str, direction: Direction = "forward") -> str:
    """The slot and publication name of a service's sync in one direction."""
    return f"strangler_{service}" + ("_rev" if direction == "reverse" else "")


@dataclass(frozen=True)
class ExportedSlot:
    name: str
    consistent_lsn: int
    snapshot: str | None


@dataclass(frozen=True)
class SlotStatus:
    name: str
    exists: bool
    active_pid: int | None = None
    confirmed_lsn: int | None = None
    current_lsn: int | None = None
    retained_bytes: int | None = None  # WAL the slot keeps on the monolith's disk
    lag_bytes: int | None = None  # WAL written but not yet confirmed as applied
    # Invalidated by the server (wal_status 'lost': max_slot_wal_keep_size exceeded): it
    # exists, but no change can be read from it again.
    lost: bool = False


# --------------------------------------------------------------------------- replica identity


def _fix_sql(schema: str, table: str, unique_indexes: Sequence[str]) -> list[str]:
    name = f"{sql.Identifier(schema, table).as_string()}"
    fixes = [f"ALTER TABLE {name} ADD PRIMARY KEY (…);  -- the best fix, if a key exists"]
    for index in unique_indexes:
        fixes.append(
            f"ALTER TABLE {name} REPLICA IDENTITY USING INDEX {sql.Identifier(index).as_string()};"
        )
    fixes.append(f"ALTER TABLE {name} REPLICA IDENTITY FULL;  -- works, but costs WAL")
    return fixes


def _slot_hint(message: str, name: str) -> str:
    """The real next step for a slot the monolith would not create (issue 14: it used to
    suggest 'sync --stop' whatever the cause, even for wal_level)."""
    if "wal_level" in message:
        return (
            "logical decoding needs wal_level = logical on the monolith: ALTER SYSTEM SET "
            "wal_level = logical; then restart it (or use strategy: copy)"
        )
    if "max_replication_slots" in message or "all replication slots are in use" in message:
        return "raise max_replication_slots on the monolith (a restart), or drop unused slots"
    if "already exists" in message:
        return f"an old slot remains: 'strangler sync … --stop' removes {name!r}"
    return "the message above is PostgreSQL's; the role needs REPLICATION (or superuser)"


def check_replica_identity(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]
) -> None:
    """Refuse (CheckFailed, nothing changed) if a table could not be published safely."""
    rows = conn.execute(
        """
        SELECT c.relname, c.relreplident, c.relpersistence = 'u' AS unlogged,
               c.relkind = 'r' AND NOT c.relispartition AND EXISTS (
                   SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid
               ) AS inheritance,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
               coalesce(array(
                   SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                   WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate
                     AND i.indpred IS NULL AND i.indexprs IS NULL
                     AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                     WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
                                       AND NOT a.attnotnull)
                   ORDER BY ic.relname), '{}')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = ANY (%s) AND c.relkind IN ('r', 'p')
        """,
        (schema, list(tables)),
    ).fetchall()
    found = {r[0]: r for r in rows}
    missing = [t for t in tables if t not in found]
    if missing:
        raise CheckFailed(
            f"tables not found in schema {schema!r}: {', '.join(missing)}",
            hint="check the table names in the spec",
        )
    problems: list[str] = []
    unlogged = [t for t in tables if found[t][2]]
    if unlogged:
        names = ", ".join(f"{schema}.{t}" for t in unlogged)
        raise CheckFailed(
            f"refusing to start sync: {names} is UNLOGGED, so its changes never reach the WAL "
            "and logical decoding cannot see them (sync would miss every write). Nothing was "
            "created.",
            hint="make it logged (ALTER TABLE … SET LOGGED, which rewrites it) or move it "
            "with strategy: copy",
        )
    tree = [t for t in tables if found[t][3]]
    if tree:
        names = ", ".join(f"{schema}.{t}" for t in tree)
        raise CheckFailed(
            f"refusing to start sync: {names} belongs to an inheritance tree (INHERITS); sync "
            "applies each change by key to its table, and on a parent that would reach the "
            "children's rows too. Nothing was created.",
            hint="move an inheritance tree with strategy: copy",
        )
    for table in tables:
        _, ident, _unlogged, _tree, has_pk, uniques = found[table]
        if ident == "n" or (ident == "d" and not has_pk):
            why = "REPLICA IDENTITY NOTHING" if ident == "n" else "no primary key"
            problems.append(f"{schema}.{table} has {why}; fix with one of:")
            problems += ["    " + s for s in _fix_sql(schema, table, uniques)]
    if problems:
        raise CheckFailed(
            "refusing to start sync: publishing a table without a replica identity would make "
            "the monolith's own UPDATE and DELETE on it fail. Nothing was created.\n"
            + "\n".join(problems),
            hint="run one of the statements above on the monolith, then the same command again",
        )


# --------------------------------------------------------------------------- publication/slot


def create_publication(
    conn: psycopg.Connection[Any], name: str, schema: str, tables: Sequence[str]
) -> None:
    """``CREATE PUBLICATION name FOR TABLE … WITH (publish_via_partition_root)`` unless it
    exists already.

    Through the root: a partitioned table's changes arrive as changes of the moved table,
    whichever partition holds the row (see :mod:`strangler.pg.sync.partitions`); for a plain
    table the option changes nothing.
    """
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if exists:
        return
    conn.execute(
        sql.SQL(
            "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)"
        ).format(
            sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
        )
    )


def blocking_sessions(conn: psycopg.Connection[Any], exclude_pids: Sequence[int] = ()) -> list[str]:
    """Sessions holding a transaction open, as 'pid 123 (user, app, state since …): query'."""
    rows = conn.execute(
        """
        SELECT pid, usename, application_name, state, xact_start, left(query, 80)
        FROM pg_stat_activity
        WHERE datname IS NOT NULL AND pid <> pg_backend_pid() AND pid <> ALL (%s)
          AND backend_type = 'client backend'
          AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
        ORDER BY xact_start
        """,
        (list(exclude_pids),),
    ).fetchall()
    return [
        f"pid {pid} ({user}, {app or '-'}, {state}, transaction since {start:%H:%M:%S}): {query}"
        for pid, user, app, state, start, query in rows
    ]


@contextlib.contextmanager
def lock_waits_named(conn: psycopg.Connection[Any], seconds: float, what: str) -> Iterator[None]:
    """A transaction whose lock waits give up after ``seconds``: then CheckFailed says
    ``what`` and names the sessions in the way, instead of a wait without end."""
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(seconds * 1000)}ms")
                )
            )
            yield
    except psycopg.errors.LockNotAvailable:
        listed = "\n".join("  " + b for b in blocking_sessions(conn))
        raise CheckFailed(
            f"{what}:\n{listed}", hint="let them finish or end them, then run the command again"
        ) from None


def _wait_result(
    repl: psycopg.Connection[Any], admin: psycopg.Connection[Any], name: str, timeout: float
) -> Any:
    pgconn = repl.pgconn
    deadline = time.monotonic() + timeout
    while pgconn.is_busy():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            blockers = blocking_sessions(admin, exclude_pids=[pgconn.backend_pid])
            repl.cancel()
            with contextlib.suppress(Exception):
                while pgconn.get_result() is not None:
                    pass
            listed = "\n".join("  " + b for b in blockers) or "  (none visible now)"
            raise CheckFailed(
                f"creating replication slot {name!r} waited {timeout:g}s for transactions that "
                f"were already running to finish; still open:\n{listed}",
                hint="let those transactions finish (or end them), then run the command again; "
                "--slot-timeout waits longer",
            )
        select.select([pgconn.socket], [], [], min(remaining, 0.2))
        pgconn.consume_input()
    result = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    return result


@contextlib.contextmanager
def exported_slot(
    dsn: str,
    admin: psycopg.Connection[Any],
    name: str,
    *,
    export_snapshot: bool = True,
    timeout: float = 30.0,
) -> Iterator[ExportedSlot]:
    """Create the logical slot on a replication connection, yield it with its snapshot.

    Keep the copy inside the ``with``: the snapshot dies with the connection. On error inside
    the block the slot is dropped again, so an aborted start leaves nothing behind.
    """
    try:
        repl = psycopg.connect(dsn, autocommit=True, replication="database", connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise CheckFailed(
            f"could not open a replication connection to the monolith: {scrub(str(exc))}",
            hint="the role needs REPLICATION (or superuser), and pg_hba.conf must allow it",
        ) from None
    try:
        option = "(SNAPSHOT 'export')" if export_snapshot else "(SNAPSHOT 'nothing')"
        if admin.info.server_version < 150000:
            option = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        command = sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput " + option).format(
            sql.Identifier(name)
        )
        repl.pgconn.send_query(command.as_bytes(repl))
        result = _wait_result(repl, admin, name, timeout)
        if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (
                result.error_message.decode(errors="replace").strip() if result else "no result"
            )
            raise CheckFailed(
                f"could not create replication slot {name!r}: {message}",
                hint=_slot_hint(message, name),
            )
        lsn = parse_lsn(result.get_value(0, 1).decode())
        snapshot = result.get_value(0, 2)
        slot = ExportedSlot(name, lsn, snapshot.decode() if snapshot else None)
        try:
            yield slot
        except BaseException:
            repl.close()
            with contextlib.suppress(psycopg.Error):
                _drop_slot(admin, name)
            raise
    finally:
        repl.close()


def _drop_slot(conn: psycopg.Connection[Any], name: str, timeout: float = 10.0) -> bool:
    """Drop the slot; a ``strangler sync`` streaming from it is ended first.

    Dropping is always deliberate (a cutover after its drain, ``sync --stop``), so a stream
    of ours holding the slot is ended by terminating its walsender: the sync process then
    finds its slot gone and stops. Any other holder is waited for, up to ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(
            "SELECT s.active_pid, a.application_name LIKE %s"
            " FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid"
            " WHERE s.slot_name = %s",
            (APPLICATION_NAME + " %", name),
        ).fetchone()
        if row is None:
            return False
        pid, ours = row
        if pid is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                return True
            except psycopg.errors.ObjectInUse:
                pass  # a reader took it just now
            except psycopg.errors.UndefinedObject:
                return False
        elif ours:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if time.monotonic() > deadline:
            raise StranglerError(
                f"replication slot {name!r} is in use by pid {pid} and could not be dropped",
                hint="stop the process that reads it, then run 'strangler sync … --stop'",
            )
        time.sleep(0.005)


def drop_sync_objects(conn: psycopg.Connection[Any], name: str) -> dict[str, bool]:
    """Drop the slot and publication called ``name`` (each only if it exists)."""
    slot = _drop_slot(conn, name)
    pub = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if pub:
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
    return {"slot_dropped": slot, "publication_dropped": pub is not None}


def slot_status(conn: psycopg.Connection[Any], name: str) -> SlotStatus:
    """The slot's positions against the WAL *inserted* so far: under synchronous_commit = off
    the write pointer trails by up to wal_buffers, and lag would look smaller than it is."""
    row = conn.execute(
        """
        SELECT active_pid, confirmed_flush_lsn::text, pg_current_wal_insert_lsn()::text,
               pg_wal_lsn_diff(pg_current_wal_insert_lsn(), restart_lsn)::bigint,
               pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::bigint,
               wal_status = 'lost'
        FROM pg_replication_slots WHERE slot_name = %s
        """,
        (name,),
    ).fetchone()
    if row is None:
        return SlotStatus(name, exists=False)
    pid, confirmed, current, retained, lag, lost = row
    return SlotStatus(
        name,
        exists=True,
        active_pid=pid,
        confirmed_lsn=parse_lsn(confirmed) if confirmed else None,
        current_lsn=parse_lsn(current),
        retained_bytes=retained,
        lag_bytes=lag,
        lost=bool(lost),
    )
