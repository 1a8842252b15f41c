"""Everything the steps keep in the journal besides intents and outcomes, typed, in one place.

Two kinds of record:

- **progress** (the journal's key/value store, overwritten as work advances): what a resumed
  step needs to carry on where a killed one stopped: the copy's chunk plan and each finished
  chunk, the DDL statements already run, the snapshot the online copy met, the running tally
  of a bake, the write guard's starting counters. Each is a frozen dataclass with its key;
  :class:`Progress` reads and writes them for one service, so no step spells a key.
- **events** (append-only journal entries that are facts, not steps): verification
  results, preflight verdicts, attestations, gate evaluations. Their step names are
  :class:`Event`.

The JSON shapes are the ones earlier versions wrote, so a journal written before this module
existed still resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

if TYPE_CHECKING:
    from strangler.journal import Journal

__all__ = [
    "Approved",
    "ArchiveRecord",
    "BakeState",
    "ChunkRecord",
    "CopyPlan",
    "CopyWatermark",
    "Event",
    "GuardState",
    "LagHistory",
    "MoveRecord",
    "OnlineCopy",
    "Progress",
    "Record",
    "ReverseRebuild",
    "RolledBack",
    "SchemaCreated",
]


class Event(StrEnum):
    """Step names of journal events (facts recorded outside any step's intent/outcome)."""

    VERIFY = "verify"
    PREFLIGHT = "preflight"
    VALIDATE = "validate"
    ATTEST = "attest"
    DECOMMISSION_CHECK = "decommission_check"
    BAKE = "bake"
    GATE = "gate"
    ALERT = "alert"
    APPROVE_TRAFFIC = "approve_traffic"
    AWAITING_APPROVAL = "shift_traffic"  # status awaiting_approval, under the step's own name
    ATTACH_SYNC = "attach_sync"
    SYNC = "sync"  # a sync run that failed, or ended because a cutover took its slot
    GUARD_INSTALLED = "guard_installed"
    RUN = "run"
    THROTTLE = "throttle"  # issue 17: a brake's decision changed (go, wait, abort, paused)
    WORKER = "worker"  # issue 17: a `strangler worker` finished its share of the queue
    WORKERS_JOB = "workers_job"  # issue 17: `strangler k8s --apply` created the Indexed Job
    REBUILD_REVERSE = "rebuild_reverse"  # issue 15: reverse sync made again after a lost slot


class Record:
    """A progress record: a frozen dataclass with a journal key and a JSON form."""

    KEY: ClassVar[str]

    def to_json(self) -> Any:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, value: Any) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in dict(value).items() if k in names})


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class SchemaCreated(Record):
    """The service schema strangler made (and whether it made the role): what rollback drops."""

    KEY: ClassVar[str] = "schema/created"
    schema: str
    role: str | None
    role_created: bool


@dataclass(frozen=True)
class MoveRecord(Record):
    """What a move did (``strategy: move``), as :class:`strangler.pg.schema.move.Moved`
    writes it: what its rollback undoes and what removing the old path finishes."""

    KEY: ClassVar[str] = "move/done"
    moved: Mapping[str, Any]

    def to_json(self) -> Any:
        return dict(self.moved)

    @classmethod
    def from_json(cls, value: Any) -> Self:
        return cls(dict(value))


@dataclass(frozen=True)
class CopyPlan(Record):
    """The chunks of a copy, ``{table: [[pk, lo, hi], …]}``, fixed before the first row moves
    so a resumed copy cuts the same ranges."""

    KEY: ClassVar[str] = "copy/plan"
    bounds: Mapping[str, list[list[Any]]]

    def to_json(self) -> Any:
        return dict(self.bounds)

    @classmethod
    def from_json(cls, value: Any) -> Self:
        return cls(dict(value))


@dataclass(frozen=True)
class ChunkRecord(Record):
    """One finished chunk of a copy, under ``copy/chunk/<table>/<index>``."""

    PREFIX: ClassVar[str] = "copy/chunk/"
    rows: int
    bytes: int
    format: str
    snapshot: str | None = None
    seconds: float | None = None  # None: a journal from before chunks were timed, or a queue's


@dataclass(frozen=True)
class CopyWatermark(Record):
    """The target's transaction id after the copy's last write and the rows each table had:
    the proof ``rollback --schema`` needs that nothing wrote to the copy since."""

    KEY: ClassVar[str] = "copy/watermark"
    xid: str | None
    rows: Mapping[str, int]


@dataclass(frozen=True)
class OnlineCopy(Record):
    """The slot an online copy met and the snapshot it exported; ``catch_up``: the copy is
    made under snapshots of its own after the slot, and sync catches up (issue 17)."""

    KEY: ClassVar[str] = "copy/online"
    slot: str
    snapshot: str | None
    catch_up: bool = False


@dataclass(frozen=True)
class BakeState(Record):
    """Where a bake stands between intervals (the tally of :class:`strangler.metrics.gates.Bake`
    plus its journal id, status and the clock of its current interval)."""

    KEY: ClassVar[str] = "traffic:bake"
    weight: float
    needed: int
    failed_limit: int
    max_extensions: int
    status: str  # baking | complete | stalled
    bake_id: int
    on_error: str = "hold"
    done: int = 0
    consecutive_failures: int = 0
    extensions: int = 0
    evaluated: int = 0
    # When the interval being baked began (ISO), and what a counting source read then: lets a
    # later process (``strangler run`` from cron) judge the interval that has elapsed since.
    interval_start: str | None = None
    checkpoint: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RolledBack(Record):
    """An automatic or manual traffic rollback the walk must not undo by itself."""

    KEY: ClassVar[str] = "traffic:rolled_back"
    reason: str
    at: str


@dataclass(frozen=True)
class Approved(Record):
    """The traffic step a person approved (``shift --approve``)."""

    KEY: ClassVar[str] = "traffic:approved"
    step: float

    def to_json(self) -> Any:
        return self.step

    @classmethod
    def from_json(cls, value: Any) -> Self:
        return cls(float(value))


@dataclass(frozen=True)
class GuardState(Record):
    """When the write guard went on the old tables, and where their quiet window starts:
    since when no write was seen (``quiet_since``, ISO; None: since it went on), their write
    counters then, and the newest write-log row accounted for (``seen_id``)."""

    KEY: ClassVar[str] = "decommission:guard"
    installed_at: str
    counters: Mapping[str, int] = field(default_factory=dict)
    quiet_since: str | None = None
    seen_id: int | None = None


@dataclass(frozen=True)
class GuardOff(Record):
    """``remove_old_path`` took the write guard off the old tables for their archive, at
    ``at`` (ISO), when their write counters read ``counters``. A retry of a removal that was
    interrupted after it finds the guard gone by strangler's own hand, and proves the tables
    unwritten since by those counters (issue 15: it used to refuse, and the way out was a
    whole new write window)."""

    KEY: ClassVar[str] = "decommission:guard_off"
    at: str
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReverseRebuild(Record):
    """``sync --rebuild`` began at ``at`` (ISO) and made reverse slot ``slot`` again: a run
    killed after that copies the old tables again and finishes, instead of dropping the new
    slot (:mod:`strangler.steps.rebuild_reverse`)."""

    KEY: ClassVar[str] = "sync:rebuild_reverse"
    slot: str
    at: str


@dataclass(frozen=True)
class ArchiveRecord(Record):
    """The archive of the old tables, recorded once written and before they are moved, so
    a ``remove_old_path`` killed after the archive does not need the tables where they were."""

    KEY: ClassVar[str] = "decommission:archive"
    archive: Mapping[str, Any]


@dataclass(frozen=True)
class LagHistory(Record):
    """Sync lag over time, for the report: ``[at (ISO), direction, lag bytes, lag seconds,
    WAL retained]`` per sample, every few seconds; older samples are thinned to keep it small."""

    KEY: ClassVar[str] = "sync/lag"
    samples: list[list[Any]] = field(default_factory=list)


class Progress:
    """Typed access to one service's progress records."""

    def __init__(self, journal: Journal, service: str) -> None:
        self.journal = journal
        self.service = service

    def load(self, kind: type[R]) -> R | None:
        value = self.journal.get(self.service, kind.KEY)
        return None if value is None else kind.from_json(value)

    def save(self, record: Record) -> None:
        self.journal.put(self.service, record.KEY, record.to_json())

    def clear(self, kind: type[Record]) -> None:
        self.journal.delete(self.service, kind.KEY)

    # Keyed families: one record per chunk, one flag per DDL statement.

    def chunks(self) -> dict[str, ChunkRecord]:
        """Finished chunks by chunk id (``<table>/<index>``)."""
        found = self.journal.items(self.service, ChunkRecord.PREFIX)
        return {
            k.removeprefix(ChunkRecord.PREFIX): ChunkRecord.from_json(v)
            for k, v in found.items()
            if v is not None
        }

    def save_chunk(self, chunk_id: str, record: ChunkRecord) -> None:
        self.journal.put(self.service, ChunkRecord.PREFIX + chunk_id, record.to_json())

    _XACT = "copy/xact/"

    def save_copy_xact(self, xid: str, chunk_id: str) -> None:
        """The target transaction ``xid`` that writes chunk ``chunk_id``: recorded before it
        writes, so rows the copy placed are known as strangler's even if it dies before the
        chunk's own record (``rollback --schema`` after a crashed copy)."""
        self.journal.put(self.service, self._XACT + xid, chunk_id)

    def copy_xacts(self) -> list[str]:
        """Every target transaction id a copy of this service wrote rows in."""
        found = self.journal.items(self.service, self._XACT)
        return sorted(k.removeprefix(self._XACT) for k in found)

    def forget_chunks(self) -> None:
        self.journal.forget(self.service, ChunkRecord.PREFIX)

    _DDL = "copy/ddl/"

    def statements_done(self) -> set[str]:
        return {k.removeprefix(self._DDL) for k in self.journal.items(self.service, self._DDL)}

    def statement_done(self, key: str) -> None:
        self.journal.put(self.service, self._DDL + key, True)

    def forget_foreign_keys(self) -> None:
        """The records of foreign keys made and validated (their constraints were dropped)."""
        for kind in ("fk:", "validate:"):
            self.journal.forget(self.service, self._DDL + kind)

    def forget_copy(self) -> None:
        """Everything a copy stored (after a schema rollback, the next copy starts afresh)."""
        self.journal.forget(self.service, "copy/")

    def forget_schema(self) -> None:
        self.journal.forget(self.service, "schema/")
