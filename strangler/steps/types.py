"""The steps' own objects: what a step would do (its plan) and how a step of ``run`` ended.

Every step of :data:`strangler.steps.STEPS` answers ``plan(rb, inspect=…)`` with a
:class:`StepPlan`: a summary, the operations it performs (SQL statements, API calls, files
written) in order, and the evidence it requires. ``strangler plan`` prints these, each
mutating command's ``--dry-run`` prints its step's, and ``strangler run --dry-run`` the
next one's. Without ``inspect`` a plan reads only the spec (so it is testable without a
server); with it, a step may read the catalogs to give the exact SQL it would run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from strangler.phases import Action

if TYPE_CHECKING:  # annotations only: the command line's start-up need not load them
    from strangler.journal import Journal
    from strangler.spec import ServiceSpec, Spec

__all__ = [
    "EXIT_WAITING",
    "Advanced",
    "JournaledRef",
    "Moment",
    "Operation",
    "Outcome",
    "RunOptions",
    "ServicePlan",
    "ServiceRef",
    "ShiftResult",
    "StepPlan",
    "Subject",
    "WaitReason",
    "Waiting",
]

# The exit code of a run that waits: sysexits' EX_TEMPFAIL, "try again later"; cron and CI
# wrappers tell it apart from 0 (done) and 1 (a step failed). Here, not in run.py, because
# a walk (bake.py) says it too and run.py imports the walk.
EXIT_WAITING = 75


class ServiceRef(Protocol):
    """A service of a spec: what planning needs (a :class:`Runbook` is one, and more)."""

    @property
    def spec(self) -> Spec: ...

    @property
    def name(self) -> str: ...

    @property
    def service(self) -> ServiceSpec: ...


class JournaledRef(ServiceRef, Protocol):
    """A service with its journal: what evidence is read from (a :class:`Runbook` is one)."""

    @property
    def journal(self) -> Journal: ...


@dataclass(frozen=True)
class Moment:
    """The step about to act, as its requirements see it inside the service's lock.

    ``seen``: the newest journal entry the caller had read when it decided to act (a walk:
    when it last confirmed where traffic stands); evidence recorded after it, such as an
    operator's rollback, can refuse the move. ``walking``: the move is one of ``shift
    --auto``'s, which never goes on after a rollback. ``resumed``: the step finishes one a
    crash interrupted. ``details``: what the step will journal in its intent (a sync stop
    names its direction there)."""

    action: Action | None = None
    weight: float | None = None
    seen: int | None = None
    walking: bool = False
    resumed: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """A :class:`ServiceRef` without a journal, for planning from the spec alone."""

    spec: Spec
    name: str

    @property
    def service(self) -> ServiceSpec:
        return self.spec.service(self.name)


@dataclass(frozen=True)
class Operation:
    """One thing a step does, where: ``where`` is a system ("monolith", "order_service
    database", "router haproxy", "journal", "file"); ``what`` is the statement or call."""

    where: str
    what: str

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "what": self.what}


@dataclass(frozen=True)
class StepPlan:
    """A step's answer to "what would you do now?"."""

    action: str
    source: str  # the phase it starts from
    target: str  # the phase it leads to
    summary: str
    operations: tuple[Operation, ...] = ()
    requires: tuple[str, ...] = ()
    done: bool = False
    # Read-only findings a step makes while planning (boundary references, sync mechanism,
    # traffic steps and gates): JSON-serialisable, rendered by strangler.render.plan.
    sections: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "from": self.source,
            "to": self.target,
            "what": self.summary,
            "done": self.done,
            "operations": [o.to_dict() for o in self.operations],
            "requires": list(self.requires),
        }


@dataclass
class ServicePlan:
    service: str
    strategy: str
    phase: str
    source: str
    target: str
    target_schema: str
    tables: list[str]
    steps: list[StepPlan]
    warnings: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "strategy": self.strategy,
            "phase": self.phase,
            "source": self.source,
            "target": self.target,
            "target_schema": self.target_schema,
            "tables": self.tables,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": self.warnings,
            **{k: _jsonable(v) for k, v in self.sections.items()},
        }


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


@dataclass
class ShiftResult:
    """One traffic move (a shift or a rollback): the weights before and after, read back."""

    service: str
    before: float
    after: float
    dry_run: bool = False
    calls: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "before": self.before,
            "after": self.after,
            "dry_run": self.dry_run,
            "calls": self.calls,
            "seconds": round(self.seconds, 4),
        }


# ------------------------------------------------------------------------- run outcomes

WaitReason = Literal["bake", "approval", "attestation", "grace_period", "time", "sync"]


@dataclass(frozen=True)
class Waiting:
    """A step cannot act yet and nothing is wrong: call ``run`` again later.

    ``until``: the moment waiting ends by itself (a bake interval, a grace period), or None
    when a person must act (an approval, an attestation): ``command`` is what they run."""

    reason: WaitReason
    message: str
    until: datetime | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "message": self.message,
            "until": self.until.isoformat() if self.until else None,
            "command": self.command,
        }


@dataclass(frozen=True)
class Advanced:
    """A step of ``run`` that acted; ``result`` is the step's own typed result."""

    action: str
    phase: str  # where the service stands after it
    summary: str
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        to_dict = getattr(self.result, "to_dict", None)
        return {
            "action": self.action,
            "phase": self.phase,
            "summary": self.summary,
            "result": to_dict() if callable(to_dict) else None,
        }


Outcome = Advanced | Waiting


@dataclass
class RunOptions:
    """How ``run`` drives the steps: parallelism, where it talks, how long a drain may take."""

    jobs: int = 2
    say: Callable[[str], None] = field(default=lambda _text: None)
    # A drain of sync before verify, cutover or a traffic step stops after this long.
    drain_timeout: float = 600.0
    recheck: int = 3
    copy_progress: Any = None  # a strangler.pg.copy.rows.CopyProgress for the copy's rows
