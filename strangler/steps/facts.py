"""Facts read from a service's journal: the evidence steps and checks reason about.

The journal is the record; these functions turn its entries into typed facts (when traffic
first moved and since when it has been at 100 %, the newest verification, the attestations
people made) so that requirements, checks and reports read the same thing the same way.
Checks receive these as plain values; they never open the journal themselves.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from strangler.checks.base import Attestation, History, Rehearsal
from strangler.errors import StranglerError
from strangler.journal import Entry, Journal
from strangler.phases import Action
from strangler.spec import Spec, load_spec
from strangler.steps.records import Event

__all__ = [
    "CHANGES_TO_COPY",
    "ROLLBACK_STEPS",
    "attestations",
    "history",
    "last_verification",
    "rehearsal",
    "traffic_timeline",
]

# Outcomes after which an earlier verification no longer describes the copy.
CHANGES_TO_COPY = frozenset(
    {
        Action.COPY,
        Action.MOVE,
        Action.CREATE_SCHEMA,
        Action.ROLLBACK_SCHEMA,
        Action.ROLLBACK_WRITES,
    }
)

# The rollbacks whose completion in a rehearsal journal proves "rollback tested in dev".
ROLLBACK_STEPS = (
    "rollback_traffic",
    "rollback_writes",
    "rollback_schema",
    "rollback_k8s",
    "rollback_terraform",
)


def last_verification(entries: list[Entry], *, proof_only: bool = False) -> Entry | None:
    """The newest ``verify`` event in ``entries`` (with ``proof_only``: not a counts-only one)."""
    for entry in reversed(entries):
        if entry.kind != "event" or entry.step != Event.VERIFY:
            continue
        if proof_only and entry.details.get("mode") == "counts":
            continue
        return entry
    return None


def traffic_timeline(journal: Journal, service: str) -> tuple[datetime | None, datetime | None]:
    """``(first_shift, complete_since)``: when traffic first moved, and since when it has been
    at 100 % without interruption (None if it is not at 100 % now)."""
    intents: dict[int, Entry] = {}
    first: datetime | None = None
    since: datetime | None = None
    for e in journal.history(service):
        if e.kind == "intent":
            intents[e.id] = e
            continue
        if e.kind != "outcome" or e.status != "ok" or e.intent_id not in intents:
            continue
        intent = intents[e.intent_id]
        if intent.step == Action.SHIFT_TRAFFIC:
            weight = float(intent.details.get("weight", 0) or 0)
            if weight > 0 and first is None:
                first = e.at
            since = (since or e.at) if weight >= 100 else None
        elif intent.step == Action.ROLLBACK_TRAFFIC:
            since = None
    return first, since


def attestations(journal: Journal, service: str) -> dict[str, Attestation]:
    """The newest attestation of each kind (``strangler attest``)."""
    found: dict[str, Attestation] = {}
    for e in journal.history(service):
        if e.kind == "event" and e.step == Event.ATTEST and e.status:
            found[e.status] = Attestation(e.status, e.operator, e.at, e.reason or "")
    return found


def rehearsal(spec: Spec, service: str) -> Rehearsal | None:
    """What the rehearsal spec's journal shows of this service's rollbacks (None: no
    ``preflight.rehearsal_spec``). A journal that does not exist yet shows none."""
    pre = spec.service(service).preflight
    if pre is None or pre.rehearsal_spec is None:
        return None
    path = spec.resolve(pre.rehearsal_spec)
    try:
        dev = load_spec(path)
        url = dev.state_url()
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return Rehearsal(path, url, journal_exists=False)
        with Journal(url, command="preflight") as journal:
            done = [
                e
                for step in ROLLBACK_STEPS
                if (e := journal.last(service, step, status="ok")) is not None
                and e.kind == "outcome"
            ]
    except StranglerError as exc:
        return Rehearsal(path, "", journal_exists=False, error=exc.message)
    newest = max(done, key=lambda e: e.at, default=None)
    if newest is None:
        return Rehearsal(path, url, journal_exists=True)
    return Rehearsal(
        path, url, journal_exists=True, step=newest.step, at=newest.at, operator=newest.operator
    )


def history(journal: Journal, spec: Spec, service: str) -> History:
    """Everything the checks of one service may need from the journal, read once."""
    first, since = traffic_timeline(journal, service)
    return History(
        now=journal.clock(),
        attestations=attestations(journal, service),
        first_shift=first,
        complete_since=since,
        rehearsal=rehearsal(spec, service),
    )
