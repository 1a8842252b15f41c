"""Facts read from a service's journal: the evidence steps and checks reason about.

The journal is the record; these functions turn its entries into typed facts (when traffic
first moved and since when it has been at 100 %, the newest verification, the attestations
people made) so that requirements, checks and reports read the same thing the same way.
Checks receive these as plain values; they never open the journal themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from strangler.checks.base import Attestation, BakeFigures, History, Rehearsal, Traffic
from strangler.errors import StranglerError
from strangler.journal import Entry, Journal
from strangler.phases import Action
from strangler.spec import Spec, load_spec
from strangler.steps.records import Event

__all__ = [
    "CHANGES_TO_COPY",
    "ROLLBACK_STEPS",
    "Verification",
    "attestations",
    "bake_figures",
    "changes_to_copy",
    "current_verification",
    "history",
    "last_verification",
    "newest_id",
    "rehearsal",
    "traffic_timeline",
]

# Outcomes after which an earlier verification no longer describes the copy: the schema
# made or dropped, the rows copied again, writes moved back (and, see changes_to_copy, the
# forward sync stopped: the copy no longer follows the monolith).
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


def changes_to_copy(entries: list[Entry]) -> list[Entry]:
    """The outcomes in ``entries`` after which an earlier verification is obsolete, oldest
    first: :data:`CHANGES_TO_COPY`, and a stop of the forward sync (its data path)."""
    return [
        e
        for e in entries
        if e.kind == "outcome"
        and e.status == "ok"
        and (
            e.step in CHANGES_TO_COPY
            or (e.step == Action.STOP_SYNC and e.details.get("direction") == "forward")
        )
    ]


@dataclass(frozen=True)
class Verification:
    """The newest verification and, when something changed the copy after it, that change:
    a verification made obsolete is history, not evidence."""

    entry: Entry
    obsoleted_by: Entry | None = None

    @property
    def current(self) -> bool:
        return self.obsoleted_by is None


def current_verification(entries: list[Entry], *, proof_only: bool = False) -> Verification | None:
    """:func:`last_verification`, with the change that made it obsolete if there is one."""
    found = last_verification(entries, proof_only=proof_only)
    if found is None:
        return None
    later = [e for e in changes_to_copy(entries) if e.id > found.id]
    return Verification(found, later[-1] if later else None)


def newest_id(journal: Journal, service: str) -> int:
    """The id of the newest entry of ``service`` (0 for none): what a caller has "seen"."""
    newest = journal.history(service, limit=1)
    return newest[-1].id if newest else 0


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


def _add(total: Traffic, side: dict[str, Any]) -> Traffic:
    p99 = side.get("p99")
    worst = total.worst_p99
    if p99 is not None:
        worst = max(worst or 0.0, float(p99))
    return Traffic(
        total.requests + int(side.get("requests") or 0),
        total.errors + int(side.get("errors") or 0),
        worst,
        total.intervals + 1,
    )


def bake_figures(journal: Journal, service: str) -> BakeFigures:
    """What the current walk's bakes measured (the ``gate`` events since the last traffic
    rollback): the monolith before 100 %, and both sides at 100 % since traffic last got
    there. Intervals whose metrics could not be read have no window and count for nothing."""
    _, since = traffic_timeline(journal, service)
    baseline, full = Traffic(), Traffic()
    last: dict[str, Any] | None = None
    first_full: datetime | None = None
    for e in journal.history(service):
        if e.step == Action.ROLLBACK_TRAFFIC and e.kind != "intent" and e.status == "ok":
            baseline, full, last, first_full = Traffic(), Traffic(), None, None
            continue
        window = e.details.get("window") if e.kind == "event" and e.step == Event.GATE else None
        if not window:
            continue
        if float(e.details.get("weight", 0)) < 100:
            baseline = _add(baseline, window.get("monolith") or {})
        elif since is not None and e.at >= since:
            full = _add(full, window.get("service") or {})
            first_full = first_full or datetime.fromisoformat(window["start"])
            last = window
    if last is None:
        return BakeFigures(baseline, full, Traffic())
    return BakeFigures(
        baseline,
        full,
        _add(Traffic(), last.get("monolith") or {}),
        first_full,
        datetime.fromisoformat(last["start"]),
        datetime.fromisoformat(last["end"]),
    )


def _judged_by_router(spec: Spec, service: str) -> bool:
    """Whether the route's gates read the router's own counters (no history elsewhere)."""
    traffic = spec.service(service).traffic
    return traffic is not None and (traffic.metrics is None or traffic.metrics.kind == "router")


def history(journal: Journal, spec: Spec, service: str) -> History:
    """Everything the checks of one service may need from the journal, read once."""
    first, since = traffic_timeline(journal, service)
    return History(
        now=journal.clock(),
        attestations=attestations(journal, service),
        first_shift=first,
        complete_since=since,
        rehearsal=rehearsal(spec, service),
        bakes=bake_figures(journal, service) if _judged_by_router(spec, service) else None,
    )
