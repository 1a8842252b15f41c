"""Apply a slot's decoded changes to the other side, exactly once, with the schema remapped.

How the stream is read (issue 5 asks for a deliberate choice): psycopg 3 has no streaming
replication client, so each round calls ``pg_logical_slot_peek_binary_changes`` (which does
not consume anything), applies the transactions it returns in ONE target transaction that
also stores the position reached, commits, and only then ``pg_replication_slot_advance``\\ s
the slot. The trade-off (each peek re-decodes from the slot's restart point, a poll interval
adds to lag) is measured in ``bench/bench_sync.py``.

Exactly once across kill -9: the stored position means "every transaction that committed
before this LSN is applied". A round skips transactions whose commit starts before it (they
were applied by a round that died before advancing the slot) and takes the position row
``FOR UPDATE``, so two appliers (a running ``strangler sync`` and a cutover draining) never
apply the same transaction twice.

Apply sessions run with ``session_replication_role = replica`` as PostgreSQL's own apply
workers do: the target's foreign-key cascades and triggers (including strangler's write gate)
do not fire a second time for changes that already fired them on the source.

TRUNCATE of a moved table is applied (the target then matches the source), and reported.
DDL on a moved table (the Relation message's columns differ from the target's) stops the
sync before anything of that transaction is applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import StranglerError
from strangler.pg.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    Value,
    decode,
    format_lsn,
    parse_lsn,
)

__all__ = [
    "POSITION_TABLE",
    "Applier",
    "Diverged",
    "NoPosition",
    "Round",
    "SchemaChanged",
    "emit_mark",
    "ensure_position",
    "read_position",
]

POSITION_SCHEMA = "_strangler"
POSITION_TABLE = "sync_position"


class SchemaChanged(StranglerError):
    """A moved table's columns changed on the source while sync ran."""


class NoPosition(StranglerError):
    """The target holds no position for the slot (sync never began, or was ended)."""


class Diverged(StranglerError):
    """An UPDATE or DELETE found no row to change: the target is not what the stream assumes."""


def emit_mark(conn: psycopg.Connection[Any]) -> int:
    """Write a mark into the stream and flush it; returns its LSN.

    A position must sit on a transaction's end: the monolith's flush pointer can stop in the
    middle of a commit record (we lost five rows that way under ``synchronous_commit = off``),
    so "caught up to X" is proven by applying a transaction of our own, committed
    synchronously after everything X covers. ``pg_logical_emit_message`` is that transaction;
    it touches no table.
    """
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = on")
        row = conn.execute(
            "SELECT pg_logical_emit_message(true, 'strangler', 'mark')::text"
        ).fetchone()
    return parse_lsn(str(row[0])) if row else 0


def ensure_position(conn: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """Create the position table (once) and the slot's row at ``lsn`` (if it has none)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(POSITION_SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " slot text PRIMARY KEY,"
            " lsn pg_lsn NOT NULL,"  # every transaction committed before this is applied
            " xid bigint, commit_time timestamptz, applied_at timestamptz NOT NULL DEFAULT now(),"
            " rows bigint NOT NULL DEFAULT 0, transactions bigint NOT NULL DEFAULT 0)"
        ).format(sql.Identifier(POSITION_SCHEMA, POSITION_TABLE))
    )
    conn.execute(
        sql.SQL("INSERT INTO {} (slot, lsn) VALUES (%s, %s::pg_lsn) ON CONFLICT DO NOTHING").format(
            sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)
        ),
        (slot, format_lsn(lsn)),
    )


def read_position(conn: psycopg.Connection[Any], slot: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            sql.SQL(
                "SELECT lsn::text, xid, commit_time, applied_at, rows, transactions FROM {} "
                "WHERE slot = %s"
            ).format(sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)),
            (slot,),
        ).fetchone()
        if _position_table_exists(conn)
        else None
    )
    if row is None:
        return None
    return {
        "lsn": parse_lsn(row[0]),
        "xid": row[1],
        "commit_time": row[2],
        "applied_at": row[3],
        "rows": row[4],
        "transactions": row[5],
    }


def _position_table_exists(conn: psycopg.Connection[Any]) -> bool:
    name = f"{POSITION_SCHEMA}.{POSITION_TABLE}"
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def delete_position(conn: psycopg.Connection[Any], slot: str) -> None:
    if _position_table_exists(conn):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE slot = %s").format(
                sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)
            ),
            (slot,),
        )


@dataclass
class Round:
    """What one round of :meth:`Applier.run_round` did."""

    transactions: int = 0
    rows: int = 0
    skipped: int = 0  # transactions already applied by a round that died before advancing
    position: int = 0
    last_xid: int | None = None
    last_commit: datetime | None = None
    # Seconds from each transaction's commit on the source to its commit on the target.
    lags: list[float] = field(default_factory=list)
    commit_times: list[datetime] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    caught_up: bool = False


@dataclass(frozen=True)
class _Target:
    name: sql.Composable
    label: str
    columns: frozenset[str]
    builtin_types: dict[str, int]


class Applier:
    """Apply one slot's stream from ``source_schema`` to ``target_schema`` for ``tables``."""

    def __init__(
        self,
        source: psycopg.Connection[Any],
        target: psycopg.Connection[Any],
        *,
        slot: str,
        publication: str,
        source_schema: str,
        target_schema: str,
        tables: Sequence[str],
        max_changes: int = 20_000,
    ) -> None:
        self.source = source
        self.target = target
        self.slot = slot
        self.publication = publication
        self.source_schema = source_schema
        self.target_schema = target_schema
        self.tables = set(tables)
        self.max_changes = max_changes
        self._relations: dict[int, Relation] = {}
        self._targets: dict[str, _Target] = {}
        target.execute("SET session_replication_role = replica")

    # ----------------------------------------------------------------------- the round

    def run_round(self) -> Round:
        """Peek, apply durably, advance. Returns what happened; raises on DDL or divergence."""
        done = Round()
        with self.target.transaction():
            stored = self._lock_position()
            done.position = stored
            with self.source.transaction():
                cur = self.source.cursor(name=f"strangler_peek_{self.slot}")
                cur.itersize = 2000
                cur.execute(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s,"
                    " 'proto_version', '1', 'publication_names', %s, 'messages', 'true')",
                    (self.slot, self.max_changes, self.publication),
                )
                messages = (decode(row[0]) for row in cur)
                returned = self._apply_stream(messages, stored, done)
                cur.close()
            done.caught_up = returned < self.max_changes
            if done.position != stored:
                self._store_position(done)
        if done.transactions:
            committed = datetime.now(UTC)
            done.lags = [(committed - t).total_seconds() for t in done.commit_times]
        self._advance(done.position)
        return done

    def _apply_stream(self, messages: Iterator[Any], stored: int, done: Round) -> int:
        count = 0
        in_txn = False
        skipping = False
        pending: list[tuple[sql.Composed, list[Value]]] = []
        xid: int | None = None
        rows_before = 0
        for msg in messages:
            count += 1
            if isinstance(msg, Begin):
                in_txn, skipping, xid = True, msg.final_lsn < stored, msg.xid
                rows_before = done.rows
                if skipping:
                    done.skipped += 1
                continue
            if isinstance(msg, Relation):
                self._relations[msg.relid] = msg
                self._check_relation(msg)
                continue
            if isinstance(msg, Commit):
                if not skipping:
                    self._flush(pending, done)
                    # A mark (our own message, no rows) moves the position but is no
                    # transaction of the monolith's.
                    done.transactions += 0 if done.rows == rows_before else 1
                    done.position = max(done.position, msg.end_lsn)
                    done.last_commit = msg.commit_time
                    done.last_xid = xid
                    done.commit_times.append(msg.commit_time)
                in_txn = skipping = False
                continue
            if skipping or not in_txn:
                continue
            self._change(msg, pending, done)
        if in_txn:
            raise StranglerError(
                "the slot returned a transaction without its commit; nothing of it was applied",
                hint="run 'strangler sync' again; if it repeats, report it with the slot's state",
            )
        return count

    # ----------------------------------------------------------------------- changes

    def _change(
        self, msg: Any, pending: list[tuple[sql.Composed, list[Value]]], done: Round
    ) -> None:
        if isinstance(msg, Insert):
            rel = self._relations[msg.relid]
            target = self._target(rel)
            cols = rel.column_names
            stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                target.name,
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            )
            self._queue(pending, stmt, list(msg.new), done)
        elif isinstance(msg, Update):
            rel = self._relations[msg.relid]
            target = self._target(rel)
            sets = [
                (c, v) for c, v in zip(rel.column_names, msg.new, strict=True) if v is not UNCHANGED
            ]
            # The old key when the key changed (or the whole old row under REPLICA IDENTITY
            # FULL); otherwise the new tuple's key columns still locate the row.
            full = msg.old is not None and not msg.old_is_key
            where_stmt, where_vals = self._where(rel, target, msg.old or msg.new, full=full)
            stmt = sql.SQL("UPDATE {} SET {} WHERE {}").format(
                target.name,
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c, _ in sets
                ),
                where_stmt,
            )
            self._queue(pending, stmt, [v for _, v in sets] + where_vals, done)
        elif isinstance(msg, Delete):
            rel = self._relations[msg.relid]
            target = self._target(rel)
            where_stmt, where_vals = self._where(rel, target, msg.old, full=not msg.old_is_key)
            stmt = sql.SQL("DELETE FROM {} WHERE {}").format(target.name, where_stmt)
            self._queue(pending, stmt, where_vals, done)
        elif isinstance(msg, Truncate):
            self._flush(pending, done)
            names = [self._target(self._relations[r]) for r in msg.relids]
            self.target.execute(
                sql.SQL("TRUNCATE {}{}").format(
                    sql.SQL(", ").join(t.name for t in names),
                    sql.SQL(" RESTART IDENTITY" if msg.restart_identity else ""),
                )
            )
            done.truncated += [t.label for t in names]
        # Origin, Type and logical messages carry nothing to apply.

    def _where(
        self, rel: Relation, target: _Target, values: Sequence[Value], *, full: bool
    ) -> tuple[sql.Composable, list[Value]]:
        parts: list[sql.Composable] = []
        params: list[Value] = []
        for col, value in zip(rel.columns, values, strict=True):
            if not (col.key or full) or value is UNCHANGED:
                continue
            if value is None:
                parts.append(sql.SQL("{} IS NULL").format(sql.Identifier(col.name)))
            else:
                parts.append(sql.SQL("{} = {}").format(sql.Identifier(col.name), sql.Placeholder()))
                params.append(value)
        cond = sql.SQL(" AND ").join(parts)
        if full:
            # Replica identity FULL: identical rows may exist; change exactly one of them.
            cond = sql.SQL("ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)").format(
                target.name, cond
            )
        return cond, params

    def _queue(
        self,
        pending: list[tuple[sql.Composed, list[Value]]],
        stmt: sql.Composed,
        params: list[Value],
        done: Round,
    ) -> None:
        # Consecutive changes with the same statement go to the server as one executemany
        # (one pipelined round trip); order is kept because only neighbours are grouped.
        if pending and pending[0][0] != stmt:
            self._flush(pending, done)
        pending.append((stmt, params))

    def _flush(self, pending: list[tuple[sql.Composed, list[Value]]], done: Round) -> None:
        # Not executemany: its pipeline mode hung under concurrent threads with psycopg 3.3
        # here. Inserts become multi-row VALUES (one round trip per 500 rows); updates and
        # deletes run as prepared statements, each checked to touch exactly one row.
        if not pending:
            return
        stmt = pending[0][0]
        affected = 0
        with self.target.cursor() as cur:
            if stmt.as_string(self.target).startswith("INSERT "):
                width = len(pending[0][1])
                step = max(1, min(500, 60_000 // max(1, width)))
                row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * width))
                head = stmt.as_string(self.target).rsplit(" VALUES ", 1)[0]
                for i in range(0, len(pending), step):
                    chunk = pending[i : i + step]
                    many = sql.SQL("{} VALUES {}").format(
                        sql.SQL(head),  # built from Identifiers above
                        sql.SQL(", ").join([row] * len(chunk)),
                    )
                    cur.execute(many, [v for _, params in chunk for v in params])
                    affected += cur.rowcount
            else:
                for _, params in pending:
                    cur.execute(stmt, params, prepare=True)
                    affected += cur.rowcount
        if affected != len(pending):
            text = stmt.as_string(self.target)
            raise Diverged(
                f"{len(pending)} change(s) to apply but {affected} row(s) matched on the target "
                f"for: {text[:200]}; the target differs from the source, so sync stopped and "
                "nothing of this round was applied",
                hint="run 'strangler verify' to locate the difference; re-copy if needed",
            )
        done.rows += len(pending)
        pending.clear()

    # ----------------------------------------------------------------------- relations

    def _target(self, rel: Relation) -> _Target:
        if rel.namespace != self.source_schema or rel.name not in self.tables:
            raise StranglerError(
                f"the slot sent changes of {rel.namespace}.{rel.name}, which this service does "
                "not move; the publication holds more tables than the spec lists",
                hint="'strangler sync … --stop' then start again to rebuild the publication",
            )
        found = self._targets.get(rel.name)
        if found is None:
            found = self._load_target(rel.name)
            self._targets[rel.name] = found
        return found

    def _load_target(self, table: str) -> _Target:
        rows = self.target.execute(
            """
            SELECT a.attname, a.atttypid FROM pg_attribute a
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = ''
            """,
            (sql.Identifier(self.target_schema, table).as_string(self.target),),
        ).fetchall()
        return _Target(
            sql.Identifier(self.target_schema, table),
            f"{self.target_schema}.{table}",
            frozenset(r[0] for r in rows),
            {r[0]: r[1] for r in rows if r[1] < 16384},
        )

    def _check_relation(self, rel: Relation) -> None:
        target = self._target(rel)
        source_cols = set(rel.column_names)
        added = sorted(source_cols - target.columns)
        removed = sorted(target.columns - source_cols)
        retyped = sorted(
            c.name
            for c in rel.columns
            if c.type_oid < 16384
            and c.name in target.builtin_types
            and target.builtin_types[c.name] != c.type_oid
        )
        if added or removed or retyped:
            what = []
            if added:
                what.append(f"column(s) {', '.join(added)} exist on the source only")
            if removed:
                what.append(f"column(s) {', '.join(removed)} exist on the target only")
            if retyped:
                what.append(f"column(s) {', '.join(retyped)} changed type")
            raise SchemaChanged(
                f"DDL on {rel.namespace}.{rel.name} during sync: {'; '.join(what)} "
                f"(target {target.label}). Sync stopped before applying that transaction; "
                "nothing was applied wrongly",
                hint=f"apply the same change to {target.label}, then run 'strangler sync' again",
            )

    # ----------------------------------------------------------------------- position

    def _lock_position(self) -> int:
        row = self.target.execute(
            sql.SQL("SELECT lsn::text FROM {} WHERE slot = %s FOR UPDATE").format(
                sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)
            ),
            (self.slot,),
        ).fetchone()
        if row is None:
            raise NoPosition(
                f"no stored sync position for slot {self.slot!r} on the target",
                hint="start sync with 'strangler sync SERVICE' (it creates the position)",
            )
        return parse_lsn(row[0])

    def _store_position(self, done: Round) -> None:
        self.target.execute(
            sql.SQL(
                "UPDATE {} SET lsn = %s::pg_lsn, xid = coalesce(%s, xid),"
                " commit_time = coalesce(%s, commit_time), applied_at = now(),"
                " rows = rows + %s, transactions = transactions + %s WHERE slot = %s"
            ).format(sql.Identifier(POSITION_SCHEMA, POSITION_TABLE)),
            (
                format_lsn(done.position),
                done.last_xid,
                done.last_commit,
                done.rows,
                done.transactions,
                self.slot,
            ),
        )

    def _advance(self, lsn: int) -> None:
        """Move the slot to ``lsn`` so the monolith can recycle WAL; safe to skip on a race."""
        # Another applier may hold or have moved the slot; the next round advances it then.
        with contextlib.suppress(
            psycopg.errors.ObjectInUse, psycopg.errors.ObjectNotInPrerequisiteState
        ):
            self.source.execute(
                "SELECT pg_replication_slot_advance(slot_name, %s::pg_lsn)"
                " FROM pg_replication_slots"
                " WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
                (format_lsn(lsn), self.slot, format_lsn(lsn)),
            )
