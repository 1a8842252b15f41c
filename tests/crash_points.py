"""A journal whose transaction fails at COMMIT once it has made a chosen write: the journal's
disk full at the worst moment (the fault campaign's journal-disk), which leaves the journal
exactly as a kill -9 there would. Writes that belong together must land together or not at
all; a test arms this on the second of two writes to show it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from strangler.journal import Journal

# strangler_entries' INSERT parameters, in order (journal.Journal._insert)
_ENTRY = ("service", "at", "operator", "command", "step", "kind", "intent_id", "status")


def entry_of(
    step: str, kind: str, status: str | None = None
) -> Callable[[str, tuple[Any, ...]], bool]:
    """Arm on the journal row of ``step`` of ``kind`` (with ``status``, when given)."""

    def match(query: str, params: tuple[Any, ...]) -> bool:
        if not query.startswith("INSERT INTO strangler_entries"):
            return False
        row = dict(zip(_ENTRY, params, strict=False))
        wanted = status is None or row["status"] == status
        return row["step"] == step and row["kind"] == kind and wanted

    return match


def outcome_of(step: str) -> Callable[[str, tuple[Any, ...]], bool]:
    """Arm on the ``ok`` outcome row of ``step``."""
    return entry_of(step, "outcome", "ok")


def progress_write(key: str) -> Callable[[str, tuple[Any, ...]], bool]:
    """Arm on a write (save or delete) of the progress record ``key``."""

    def match(query: str, params: tuple[Any, ...]) -> bool:
        return (
            query.startswith(("INSERT INTO strangler_progress", "DELETE FROM strangler_progress"))
            and len(params) > 1
            and params[1] == key
        )

    return match


class _FailingCommit:
    def __init__(self, conn: sqlite3.Connection, when: Callable[[str, tuple[Any, ...]], bool]):
        self._conn, self._when = conn, when
        self.armed = False
        self.fired = False

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        if not self.fired and self._when(query, params):
            self.armed = True
        if query == "COMMIT" and self.armed:
            self.armed, self.fired = False, True
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextlib.contextmanager
def commit_fails(
    journal: Journal, when: Callable[[str, tuple[Any, ...]], bool]
) -> Iterator[_FailingCommit]:
    """The first transaction of ``journal`` (a SQLite one) that makes a write ``when``
    matches fails at COMMIT, once; yields the switch (``fired`` says whether it did)."""
    real = journal._conn  # the fault sits under the journal, on purpose
    failing = _FailingCommit(real, when)
    journal._conn = failing
    try:
        yield failing
    finally:
        journal._conn = real
