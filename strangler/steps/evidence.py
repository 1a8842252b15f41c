"""The evidence of one migration, read from its journal: what ``strangler report`` renders.

A change board and a post-mortem ask the same questions: what was planned, what was
checked before, how the copy went, what proved it identical, how far behind sync ran, how
long writes were refused, how each traffic step baked and what the gates said, what was
rolled back and why, what was archived and dropped, and who did each thing when. Every
answer is a typed record built from journal entries here (the renderers in ``render/`` draw
them; this module draws nothing and imports no chart library).

Usage::

    ev = evidence(spec, journal, "order_service")
    for v in ev.verifications:
        print(v.at, v.status, v.tables)
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from strangler.errors import StranglerError
from strangler.journal import Entry, Journal
from strangler.phases import Action
from strangler.secrets import redact_dsn
from strangler.spec import Spec
from strangler.steps.plan import build_plan
from strangler.steps.records import ChunkRecord, Event, LagHistory, Progress

__all__ = [
    "Bake",
    "CopyFigures",
    "Cutover",
    "Decommission",
    "Evidence",
    "GateCheck",
    "Interval",
    "LagPoint",
    "PreflightRun",
    "Rollback",
    "TableCopy",
    "TableVerdict",
    "TrafficStep",
    "Verification",
    "WhoWhat",
    "evidence",
    "spec_digest",
]

_ROLLBACKS = {
    Action.ROLLBACK_TRAFFIC.value,
    Action.ROLLBACK_WRITES.value,
    Action.ROLLBACK_SCHEMA.value,
    "rollback_k8s",
    "rollback_terraform",
}


@dataclass(frozen=True)
class WhoWhat:
    """One journal entry, as the audit trail shows it."""

    id: int
    at: datetime
    operator: str
    command: str
    step: str
    kind: str
    status: str | None
    reason: str | None


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    message: str
    required: bool


@dataclass(frozen=True)
class PreflightRun:
    """A preflight, validate or decommission check run, with each item's verdict."""

    kind: str  # preflight | validate | decommission_check
    at: datetime
    operator: str
    status: str
    checks: list[Check]


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    bytes: int | None
    source_rows: int | None


@dataclass(frozen=True)
class CopyFigures:
    at: datetime
    operator: str
    seconds_load: float
    seconds_total: float
    bytes: int
    rows: int
    formats: list[str]
    resumed: bool
    tables: list[TableCopy]

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds_load if self.seconds_load > 0 else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds_load if self.seconds_load > 0 else 0.0


@dataclass(frozen=True)
class TableVerdict:
    table: str
    passed: bool
    method: str
    source_rows: int | None
    target_rows: int | None
    missing: int
    extra: int
    changed: int
    first: list[dict[str, Any]]


@dataclass(frozen=True)
class Verification:
    at: datetime
    operator: str
    status: str  # passed | failed
    mode: str
    seconds: float | None
    tables: list[TableVerdict]

    @property
    def differences(self) -> int:
        return sum(t.missing + t.extra + t.changed for t in self.tables)


@dataclass(frozen=True)
class LagPoint:
    at: datetime
    direction: str
    lag_bytes: int | None
    lag_seconds: float | None
    retained_wal_bytes: int | None


@dataclass(frozen=True)
class Cutover:
    kind: str  # cutover_writes | rollback_writes
    at: datetime
    operator: str
    status: str
    window_seconds: float | None
    reason: str | None


@dataclass(frozen=True)
class GateCheck:
    check: str
    status: str
    observed: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class Interval:
    """One judged bake interval: both sides of the route, and the gates' verdict."""

    at: datetime
    weight: float
    verdict: str
    decision: str
    reason: str
    service_requests: int
    service_errors: int
    service_p99: float | None
    monolith_requests: int
    monolith_errors: int
    monolith_p99: float | None
    checks: list[GateCheck]

    @property
    def service_error_rate(self) -> float | None:
        return self.service_errors / self.service_requests if self.service_requests else None

    @property
    def monolith_error_rate(self) -> float | None:
        return self.monolith_errors / self.monolith_requests if self.monolith_requests else None


@dataclass(frozen=True)
class Bake:
    weight: float
    started: datetime
    status: str  # started | complete | rolled_back | …, the newest bake event's
    intervals: list[Interval] = field(default_factory=list)


@dataclass(frozen=True)
class TrafficStep:
    at: datetime
    operator: str
    before: float | None
    after: float
    status: str
    read_back: float | None
    reason: str | None
    bake: Bake | None = None


@dataclass(frozen=True)
class Rollback:
    kind: str
    at: datetime
    operator: str
    status: str
    reason: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Decommission:
    at: datetime
    operator: str
    step: str
    archive_path: str | None
    archive_sha256: str | None
    archive_bytes: int | None
    dropped: list[str]
    retired_schema: str | None


@dataclass
class Evidence:
    service: str
    generated_at: datetime
    spec_path: str
    spec_sha256: str
    strategy: str
    phase: str
    weight: float
    source: str
    target: str
    tables: list[str]
    plan_steps: list[dict[str, Any]]
    plan_findings: list[str]
    checks: list[PreflightRun]
    attestations: list[WhoWhat]
    copies: list[CopyFigures]
    verifications: list[Verification]
    lag: list[LagPoint]
    cutovers: list[Cutover]
    traffic: list[TrafficStep]
    rollbacks: list[Rollback]
    decommission: list[Decommission]
    journal: list[WhoWhat]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; timestamps as ISO-8601 strings."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def spec_digest(spec: Spec) -> str:
    """sha256 of the spec file as written (``${VAR}`` unexpanded, so no secret is hashed in)."""
    if spec.path is None:
        return ""
    try:
        return hashlib.sha256(spec.path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _who(e: Entry) -> WhoWhat:
    return WhoWhat(e.id, e.at, e.operator, e.command, e.step, e.kind, e.status, e.reason)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _checks(e: Entry) -> PreflightRun:
    items = e.details.get("results") or e.details.get("evidence") or []
    return PreflightRun(
        e.step,
        e.at,
        e.operator,
        e.status or "",
        [
            Check(
                str(c.get("name", "")),
                str(c.get("verdict", "")),
                str(c.get("message", "")),
                bool(c.get("required", True)),
            )
            for c in items
            if isinstance(c, dict)
        ],
    )


def _copy(e: Entry, chunks: dict[str, ChunkRecord]) -> CopyFigures:
    d = e.details
    seconds = {k: float(v) for k, v in (d.get("seconds") or {}).items()}
    per_table: dict[str, int] = {}
    for chunk_id, rec in chunks.items():
        table = chunk_id.rsplit("/", 1)[0]
        per_table[table] = per_table.get(table, 0) + rec.bytes
    tables = [
        TableCopy(
            name,
            int(t.get("target_rows") or 0),
            per_table.get(name),
            _int(t.get("source_rows")),
        )
        for name, t in (d.get("tables") or {}).items()
    ]
    return CopyFigures(
        e.at,
        e.operator,
        seconds.get("load", 0.0),
        sum(seconds.values()),
        int(d.get("bytes") or 0),
        sum(t.rows for t in tables),
        list(d.get("formats") or []),
        bool(d.get("resumed")),
        tables,
    )


def _verification(e: Entry) -> Verification:
    tables = [
        TableVerdict(
            name,
            bool(t.get("passed")),
            str(t.get("method", "")),
            _int(t.get("source_rows")),
            _int(t.get("target_rows")),
            int(t.get("missing") or 0),
            int(t.get("extra") or 0),
            int(t.get("changed") or 0),
            list(t.get("first") or []),
        )
        for name, t in (e.details.get("tables") or {}).items()
    ]
    return Verification(
        e.at,
        e.operator,
        e.status or "",
        str(e.details.get("mode", "")),
        _float(e.details.get("seconds")),
        tables,
    )


def _interval(e: Entry) -> Interval:
    d = e.details
    window = d.get("window") or {}
    svc, mono = window.get("service") or {}, window.get("monolith") or {}
    return Interval(
        at=datetime.fromisoformat(window["end"]) if window.get("end") else e.at,
        weight=float(d.get("weight") or 0),
        verdict=str(d.get("verdict") or e.status or ""),
        decision=str(d.get("decision") or ""),
        reason=str(d.get("reason") or ""),
        service_requests=int(svc.get("requests") or 0),
        service_errors=int(svc.get("errors") or 0),
        service_p99=_float(svc.get("p99")),
        monolith_requests=int(mono.get("requests") or 0),
        monolith_errors=int(mono.get("errors") or 0),
        monolith_p99=_float(mono.get("p99")),
        checks=[
            GateCheck(
                str(c.get("check", "")),
                str(c.get("status", "")),
                _float(c.get("observed")),
                _float(c.get("threshold")),
                str(c.get("detail") or ""),
            )
            for c in d.get("checks") or []
        ],
    )


def _archive(e: Entry, intent: Entry | None) -> Decommission:
    d = e.details
    archive = d.get("archive") or {}
    return Decommission(
        e.at,
        intent.operator if intent else e.operator,
        intent.step if intent else e.step,
        archive.get("path"),
        archive.get("sha256"),
        _int(archive.get("size")),
        list(d.get("dropped") or []),
        d.get("retired_schema"),
    )


def evidence(spec: Spec, journal: Journal, service: str, *, inspect: bool = False) -> Evidence:
    """Everything the journal holds about ``service``, as typed records (read-only).

    ``inspect`` lets the plan read the catalogs for its boundary findings; a database that
    cannot be reached is then a finding of the report, not a failure of it.
    """
    svc = spec.service(service)
    state = journal.state(service)
    entries = journal.history(service)
    intents = {e.id: e for e in entries if e.kind == "intent"}
    progress = Progress(journal, service)
    findings: list[str] = []
    try:
        plan = build_plan(spec, service, state.phase, inspect=inspect)
    except StranglerError as exc:
        plan = build_plan(spec, service, state.phase, inspect=False)
        findings.append(f"the plan could not read the catalogs: {exc.message}")
    findings.extend(plan.warnings)
    boundary = plan.sections.get("boundary")
    for ref in getattr(boundary, "references", []) or []:
        findings.append(f"{ref['kind']}: {ref['from']} → {ref['to']} [{ref['action']}]")

    checks: list[PreflightRun] = []
    copies: list[CopyFigures] = []
    verifications: list[Verification] = []
    cutovers: list[Cutover] = []
    traffic: list[TrafficStep] = []
    rollbacks: list[Rollback] = []
    decommission: list[Decommission] = []
    bakes: dict[int, Bake] = {}
    chunks = progress.chunks()
    for e in entries:
        intent = intents.get(e.intent_id) if e.intent_id is not None else None
        if e.kind == "event":
            if e.step in (Event.PREFLIGHT, Event.VALIDATE, Event.DECOMMISSION_CHECK):
                checks.append(_checks(e))
            elif e.step == Event.VERIFY:
                verifications.append(_verification(e))
            elif e.step == Event.BAKE and e.status == "started":
                bakes[e.id] = Bake(float(e.details.get("weight") or 0), e.at, "started")
            elif e.step == Event.BAKE and e.details.get("bake") in bakes:
                old = bakes[int(e.details["bake"])]
                bakes[int(e.details["bake"])] = Bake(
                    old.weight, old.started, e.status or old.status, old.intervals
                )
            elif e.step == Event.GATE and e.details.get("bake") in bakes:
                bakes[int(e.details["bake"])].intervals.append(_interval(e))
            continue
        if e.kind != "outcome" or intent is None:
            continue
        if intent.step == Action.COPY and e.status == "ok":
            copies.append(_copy(e, chunks))
        elif intent.step in (Action.CUTOVER_WRITES, Action.ROLLBACK_WRITES):
            cutovers.append(
                Cutover(
                    intent.step,
                    e.at,
                    intent.operator,
                    e.status or "",
                    _float(e.details.get("window_seconds")),
                    intent.reason,
                )
            )
        elif intent.step == Action.SHIFT_TRAFFIC:
            traffic.append(
                TrafficStep(
                    intent.at,
                    intent.operator,
                    _float(intent.details.get("from")),
                    float(intent.details.get("to", intent.details.get("weight", 0)) or 0),
                    e.status or "",
                    _float(e.details.get("read_back")),
                    intent.reason,
                )
            )
        if intent.step in _ROLLBACKS:
            rollbacks.append(
                Rollback(
                    intent.step,
                    e.at,
                    intent.operator,
                    e.status or "",
                    intent.reason,
                    {k: v for k, v in e.details.items() if k not in ("pid", "host")},
                )
            )
        if intent.step in (Action.REMOVE_OLD_PATH, Action.DECOMMISSION) and e.status == "ok":
            decommission.append(_archive(e, intent))
    # Each traffic step gets the bake that started after it at its weight.
    ordered = sorted(bakes.values(), key=lambda b: b.started)
    joined: list[TrafficStep] = []
    for step in traffic:
        bake = next((b for b in ordered if b.weight == step.after and b.started >= step.at), None)
        if bake is not None:
            ordered.remove(bake)
            if bake.intervals:
                last = bake.intervals[-1]
                bake = Bake(
                    bake.weight, bake.started, last.decision or last.verdict, bake.intervals
                )
        joined.append(
            TrafficStep(
                step.at,
                step.operator,
                step.before,
                step.after,
                step.status,
                step.read_back,
                step.reason,
                bake,
            )
        )
    history = progress.load(LagHistory) or LagHistory()
    lag = [
        LagPoint(datetime.fromisoformat(str(s[0])), str(s[1]), _int(s[2]), _float(s[3]), _int(s[4]))
        for s in history.samples
    ]
    target_dsn = spec.target_dsn(service)
    return Evidence(
        service=service,
        generated_at=journal.clock(),
        spec_path=str(spec.path or ""),
        spec_sha256=spec_digest(spec),
        strategy=svc.strategy,
        phase=state.phase,
        weight=state.weight,
        source=f"{redact_dsn(spec.source.dsn)} schema {spec.source.schema_}",
        target=f"{redact_dsn(target_dsn)} schema {svc.target.schema_}",
        tables=list(svc.tables),
        plan_steps=[s.to_dict() for s in plan.steps],
        plan_findings=findings,
        checks=checks,
        attestations=[_who(e) for e in entries if e.kind == "event" and e.step == Event.ATTEST],
        copies=copies,
        verifications=verifications,
        lag=lag,
        cutovers=cutovers,
        traffic=joined,
        rollbacks=rollbacks,
        decommission=decommission,
        journal=[_who(e) for e in entries],
    )
