"""Fold a round's changes to one table into one net change per key.

Why: one statement per changed row costs a round trip and a parse each, and the applier then
falls behind a monolith that writes a few thousand rows a second. Folding turns a round into
at most four set-based statements per table (delete, update, update keeping TOASTed values,
insert), the way batch-apply modes of replication tools do. The fold is exact, not a
heuristic: the final state of every key touched in the round is the state the source had after
the round's last transaction, so applying that state in one target transaction is the same
as replaying each change.

What cannot be folded is refused with :class:`CannotFold` and the caller replays the changes
one by one, in order: tables without a replica-identity key, a key value left out of the
stream, a key that moves while some of its row's values are TOASTed and absent, and sequences
that can only come from a target that differs from the source (an insert onto a key the round
already holds, a change to a key the round deleted).

Pure: no I/O, so every rule here is tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from strangler.errors import CannotFold
from strangler.pg.sync.pgoutput import UNCHANGED, Delete, Insert, Update, Value

__all__ = ["CannotFold", "Folded", "fold"]

Row = tuple[Value, ...]
Change = Insert | Update | Delete


@dataclass
class Folded:
    """Net changes, each a full row in the relation's column order.

    ``deletes`` carry their key values and None elsewhere. ``masked`` rows hold
    :data:`UNCHANGED` where the target's current value must stay (a TOASTed value the round
    never saw); ``updates`` rows are complete.
    """

    deletes: list[Row] = field(default_factory=list)
    updates: list[Row] = field(default_factory=list)
    masked: list[Row] = field(default_factory=list)
    inserts: list[Row] = field(default_factory=list)
    changes: int = 0  # changes folded in (for the applier's row count)

    @property
    def statements(self) -> int:
        return sum(1 for rows in (self.deletes, self.updates, self.masked, self.inserts) if rows)


class _Entry:
    """One key's story in the round: did a row exist before it, and what is there after."""

    __slots__ = ("after", "before")

    def __init__(self, before: bool, after: Row | None) -> None:
        self.before = before
        self.after = after


def _merge(base: Row, new: Row) -> Row:
    return tuple(b if n is UNCHANGED else n for b, n in zip(base, new, strict=True))


def fold(changes: Iterable[Change], key: Sequence[int], width: int) -> Folded:
    """Fold ``changes`` (in commit order) of a table whose replica-identity key is the columns
    at positions ``key`` of rows ``width`` wide."""
    if not key:
        raise CannotFold("the table has no replica-identity key (REPLICA IDENTITY FULL)")
    unknown: Row = (UNCHANGED,) * width  # a row that existed before: values not seen yet
    entries: dict[tuple[Value, ...], _Entry] = {}
    count = 0

    def key_of(row: Row) -> tuple[Value, ...]:
        k = tuple(row[i] for i in key)
        if any(v is UNCHANGED or v is None for v in k):
            raise CannotFold("a key value is absent from the stream")
        return k

    def existing(k: tuple[Value, ...], what: str) -> _Entry:
        entry = entries.get(k)
        if entry is None:
            entry = entries[k] = _Entry(True, unknown)
        elif entry.after is None:
            raise CannotFold(f"{what} of a key the round already deleted", at=count - 1)
        return entry

    for change in changes:
        count += 1
        if isinstance(change, Insert):
            k = key_of(change.new)
            entry = entries.get(k)
            if entry is None:
                entries[k] = _Entry(False, change.new)
            elif entry.after is None:
                entry.after = change.new
            else:
                raise CannotFold("an insert onto a key the round already holds", at=count - 1)
        elif isinstance(change, Update):
            new_key = key_of(change.new)
            if change.old is not None and not change.old_is_key:
                raise CannotFold("the old row is the whole row (REPLICA IDENTITY FULL)")
            old_key = key_of(change.old) if change.old is not None else new_key
            entry = existing(old_key, "an update")
            assert entry.after is not None  # existing() refuses a deleted key
            row = _merge(entry.after, change.new)
            if old_key == new_key:
                entry.after = row
                continue
            if UNCHANGED in row:
                raise CannotFold(
                    "a key moved while some of its row's values are absent", at=count - 1
                )
            entry.after = None
            moved = entries.get(new_key)
            if moved is None:
                entries[new_key] = _Entry(False, row)
            elif moved.after is None:
                moved.after = row
            else:
                raise CannotFold("a key moved onto a key the round already holds", at=count - 1)
        elif isinstance(change, Delete):
            if not change.old_is_key:
                raise CannotFold("the old row is the whole row (REPLICA IDENTITY FULL)")
            existing(key_of(change.old), "a delete").after = None
        else:  # pragma: no cover - the applier only hands over row changes
            raise TypeError(f"not a row change: {change!r}")

    out = Folded(changes=count)
    for k, entry in entries.items():
        if entry.after is None:
            if entry.before:
                row_of_key: list[Value] = [None] * width
                for i, v in zip(key, k, strict=True):
                    row_of_key[i] = v
                out.deletes.append(tuple(row_of_key))
        elif not entry.before:
            out.inserts.append(entry.after)
        elif UNCHANGED in entry.after:
            out.masked.append(entry.after)
        else:
            out.updates.append(entry.after)
    return out
