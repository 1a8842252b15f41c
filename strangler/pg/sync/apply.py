"""Apply a slot's decoded changes to the other side, exactly once, with the schema remapped.

How the stream is read (issue 5 asks for a deliberate choice): a long-running sync streams the
slot over a replication connection (:mod:`strangler.pg.sync.stream`,
:meth:`Applier.stream_round`), so the walsender decodes each change once; a round collects
whole transactions, applies them in ONE target transaction that also stores the position
reached, commits, and only then confirms that position to the server. The SQL slot functions
remain as a second reader (:meth:`Applier.run_round`: peek, apply, commit,
``pg_replication_slot_advance``); each peek re-decodes from the slot's restart point, which
``bench/bench_sync.py`` measures against the stream in the same run.

Exactly once across kill -9: the stored position means "every transaction that committed
before this LSN is applied". A round skips transactions whose commit starts before it (they
were applied by a round that died before advancing the slot) and takes the position row
``FOR UPDATE``, so two appliers (a running ``strangler sync`` and a cutover draining) never
apply the same transaction twice.

Apply sessions run with ``session_replication_role = replica`` as PostgreSQL's own apply
workers do: the target's foreign-key cascades and triggers (including strangler's write gate)
do not fire a second time for changes that already fired them on the source.

A round's changes are grouped by table and folded to one net change per key
(:mod:`strangler.pg.sync.fold`), then written with a few set-based statements per table
(:mod:`strangler.pg.sync.stage`); what cannot be folded is replayed change by change
(:mod:`strangler.pg.sync.ordered`). Grouping by table reorders changes *across* tables, which is
safe because the round commits as one transaction and, with the replica role, no foreign key
or trigger looks at another table before the commit; the order *within* a table is kept.

TRUNCATE of a moved table is applied (the target then matches the source), and reported.
DDL on a moved table (the Relation message's columns differ from the target's) stops the
sync before anything of that transaction is applied.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import NoPosition, SchemaChanged, StranglerError, SyncError
from strangler.pg.sync.catchup import apply_catching_up
from strangler.pg.sync.fold import CannotFold, Folded, fold
from strangler.pg.sync.ordered import replay
from strangler.pg.sync.partitions import partition_tree, partitioned_roots, tree_differences
from strangler.pg.sync.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    decode,
    format_lsn,
    parse_lsn,
)
from strangler.pg.sync.position import (
    POSITION_SCHEMA,
    POSITION_TABLE,
    catch_up_until,
    end_catch_up,
)
from strangler.pg.sync.stage import Diverged, Stage, stage_for
from strangler.pg.sync.stream import SlotStream

__all__ = [
    "Applier",
    "Diverged",
    "NoPosition",
    "Round",
    "SchemaChanged",
]

log = logging.getLogger(__name__)

_RowChange = Insert | Update | Delete


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
    # changes of tables the publication no longer carries (taken out by an operator)
    foreign_skipped: int = 0


@dataclass(frozen=True)
class _Target:
    name: sql.Identifier
    label: str
    columns: frozenset[str]
    builtin_types: dict[str, int]


@dataclass
class _Batch:
    """A table's changes in this round, in commit order, under one Relation."""

    rel: Relation
    changes: list[_RowChange] = field(default_factory=list)


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
        self._stages: dict[tuple[str, tuple[str, ...]], Stage] = {}
        self._stage_numbers = 0
        self._batches: dict[str, _Batch] = {}
        self._used: set[int] = set()  # stages holding rows in this round's transaction
        self.folded = self.replayed = 0  # tables applied each way, for the benchmark's notes
        self.replayed_changes = 0  # changes that went one by one
        self._clean_at = 0.0  # when an idle round last moved the position over other WAL
        # Catch-up mode (pg/sync/catchup.py): where it ends, read each round until the
        # position passes it (or there is none); then never again.
        self._catch_up: int | None = None
        self._catch_up_validate: list[tuple[str, str]] = []
        self._catch_up_over = False
        self.caught_up_changes = 0  # changes applied by the catch-up rules
        # Partitioned tables travel through their root; their trees are watched each round.
        self._partitioned = partitioned_roots(source, source_schema, tables)
        # The moved tables' OIDs: a change under another name is one of them renamed.
        self._moved_oids: dict[int, str] = {
            int(r[0]): r[1]
            for r in source.execute(
                "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
                (source_schema, sorted(tables)),
            ).fetchall()
        }
        target.execute("SET session_replication_role = replica")
        # The staged statements join a few thousand rows to a big table by its key: an index
        # lookup per row. Without statistics on the temporary table a hash join over the
        # whole target table can look cheaper to the planner than it is.
        target.execute("SET enable_hashjoin = off")
        target.execute("SET enable_mergejoin = off")

    # ----------------------------------------------------------------------- the round

    def run_round(self) -> Round:
        """One round through the SQL functions: peek, apply durably, advance the slot.

        For a drain or a single step; a long-running sync streams (:meth:`stream_round`).
        """
        done = Round()
        self.check_partitions()
        with self._round(done) as stored:
            with (
                self.source.transaction(),
                self.source.cursor(name=f"strangler_peek_{self.slot}") as cur,
            ):
                cur.itersize = 5000
                cur.execute(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s,"
                    " 'proto_version', '1', 'publication_names', %s, 'messages', 'true')",
                    (self.slot, self.max_changes, self.publication),
                    binary=True,  # the bytes as they are: no hex on either side
                )
                returned = self._apply_stream((decode(row[0]) for row in cur), stored, done)
            done.caught_up = returned < self.max_changes
        self._advance(done.position)
        return done

    def stream_round(
        self,
        stream: SlotStream,
        *,
        wait: float,
        linger: float = 0.005,
        budget: float = 0.1,
        clean_every: float = 1.0,
    ) -> Round:
        """One round from a replication stream: collect whole transactions, apply them in one
        target transaction, then confirm the stored position to the server.

        Waits up to ``wait`` for the first message; the round closes at a commit when the
        stream has been quiet for ``linger``, ``budget`` seconds after its first message or
        after ``max_changes`` changes: the lag stays near ``budget`` while a busy stream
        still moves in rounds of thousands of rows.
        """
        messages: list[Any] = []
        changes, in_txn, quiet = 0, False, False
        started = 0.0
        while True:
            data = stream.read(linger if messages and not in_txn else wait)
            if data is None:
                if in_txn:
                    continue  # the rest of a transaction is on its way
                quiet = True
                break
            msg = decode(data)
            if not messages:
                started = time.monotonic()
            messages.append(msg)
            if isinstance(msg, Begin):
                in_txn = True
            elif isinstance(msg, Commit):
                in_txn = False
                if changes >= self.max_changes or time.monotonic() - started >= budget:
                    break
            elif isinstance(msg, Insert | Update | Delete):
                changes += 1
        done = Round()
        if not messages:
            done.position, done.caught_up = stream.confirmed, True
            clean = stream.server_lsn
            if clean > stream.confirmed and time.monotonic() - self._clean_at >= clean_every:
                # Idle, and the monolith wrote WAL of other tables: move the position over
                # it, so lag counts only the moved tables' changes still to apply.
                with self._round(done) as stored:
                    done.position = max(stored, clean)
                self._clean_at = time.monotonic()
                stream.confirm(done.position)
            return done
        self.check_partitions()
        with self._round(done) as stored:
            self._apply_stream(iter(messages), stored, done)
            done.caught_up = quiet
            # Every message read so far is in this round: the walsender's decoded end is
            # behind us too.
            done.position = max(done.position, stream.server_lsn)
        stream.confirm(done.position)
        return done

    @contextlib.contextmanager
    def _round(self, done: Round) -> Iterator[int]:
        """The target transaction of a round: position locked, rows, new position, commit."""
        stages_before = set(self._stages)
        self._used.clear()
        try:
            with self.target.transaction():
                stored = self._lock_position()
                done.position = stored
                self._read_catch_up(stored)
                yield stored
                if done.position != stored:
                    self._store_position(done)
                if self._catch_up is not None and done.position >= self._catch_up:
                    self._end_catch_up()
        except BaseException as exc:
            # The rollback took the staging tables this round created with it.
            for ident in set(self._stages) - stages_before:
                del self._stages[ident]
            self._batches.clear()
            if isinstance(exc, psycopg.errors.IntegrityError | Diverged):
                # A row with no partition to go to, or one that is missing, is how a changed
                # partition tree shows itself mid-round: say that rather than the symptom.
                self.check_partitions()
            raise
        if done.transactions:
            committed = datetime.now(UTC)
            done.lags = [(committed - t).total_seconds() for t in done.commit_times]

    @property
    def partitioned(self) -> list[str]:
        """The moved tables that are partitioned."""
        return list(self._partitioned)

    def check_partitions(self) -> None:
        """Stop (SchemaChanged) before a round when the partition trees of the two sides
        differ: a partition attached, detached or created during sync is a change the stream
        cannot carry (:mod:`strangler.pg.sync.partitions`)."""
        if not self._partitioned:
            return
        src = partition_tree(self.source, self.source_schema, self._partitioned)
        dst = partition_tree(self.target, self.target_schema, self._partitioned)
        found = tree_differences(src, dst, self.source_schema, self.target_schema)
        if found:
            raise SchemaChanged(
                "the partitions of a moved table changed during sync: "
                + "; ".join(found)
                + ". Sync stopped before applying anything after that; nothing was applied "
                "wrongly",
                hint=f"make the two trees equal again: create or attach the same partition in "
                f"{self.target_schema} and copy the rows it held (INSERT … SELECT, in a session "
                "with SET session_replication_role = replica, which the write gate lets "
                f"through), or detach it there too; or undo the change on {self.source_schema}. "
                "Then run 'strangler sync' again (it gates the new partition) and 'strangler "
                "verify'",
            )

    def _read_catch_up(self, stored: int) -> None:
        """Inside a round's transaction, before its changes: whether catch-up mode runs."""
        if self._catch_up_over:
            return
        found = catch_up_until(self.target, self.slot)
        if found is None:
            self._catch_up, self._catch_up_over = None, True
            return
        self._catch_up, self._catch_up_validate = found
        if self._catch_up <= stored:
            self._end_catch_up()

    def _end_catch_up(self) -> None:
        """The position has passed catch-up's end: the rows are consistent from here on, so
        what the copy left NOT VALID is validated, in this round's transaction."""
        for table, constraint in self._catch_up_validate:
            self.target.execute(
                sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                    sql.Identifier(self.target_schema, table), sql.Identifier(constraint)
                )
            )
        end_catch_up(self.target, self.slot)
        self._catch_up, self._catch_up_over = None, True

    def _catching_up(self, commit_lsn: int) -> bool:
        """Whether the transaction committing at ``commit_lsn`` is applied by the catch-up
        rules: it may be older than what the copy read for some of its rows."""
        return self._catch_up is not None and commit_lsn < self._catch_up

    def stored_position(self) -> int:
        """The position the target holds (another applier may be moving it)."""
        return self._lock_position(lock=False)

    def _apply_stream(self, messages: Iterator[Any], stored: int, done: Round) -> int:
        count = 0
        in_txn = False
        skipping = catching_up = False
        xid: int | None = None
        rows_before = 0
        for msg in messages:
            count += 1
            if isinstance(msg, Begin):
                in_txn, skipping, xid = True, msg.final_lsn < stored, msg.xid
                rows_before = done.rows
                if skipping:
                    done.skipped += 1
                catching_up = not skipping and self._catching_up(msg.final_lsn)
                if catching_up:
                    self._flush_all()  # what came before goes first, by the strict rules
                continue
            if isinstance(msg, Relation):
                # Through the root, pgoutput describes a partition as well as the moved
                # table; only a change of a relation strangler does not move is an error.
                if self._moves(msg):
                    self._check_relation(msg)
                old = self._relations.get(msg.relid)
                batch = self._batches.get(msg.name)
                if batch is not None and old is not None and old.columns != msg.columns:
                    self._flush(msg.name)  # its changes were decoded under the old layout
                self._relations[msg.relid] = msg
                continue
            if isinstance(msg, Commit):
                if not skipping:
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
            if isinstance(msg, Insert | Update | Delete):
                rel = self._relations[msg.relid]
                if not self._moves(rel):
                    self._foreign(rel, done)
                    continue
                target = self._target(rel)
                if catching_up:
                    apply_catching_up(self.target, target.name, rel, msg)
                    self.caught_up_changes += 1
                    done.rows += 1
                    continue
                batch = self._batches.get(rel.name)
                if batch is None:
                    batch = self._batches[rel.name] = _Batch(rel)
                batch.changes.append(msg)
                done.rows += 1
            elif isinstance(msg, Truncate):
                rels = [self._relations[r] for r in msg.relids]
                for rel in rels:
                    if not self._moves(rel):
                        self._foreign(rel, done)
                names = [self._target(rel) for rel in rels if self._moves(rel)]
                if not names:
                    continue
                self._flush_all()
                self.target.execute(
                    sql.SQL("TRUNCATE {}{}").format(
                        sql.SQL(", ").join(t.name for t in names),
                        sql.SQL(" RESTART IDENTITY" if msg.restart_identity else ""),
                    )
                )
                done.truncated += [t.label for t in names]
            # Origin, Type and logical messages carry nothing to apply.
        if in_txn:
            raise StranglerError(
                "the slot returned a transaction without its commit; nothing of it was applied",
                hint="run 'strangler sync' again; if it repeats, report it with the slot's state",
            )
        self._flush_all()
        return count

    # ----------------------------------------------------------------------- writing

    def _flush_all(self) -> None:
        for name in list(self._batches):
            self._flush(name)

    def _flush(self, name: str) -> None:
        batch = self._batches.pop(name, None)
        if batch is None or not batch.changes:
            return
        rel, target = batch.rel, self._target(batch.rel)
        key = tuple(i for i, c in enumerate(rel.columns) if c.key)
        width = len(rel.columns)
        changes = batch.changes
        while changes:
            try:
                folded = fold(changes, key if rel.replica_identity != "f" else (), width)
            except CannotFold as why:
                if why.at is None:  # nothing of this table folds: all of it in order
                    log.debug("%s: replayed change by change (%s)", target.label, why)
                    self._replay(target, rel, changes)
                    return
                # Only the change that needs order is replayed on its own; what comes before
                # it is folded and applied first, what comes after is folded next (issue 12).
                log.debug("%s: one change replayed in order (%s)", target.label, why)
                head, odd, changes = changes[: why.at], changes[why.at], changes[why.at + 1 :]
                if head:
                    self._apply_folded(target, rel, key, head, fold(head, key, width))
                self._replay(target, rel, [odd])
                continue
            self._apply_folded(target, rel, key, changes, folded)
            return

    def _apply_folded(
        self,
        target: _Target,
        rel: Relation,
        key: tuple[int, ...],
        changes: list[_RowChange],
        folded: Folded,
    ) -> None:
        stage = self._stage(target, rel, key)
        if id(stage) in self._used:  # flushed before in this round
            self.target.execute(sql.SQL("DELETE FROM {}").format(stage.name))
        self._used.add(id(stage))
        try:
            with self.target.transaction():  # a savepoint: a failed try leaves nothing behind
                stage.apply(self.target, folded)
        except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as why:
            # Unique values swapped between rows within the round: only the source's order
            # of changes passes the constraint.
            log.debug("%s: replayed change by change (%s)", target.label, why)
            self._replay(target, rel, changes)
            return
        self.folded += 1

    def _replay(self, target: _Target, rel: Relation, changes: list[_RowChange]) -> None:
        replay(self.target, target.name, [(rel, c) for c in changes])
        self.replayed += 1
        self.replayed_changes += len(changes)

    def _stage(self, target: _Target, rel: Relation, key: tuple[int, ...]) -> Stage:
        ident = (rel.name, rel.column_names)
        stage = self._stages.get(ident)
        if stage is None:
            self._stage_numbers += 1
            stage = stage_for(
                self.target, target.name, target.label, rel.column_names, key, self._stage_numbers
            )
            self._stages[ident] = stage
        return stage

    # ----------------------------------------------------------------------- relations

    def _moves(self, rel: Relation) -> bool:
        return rel.namespace == self.source_schema and rel.name in self.tables

    def _foreign(self, rel: Relation, done: Round) -> None:
        """A change of a relation this service does not move. Skipped (and counted) when the
        publication no longer carries it, which is how an operator answers the error below;
        otherwise SyncError saying what happened and what will help, nothing applied."""
        what = f"{rel.namespace}.{rel.name}"
        row = self.source.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.oid = %s",
            (rel.relid,),
        ).fetchone()
        now = f"{row[0]}.{row[1]}" if row else what
        moved = self.source.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.oid = %s",
            (self.source_schema, sorted(self.tables), rel.relid),
        ).fetchone()
        gone = sorted(self.tables - set(self._moved_oids.values()))
        if moved is not None or rel.relid in self._moved_oids or gone:
            old = self._moved_oids.get(rel.relid) or ", ".join(gone) or what
            raise SchemaChanged(
                f"the moved table {self.source_schema}.{old} is now called {now} on the "
                "monolith (renamed or moved to another schema during sync); nothing of that "
                "transaction was applied",
                hint=f"rename it back on the monolith (ALTER TABLE … RENAME TO {old}), then run "
                "'strangler sync' again; to keep the new name, rename the service's table the "
                "same way and change the spec's tables to match",
            )
        published = self.source.execute(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s "
            "AND tablename = %s",
            (self.publication, rel.namespace, rel.name),
        ).fetchone()
        if published is None:
            # Taken out of the publication after these changes were written: they are not
            # the service's, and the slot will send no more of them.
            done.foreign_skipped += 1
            return
        listed = self.target.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (self.target_schema, rel.name),
        ).fetchone()
        pub = sql.Identifier(self.publication).as_string(self.source)
        name = sql.Identifier(rel.namespace, rel.name).as_string(self.source)
        if listed is not None and rel.namespace == self.source_schema:
            raise SyncError(
                f"the slot sent changes of {what}, which the service's schema "
                f"{self.target_schema} holds and publication {self.publication} carries, but "
                "the spec's tables no longer list it; nothing of that transaction was applied",
                hint="put it back in the service's tables in the spec (it was copied and is "
                "kept in sync), then run 'strangler sync' again",
            )
        raise SyncError(
            f"the slot sent changes of {what}, which this service does not move: publication "
            f"{self.publication} carries it (it was added to the publication outside "
            "strangler); nothing of that transaction was applied",
            hint=f"take it out of the publication on the monolith: ALTER PUBLICATION {pub} DROP "
            f"TABLE {name}; then run 'strangler sync' again: changes of {what} already in the "
            "slot are then skipped, and the slot is kept (do not use --stop: it drops the slot "
            "and the service's schema then no longer meets a change stream)",
        )

    def _target(self, rel: Relation) -> _Target:
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

    def _lock_position(self, *, lock: bool = True) -> int:
        row = self.target.execute(
            sql.SQL("SELECT lsn::text FROM {} WHERE slot = %s{}").format(
                sql.Identifier(POSITION_SCHEMA, POSITION_TABLE),
                sql.SQL(" FOR UPDATE" if lock else ""),
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
