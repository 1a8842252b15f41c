"""State and audit log of every migration: who did what, when, why, and how it ended.

Every mutating step writes an *intent* entry before it acts and an *outcome* entry after. An
intent without an outcome means the process died in between; the next command on that
service finds it (:meth:`Journal.dangling`) and either resumes the step, when the step says it
is resumable, or refuses until an operator resolves it. A step is never silently repeated.

The same schema lives in SQLite (the default, one file next to the spec) or in PostgreSQL (a
``postgresql://`` URL, for a team sharing one journal). The per-service lock is an OS file
lock for SQLite and a session advisory lock for PostgreSQL: both vanish with the process that
held them, so a kill -9 never leaves a service locked forever.

Invariants, kept by the schema where SQL can (see ``_SCHEMA``):
- an outcome points to exactly one intent, and an intent has at most one outcome;
- a service's phase changes only in the same transaction as the outcome that justifies it.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from strangler.errors import (
    DatabaseUnreachable,
    FileProblem,
    LockHeld,
    StranglerError,
    file_problem,
    translate,
)
from strangler.secrets import redact_dsn, scrub

__all__ = [
    "Entry",
    "Journal",
    "LockHolder",
    "ServiceState",
    "current_operator",
    "file_lock_taken",
    "open_journal",
]

Kind = Literal["intent", "outcome", "event"]

_SCHEMA = [
    # One row per thing that happened. Intents and outcomes pair up through intent_id.
    """CREATE TABLE IF NOT EXISTS strangler_entries (
        id {pk},
        service TEXT NOT NULL,
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        command TEXT NOT NULL,
        step TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('intent', 'outcome', 'event')),
        -- an outcome names its intent; intents and events name none
        intent_id BIGINT REFERENCES strangler_entries (id),
        status TEXT,
        reason TEXT,
        details TEXT NOT NULL DEFAULT '{{}}',
        CHECK ((kind = 'outcome') = (intent_id IS NOT NULL))
    )""",
    # An intent has at most one outcome: a step cannot both succeed and fail.
    """CREATE UNIQUE INDEX IF NOT EXISTS strangler_one_outcome
        ON strangler_entries (intent_id) WHERE intent_id IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS strangler_by_service ON strangler_entries (service, id)",
    # Where each service stands; changed only together with an outcome entry.
    """CREATE TABLE IF NOT EXISTS strangler_services (
        service TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        weight DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (weight >= 0 AND weight <= 100),
        updated_at TEXT NOT NULL
    )""",
    # Who holds a service's lock, for the error a second operator sees. The lock itself is
    # an OS file lock (SQLite) or an advisory lock (PostgreSQL); this row only describes it.
    """CREATE TABLE IF NOT EXISTS strangler_locks (
        service TEXT PRIMARY KEY,
        operator TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        since TEXT NOT NULL
    )""",
    # Progress of long resumable work (copy chunks, sync positions, bake windows).
    """CREATE TABLE IF NOT EXISTS strangler_progress (
        service TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, key)
    )""",
]


def current_operator(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except Exception:
        return f"uid{os.getuid()}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Entry:
    id: int
    service: str
    at: datetime
    operator: str
    command: str
    step: str
    kind: Kind
    intent_id: int | None
    status: str | None
    reason: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "at": self.at.isoformat(),
            "operator": self.operator,
            "command": self.command,
            "step": self.step,
            "kind": self.kind,
            "intent_id": self.intent_id,
            "status": self.status,
            "reason": self.reason,
            "details": self.details,
        }


@dataclass(frozen=True)
class ServiceState:
    service: str
    phase: str
    weight: float
    updated_at: datetime | None


@dataclass(frozen=True)
class LockHolder:
    """The process holding a service's lock right now (see :meth:`Journal.lock_holder`)."""

    service: str
    operator: str
    host: str
    pid: int
    command: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "host": self.host,
            "pid": self.pid,
            "command": self.command,
            "since": self.since.isoformat(),
        }


@dataclass
class _LockHandle:
    count: int = 0
    release: Callable[[], None] = field(default=lambda: None)


class Journal:
    """The journal of one spec. Thread-safe; one instance per process is enough.

    ``clock`` is injectable so that tests (and ``demo --fast-forward``) can move time.
    """

    def __init__(
        self,
        url: str,
        *,
        operator: str | None = None,
        command: str = "",
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.url = url
        self.operator = current_operator(operator)
        self.command = command
        self.clock = clock
        self._mutex = threading.RLock()
        self._tx_depth = 0
        self._locks: dict[str, _LockHandle] = {}
        self._is_pg = url.startswith(("postgresql://", "postgres://"))
        self._conn: Any = self._connect()
        self._init_schema()

    # ------------------------------------------------------------------ connection plumbing

    def _connect(self) -> Any:
        if self._is_pg:
            import psycopg  # only for a journal on PostgreSQL: a sqlite one starts faster

            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise DatabaseUnreachable(
                    f"cannot open the journal at {redact_dsn(self.url)}: {scrub(str(exc)).strip()}",
                    hint="check the spec's state: URL, or use the default sqlite:/// journal",
                ) from exc
            with self._errors():
                conn.execute("CREATE SCHEMA IF NOT EXISTS strangler")
                conn.execute("SET search_path = strangler")
            return conn
        path = Path(self.url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lite = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA synchronous=FULL")
            lite.execute("PRAGMA foreign_keys=ON")
        except OSError as exc:
            raise file_problem(path, exc, "open the journal") from exc
        except sqlite3.Error as exc:
            raise FileProblem(
                f"cannot open the journal {path}: {exc}",
                hint="check the spec's state: path is a writable file (or a postgresql:// URL)",
            ) from exc
        return lite

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s") if self._is_pg else query

    def _init_schema(self) -> None:
        pk = (
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            if self._is_pg
            else "INTEGER PRIMARY KEY AUTOINCREMENT"
        )
        with self._tx():
            if self._is_pg:
                # Two processes creating the schema at once would race on the catalog.
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('strangler:schema'))")
            for stmt in _SCHEMA:
                self._conn.execute(stmt.format(pk=pk))

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        """What the journal's database says (a read-only journal, a full disk, a lost
        server) as a StranglerError naming the journal, never a foreign exception: the
        fault campaign of issue 15 met all three."""
        return translate(
            f"the journal at {redact_dsn(self.url)}",
            hint="check that the spec's state: is writable by this user and its disk has room, "
            "then run the same command again",
        )

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction for every journal write made inside (re-entrant): what a step
        records as it ends commits with its outcome, or not at all. A kill -9 between two
        writes that belong together left, say, a phase without its proof, or a rollback
        without the record that stops the walk from undoing it."""
        with self._tx():
            yield

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        with self._mutex, self._errors():
            if self._tx_depth:
                # Inside atomic(): this write joins the transaction already open.
                self._tx_depth += 1
                try:
                    yield
                finally:
                    self._tx_depth -= 1
                return
            self._tx_depth = 1
            try:
                with self._open_tx():
                    yield
            finally:
                self._tx_depth = 0

    @contextlib.contextmanager
    def _open_tx(self) -> Iterator[None]:
        if self._is_pg:
            with self._conn.transaction():
                yield
        else:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (a full disk) leaves the transaction open: close
                # it, or every later write meets "cannot start a transaction within a
                # transaction".
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    def _exec(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        with self._errors():
            return self._conn.execute(self._sql(query), params)

    def close(self) -> None:
        with self._mutex:
            for service in list(self._locks):
                handle = self._locks.pop(service)
                handle.release()
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- entries

    def _insert(
        self,
        service: str,
        step: str,
        kind: Kind,
        *,
        intent_id: int | None = None,
        status: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        command: str | None = None,
    ) -> int:
        payload = scrub(json.dumps(details or {}, default=str, sort_keys=True))
        row = self._exec(
            "INSERT INTO strangler_entries "
            "(service, at, operator, command, step, kind, intent_id, status, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                service,
                self.clock().isoformat(),
                self.operator,
                command if command is not None else self.command,
                step,
                kind,
                intent_id,
                status,
                scrub(reason) if reason else None,
                payload,
            ),
        ).fetchone()
        return int(row[0])

    def intent(
        self,
        service: str,
        step: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Record that ``step`` is about to act. Returns the id its outcome must name."""
        with self._tx():
            self._ensure_service(service)
            return self._insert(service, step, "intent", reason=reason, details=details)

    def outcome(
        self,
        intent_id: int,
        status: str,
        *,
        details: dict[str, Any] | None = None,
        phase: str | None = None,
        weight: float | None = None,
    ) -> int:
        """Record how an intent ended, and move the service's phase in the same transaction."""
        with self._tx():
            intent = self._exec(
                "SELECT service, step FROM strangler_entries WHERE id = ? AND kind = 'intent'",
                (intent_id,),
            ).fetchone()
            if intent is None:
                raise StranglerError(f"journal entry {intent_id} is not an intent")
            service, step = intent
            entry_id = self._insert(
                service, step, "outcome", intent_id=intent_id, status=status, details=details
            )
            if phase is not None or weight is not None:
                self._set_state(service, phase, weight)
            return entry_id

    def event(
        self,
        service: str,
        step: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Record a self-contained fact (a verification result, a gate evaluation)."""
        with self._tx():
            self._ensure_service(service)
            return self._insert(
                service, step, "event", status=status, reason=reason, details=details
            )

    def dangling(self, service: str) -> list[Entry]:
        """Intents with no outcome: steps whose process died before it could say how it ended."""
        rows = self._exec(
            "SELECT * FROM strangler_entries i WHERE i.service = ? AND i.kind = 'intent' "
            "AND NOT EXISTS (SELECT 1 FROM strangler_entries o WHERE o.intent_id = i.id) "
            "ORDER BY i.id",
            (service,),
        ).fetchall()
        return [self._entry(r) for r in rows]

    def history(self, service: str | None = None, *, limit: int | None = None) -> list[Entry]:
        query = "SELECT * FROM strangler_entries"
        params: tuple[Any, ...] = ()
        if service is not None:
            query += " WHERE service = ?"
            params = (service,)
        query += " ORDER BY id DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        rows = self._exec(query, params).fetchall()
        return [self._entry(r) for r in reversed(rows)]

    def last(self, service: str, step: str, *, status: str | None = None) -> Entry | None:
        """The newest outcome or event of ``step`` (optionally with ``status``)."""
        query = (
            "SELECT * FROM strangler_entries WHERE service = ? AND step = ? AND kind <> 'intent'"
        )
        params: tuple[Any, ...] = (service, step)
        if status is not None:
            query += " AND status = ?"
            params = (*params, status)
        row = self._exec(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return self._entry(row) if row else None

    @staticmethod
    def _entry(row: Any) -> Entry:
        return Entry(
            id=int(row[0]),
            service=row[1],
            at=datetime.fromisoformat(row[2]),
            operator=row[3],
            command=row[4],
            step=row[5],
            kind=row[6],
            intent_id=row[7],
            status=row[8],
            reason=row[9],
            details=json.loads(row[10]),
        )

    # ------------------------------------------------------------------------------ state

    def _ensure_service(self, service: str) -> None:
        self._exec(
            "INSERT INTO strangler_services (service, phase, weight, updated_at) "
            "VALUES (?, 'planned', 0, ?) ON CONFLICT (service) DO NOTHING",
            (service, self.clock().isoformat()),
        )

    def _set_state(self, service: str, phase: str | None, weight: float | None) -> None:
        self._ensure_service(service)
        if phase is not None:
            self._exec(
                "UPDATE strangler_services SET phase = ?, updated_at = ? WHERE service = ?",
                (phase, self.clock().isoformat(), service),
            )
        if weight is not None:
            self._exec(
                "UPDATE strangler_services SET weight = ?, updated_at = ? WHERE service = ?",
                (float(weight), self.clock().isoformat(), service),
            )

    def state(self, service: str) -> ServiceState:
        row = self._exec(
            "SELECT phase, weight, updated_at FROM strangler_services WHERE service = ?", (service,)
        ).fetchone()
        if row is None:
            return ServiceState(service, "planned", 0.0, None)
        return ServiceState(service, row[0], float(row[1]), datetime.fromisoformat(row[2]))

    # --------------------------------------------------------------------------- progress

    def put(self, service: str, key: str, value: Any) -> None:
        """Store progress of resumable work; ``value`` is JSON-serialisable."""
        payload = scrub(json.dumps(value, default=str, sort_keys=True))
        with self._tx():
            self._exec(
                "INSERT INTO strangler_progress (service, key, value, updated_at) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT (service, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (service, key, payload, self.clock().isoformat()),
            )

    def get(self, service: str, key: str, default: Any = None) -> Any:
        row = self._exec(
            "SELECT value FROM strangler_progress WHERE service = ? AND key = ?", (service, key)
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def items(self, service: str, prefix: str = "") -> dict[str, Any]:
        rows = self._exec(
            "SELECT key, value FROM strangler_progress "
            "WHERE service = ? AND key LIKE ? ESCAPE '\\' ORDER BY key",
            (service, prefix.replace("%", r"\%").replace("_", r"\_") + "%"),
        ).fetchall()
        return {k: json.loads(v) for k, v in rows if k.startswith(prefix)}

    def delete(self, service: str, key: str) -> None:
        """Drop one progress record (exactly ``key``)."""
        with self._tx():
            self._exec(
                "DELETE FROM strangler_progress WHERE service = ? AND key = ?", (service, key)
            )

    def forget(self, service: str, prefix: str) -> None:
        """Drop progress records under ``prefix`` (for example after a schema rollback)."""
        with self._tx():
            for key in self.items(service, prefix):
                self._exec(
                    "DELETE FROM strangler_progress WHERE service = ? AND key = ?", (service, key)
                )

    # ------------------------------------------------------------------------------- locks

    @contextlib.contextmanager
    def lock(self, service: str) -> Iterator[None]:
        """Hold the service's lock; re-entrant within this process.

        Raises LockHeld naming the holder when another process has it.
        """
        with self._mutex:
            handle = self._locks.get(service)
            if handle is None:
                handle = _LockHandle(release=self._acquire(service))
                self._locks[service] = handle
            handle.count += 1
        try:
            yield
        finally:
            with self._mutex:
                handle.count -= 1
                if handle.count == 0:
                    self._locks.pop(service, None)
                    handle.release()

    def holds_lock(self, service: str) -> bool:
        return service in self._locks

    def lock_holder(self, service: str) -> LockHolder | None:
        """Who holds ``service``'s lock now, or None when nobody does.

        The lock itself is asked (a non-blocking try, released at once), not only the row
        that describes it: a row left by a process killed with -9 names nobody. This is how
        ``status`` tells a step running in another process from one that died halfway.
        """
        if service in self._locks:
            held = True
        elif self._is_pg:
            held = self._pg_lock_taken(service)
        else:
            held = self._file_lock_taken(service)
        if not held:
            return None
        row = self._exec(
            "SELECT operator, host, pid, command, since FROM strangler_locks WHERE service = ?",
            (service,),
        ).fetchone()
        if row is None:
            return LockHolder(service, "?", "?", 0, "?", self.clock())
        return LockHolder(
            service, row[0], row[1], int(row[2]), row[3], datetime.fromisoformat(row[4])
        )

    def _file_lock_taken(self, service: str) -> bool:
        return file_lock_taken(Path(self.url.removeprefix("sqlite:///")), service)

    def _pg_lock_taken(self, service: str) -> bool:
        key = zlib.crc32(f"strangler:{service}".encode()) - 2**31
        row = self._exec(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = ?",
            (key,),
        ).fetchone()
        return bool(row and row[0])

    def _acquire(self, service: str) -> Callable[[], None]:
        if self._is_pg:
            return self._acquire_pg(service)
        return self._acquire_file(service)

    def _holder_message(self, service: str) -> LockHeld:
        row = self._exec(
            "SELECT operator, host, pid, command, since FROM strangler_locks WHERE service = ?",
            (service,),
        ).fetchone()
        if row is None:
            who = "another process"
        else:
            operator, host, pid, command, since = row
            who = f"{operator} (pid {pid} on {host}, running '{command}') since {since}"
        return LockHeld(
            f"{service} is locked by {who}",
            hint="wait for that command to finish; strangler releases the lock when its process "
            "exits, even after a crash",
        )

    def _record_holder(self, service: str) -> None:
        host = socket.gethostname()
        with self._tx():
            self._exec("DELETE FROM strangler_locks WHERE service = ?", (service,))
            # Records of processes of this host that are gone: their locks died with them,
            # but a record whose removal failed (the journal's disk full as the process
            # ended) would otherwise stay until that lock is taken again.
            for other, pid in self._exec(
                "SELECT service, pid FROM strangler_locks WHERE host = ?", (host,)
            ).fetchall():
                if not _alive(int(pid)):
                    self._exec(
                        "DELETE FROM strangler_locks WHERE service = ? AND pid = ? AND host = ?",
                        (other, pid, host),
                    )
            self._exec(
                "INSERT INTO strangler_locks (service, operator, host, pid, command, since) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    service,
                    self.operator,
                    socket.gethostname(),
                    os.getpid(),
                    self.command or "?",
                    self.clock().isoformat(),
                ),
            )

    def _forget_holder(self, service: str) -> None:
        with contextlib.suppress(Exception), self._tx():
            self._exec(
                "DELETE FROM strangler_locks WHERE service = ? AND pid = ? AND host = ?",
                (service, os.getpid(), socket.gethostname()),
            )

    def _acquire_file(self, service: str) -> Callable[[], None]:
        db = Path(self.url.removeprefix("sqlite:///"))
        lock_dir = db.parent / (db.name + ".locks")
        with self._errors():
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{service}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._holder_message(service) from None
        self._record_holder(service)

        def release() -> None:
            self._forget_holder(service)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        return release

    def _acquire_pg(self, service: str) -> Callable[[], None]:
        # A dedicated session holds the advisory lock, so the journal's own connection can
        # commit freely; if this process dies, PostgreSQL ends the session and the lock.
        key = zlib.crc32(f"strangler:{service}".encode()) - 2**31
        import psycopg

        with self._errors():
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not got or not got[0]:
            conn.close()
            raise self._holder_message(service)
        self._record_holder(service)

        def release() -> None:
            self._forget_holder(service)
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            conn.close()

        return release


def file_lock_taken(db: Path, service: str) -> bool:
    """Whether some process holds ``service``'s lock of the SQLite journal at ``db`` now (a
    non-blocking try, released at once): the lock dies with its process, its record may not."""
    path = db.parent / (db.name + ".locks") / f"{service}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this try took
    return False


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_journal(url: str, *, operator: str | None = None, command: str = "") -> Journal:
    return Journal(url, operator=operator, command=command)
