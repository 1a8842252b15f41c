"""One service's runbook: the phase rules of :mod:`strangler.phases` applied through the journal.

Every step of :mod:`strangler.steps` runs its work inside :meth:`Runbook.step`, which

1. takes the service's lock (a second operator gets LockHeld naming the first),
2. looks for a step that began and never ended (a crash) and resumes or refuses,
3. checks the phase rules (PhaseRefused says what must happen first) and the evidence the
   step requires (:data:`strangler.steps.requirements.REQUIREMENTS`), inside the lock, at
   the moment the step acts,
4. writes the intent, runs the body, writes the outcome and the new phase together.

Usage::

    rb = Runbook(spec, journal, "order_service")
    with rb.step(Action.COPY, resumable=True) as step:
        ...                       # do the work; step.details["rows"] = n
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
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

__all__ = ["Runbook", "StepRecord"]


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
        supersedes: frozenset[Action] = frozenset(),
    ) -> Iterator[StepRecord]:
        """``supersedes``: steps whose crashed run this one undoes (``rollback --schema``
        after a copy killed halfway): their dangling intents are closed, not refused."""
        with self.journal.lock(self.name):
            resumed = self._handle_dangling(action, resumable, supersedes)
            source = self.phase
            try:
                target = self.check(action, weight=weight)
                # Evidence guards moves toward the new service; a move back to 0 % traffic is
                # the way out of trouble and must never wait on it.
                retreat = action is Action.SHIFT_TRAFFIC and weight is not None and weight <= 0
                for requirement in [] if retreat else requirements_for(action):
                    requirement(self)
            except CheckFailed as refused:
                if not force or isinstance(refused, IncompleteStep):
                    raise
                if not reason:
                    raise PhaseRefused(
                        f"{refused.message}; --force needs --reason saying why",
                        hint="add --reason '…' (it is journaled)",
                    ) from None
                target = forced_target(action, strategy=self.service.strategy, weight=weight)
                self.journal.event(
                    self.name,
                    str(action),
                    status="forced",
                    reason=reason,
                    details={"refusal": refused.message, "phase": source.value},
                )
            payload = dict(details or {})
            payload.update(pid=os.getpid(), host=socket.gethostname(), phase=source.value)
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
                self.journal.outcome(
                    intent_id,
                    "ok",
                    details=record.details,
                    phase=record.target.value if record.advance else None,
                    weight=record.weight,
                )

    def _handle_dangling(
        self, action: Action, resumable: bool, supersedes: frozenset[Action] = frozenset()
    ) -> Entry | None:
        resumed: Entry | None = None
        for entry in self.journal.dangling(self.name):
            if entry.step in {str(a) for a in supersedes}:
                # We hold the lock, so the process that began it is gone; this step undoes
                # what it did. The record says which step closed it.
                self.journal.outcome(
                    entry.id, "crashed", details={"detected_by": str(action), "superseded": True}
                )
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
