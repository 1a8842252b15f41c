"""One service's runbook: the phase rules of :mod:`strangler.phases` applied through the journal.

Every step of :mod:`strangler.steps` runs its work inside :meth:`Runbook.step`, which

1. takes the service's lock (a second operator gets LockHeld naming the first),
2. looks for a step that began and never ended (a crash) and resumes or refuses,
3. checks the phase rules (PhaseRefused says what must happen first) and the evidence the
   step requires (:data:`strangler.steps.requirements.REQUIREMENTS`), inside the lock, at
   the moment the step acts: each requirement reads the journal or measures a server now,
   never infers from a phase reached earlier; a refusal raises before anything is written,
4. writes the intent (with the evidence each requirement was checked against), runs the
   body, writes the outcome and the new phase together.

Usage::

    rb = Runbook(spec, journal, "order_service")
    with rb.step(Action.COPY, resumable=True) as step:
        ...                       # do the work; step.details["rows"] = n
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from strangler.errors import (
    CheckFailed,
    IncompleteStep,
    PhaseRefused,
    StranglerError,
    translate,
)
from strangler.journal import Entry, Journal, ServiceState
from strangler.phases import Action, Phase, forced_target, transition
from strangler.secrets import scrub
from strangler.spec import ServiceSpec, Spec
from strangler.steps.records import Progress
from strangler.steps.requirements import requirements_for
from strangler.steps.types import Moment

__all__ = ["Runbook", "StepRecord"]

# Steps whose crashed run a step undoes instead of being refused by it: a schema rollback
# after a copy killed halfway drops what the copy placed (issue 12), and a traffic rollback
# always wins, even over a move that died between the router and its outcome (issue 13).
SUPERSEDES: dict[Action, frozenset[str]] = {
    Action.ROLLBACK_SCHEMA: frozenset({Action.COPY.value}),
    Action.ROLLBACK_TRAFFIC: frozenset({Action.SHIFT_TRAFFIC.value}),
}


@dataclass
class StepRecord:
    """What a running step may tell the journal: details, and a phase or weight to land on."""

    intent_id: int
    action: Action
    source: Phase
    target: Phase
    resumed_from: Entry | None = None
    details: dict[str, Any] = field(default_factory=dict)
    weight: float | None = None
    # A step that finds it must not move the phase (a failed verification) sets this False.
    advance: bool = True
    # Journal writes that belong to the step's end (a verification's verdict, a record
    # cleared, a rollback's record), made in the outcome's transaction, never one without
    # the other: a kill between them left a phase without its proof (issue 15).
    on_ok: list[Callable[[], object]] = field(default_factory=list)


class Runbook:
    def __init__(self, spec: Spec, journal: Journal, service: str) -> None:
        self.spec = spec
        self.journal = journal
        self.name = service
        self.service: ServiceSpec = spec.service(service)
        self.progress = Progress(journal, service)

    @property
    def state(self) -> ServiceState:
        return self.journal.state(self.name)

    @property
    def phase(self) -> Phase:
        return Phase(self.state.phase)

    def check(self, action: Action, *, weight: float | None = None) -> Phase:
        """The phase ``action`` would lead to now; raises PhaseRefused if it may not happen."""
        return transition(
            self.phase, action, strategy=self.service.strategy, service=self.name, weight=weight
        ).target

    def require(
        self,
        action: Action,
        moment: Moment | None = None,
        *,
        force: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """Check ``action``'s requirements now (the caller holds the service's lock).

        Returns the evidence each was checked against, by name, and the refusals ``force``
        set aside; raises the first refusal otherwise (or the error that kept a piece of
        evidence from being read: exit 3 for a server that cannot be reached). A move back to
        0 % traffic is the way out of trouble and never waits on evidence."""
        moment = moment or Moment(action)
        found: dict[str, Any] = {}
        set_aside: list[str] = []
        retreat = (
            action is Action.SHIFT_TRAFFIC and moment.weight is not None and moment.weight <= 0
        )
        for requirement in [] if retreat else requirements_for(action):
            if moment.resumed and not requirement.on_resume:
                found[requirement.name] = {"skipped": "checked when the step began"}
                continue
            try:
                checked = requirement.check(self, moment)
            except StranglerError as refused:
                # A refusal, or evidence that could not be read (a server down): either
                # stops the step, unless the operator forces it and this one may be forced.
                if not force or not requirement.overridable:
                    raise
                set_aside.append(refused.message)
                continue
            found[requirement.name] = {"fresh": requirement.fresh, **checked}
        return found, set_aside

    @contextlib.contextmanager
    def step(
        self,
        action: Action,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        resumable: bool = False,
        weight: float | None = None,
        force: bool = False,
        seen: int | None = None,
        walking: bool = False,
    ) -> Iterator[StepRecord]:
        """Run a step's work as one journaled step (see the module docstring).

        ``seen``: the newest journal entry the caller had read when it decided to act, so
        that evidence recorded since (an operator's rollback) can refuse it; ``walking``:
        a move of ``shift --auto``."""
        with self.journal.lock(self.name):
            resumed = self._handle_dangling(action, resumable)
            source = self.phase
            moment = Moment(
                action,
                weight=weight,
                seen=seen,
                walking=walking,
                resumed=resumed is not None,
                details=dict(details or {}),
            )
            refusals: list[str] = []
            try:
                target = self.check(action, weight=weight)
            except CheckFailed as refused:
                if not force:
                    raise
                refusals.append(refused.message)
                target = forced_target(
                    action, strategy=self.service.strategy, weight=weight, phase=source
                )
            evidence, set_aside = self.require(action, moment, force=force)
            refusals += set_aside
            if refusals:
                if not reason:
                    raise PhaseRefused(
                        f"{refusals[0]}; --force needs --reason saying why",
                        hint="add --reason '…' (it is journaled)",
                    ) from None
                self.journal.event(
                    self.name,
                    str(action),
                    status="forced",
                    reason=reason,
                    details={
                        "refusal": refusals[0],
                        "refusals": refusals,
                        "phase": source.value,
                    },
                )
            payload = dict(details or {})
            payload.update(pid=os.getpid(), host=socket.gethostname(), phase=source.value)
            if evidence:
                payload["evidence"] = evidence
            if weight is not None:
                payload["weight"] = weight
            if resumed is not None:
                payload["resumes"] = resumed.id
            intent_id = self.journal.intent(self.name, str(action), reason=reason, details=payload)
            record = StepRecord(intent_id, action, source, target, resumed, weight=weight)
            try:
                # What the body lets escape from psycopg, sqlite3 or the OS becomes a
                # StranglerError here, so the outcome and the caller see the same error.
                with translate(f"step {action.value} of {self.name}"):
                    yield record
            except KeyboardInterrupt:
                self.journal.outcome(intent_id, "interrupted", details=record.details)
                raise
            except BaseException as exc:
                info = dict(record.details)
                info["error"] = scrub(str(exc))
                if isinstance(exc, StranglerError):
                    info["error_type"] = type(exc).__name__
                self.journal.outcome(intent_id, "failed", details=info)
                raise
            else:
                with self.journal.atomic():
                    self.journal.outcome(
                        intent_id,
                        "ok",
                        details=record.details,
                        phase=record.target.value if record.advance else None,
                        weight=record.weight,
                    )
                    for write in record.on_ok:
                        write()

    def _handle_dangling(self, action: Action, resumable: bool) -> Entry | None:
        resumed: Entry | None = None
        for entry in self.journal.dangling(self.name):
            if entry.step in SUPERSEDES.get(action, ()):
                # We hold the lock, so the process that began it is gone; this step undoes
                # what it did (or, a traffic rollback, sets 0 % wherever the move left the
                # router and reads it back). The record says which step closed it.
                who = self.journal.command or str(action)
                closed = {"detected_by": who, "superseded_by": str(action)}
                self.journal.outcome(entry.id, "crashed", details=closed)
                continue
            if resumable and entry.step == str(action):
                # The same resumable step died halfway: close its record and carry on from the
                # progress it stored. Saying so in the journal keeps the repeat visible.
                self.journal.outcome(
                    entry.id,
                    "crashed",
                    details={"detected_by": self.journal.command or str(action)},
                )
                resumed = entry
                continue
            raise IncompleteStep(
                f"{self.name}: step {entry.step!r} began at {entry.at:%Y-%m-%d %H:%M:%S} UTC "
                f"(by {entry.operator}, '{entry.command}', pid {entry.details.get('pid', '?')}) "
                "and never recorded an outcome: the process probably died halfway",
                hint=(
                    f"inspect with 'strangler history {self.name}', then re-run "
                    f"'{entry.command}' if it can resume, or mark it abandoned with "
                    f"'strangler resolve {self.name} --reason …'"
                ),
            )
        return resumed

    def resolve(self, reason: str) -> list[Entry]:
        """Mark every dangling step abandoned, with the operator's reason. Returns them."""
        with self.journal.lock(self.name):
            found = self.journal.dangling(self.name)
            for entry in found:
                self.journal.outcome(entry.id, "abandoned", details={"reason": reason})
            return found
