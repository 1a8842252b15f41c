"""Judge the monolith's health against the spec's limits, and hold the work while it is hurt.

Three answers (:class:`Decision`): ``go``; ``wait`` (a limit is crossed, or an operator
paused): the caller sleeps between two chunks or rounds and asks again; ``abort`` (a critical
limit: WAL retained by a slot, or a snapshot holding vacuum back, both of which only grow;
or a pause longer than ``max_pause``): :class:`~strangler.errors.ThrottleAbort` between two
chunks, so nothing is half-done. Like gh-ost's ``--max-load`` and ``--critical-load``.

The brake never pauses sync for retained WAL (``ignore_slot_wal``): sync is what frees it.
Every change of decision goes to ``on_change`` (the step journals it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg

from strangler.errors import MetricsUnreachable, StranglerError, ThrottleAbort
from strangler.throttle.control import ManualPause
from strangler.throttle.health import Health, prometheus_value, read_health

__all__ = ["NO_BRAKE", "Brake", "Decision", "Limits", "MonolithBrake", "judge"]

Action = Literal["go", "wait", "abort"]


class Brake(Protocol):
    """What copy, verify and sync loops call between two chunks or rounds."""

    def between(self, what: str) -> None:
        """Return when the work may go on; sleep while it must wait; raise ThrottleAbort."""
        ...


class _NoBrake:
    def between(self, what: str) -> None:
        return None


NO_BRAKE: Brake = _NoBrake()


@dataclass(frozen=True)
class Limits:
    """The spec's ``throttle:`` as plain values (None: not watched)."""

    replica_lag: float | None = None  # seconds
    wal_rate: float | None = None  # bytes per second
    slot_retained: int | None = None  # bytes; critical
    active_backends: int | None = None
    lock_waits: int | None = None
    xmin_age: int | None = None  # transactions; critical
    query_sql: str | None = None
    query_max: float | None = None
    prometheus_url: str | None = None
    prometheus_query: str | None = None
    prometheus_max: float | None = None
    prometheus_timeout: float = 5.0
    check_every: float = 5.0
    max_pause: float | None = None
    ignore_slot_wal: bool = False  # sync: pausing it would only make the slot hold more
    watch_health: bool = True  # False: only the operator's pause (no throttle: section)


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: tuple[str, ...] = ()
    health: Health | None = None
    paused: ManualPause | None = None

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What makes two decisions the same for the journal: the action and which limits
        (not their changing values)."""
        return self.action, tuple(r.split(":")[0] for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "health": self.health.to_dict() if self.health else None,
            "paused": self.paused.to_dict() if self.paused else None,
        }


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


def judge(health: Health, limits: Limits, paused: ManualPause | None = None) -> Decision:
    """The decision for one reading: critical limits abort, others wait."""
    critical: list[str] = []
    if not limits.ignore_slot_wal and _over(health.slot_retained, limits.slot_retained):
        critical.append(
            f"slot retained WAL: {health.slot_retained:,} bytes > {limits.slot_retained:,}"
        )
    if _over(health.xmin_age, limits.xmin_age):
        critical.append(
            f"xmin age: {health.xmin_age:,} transactions > {limits.xmin_age:,} "
            f"(oldest snapshot: pid {health.xmin_holder})"
        )
    if critical:
        return Decision("abort", tuple(critical), health, paused)
    waits: list[str] = []
    if paused is not None:
        waits.append(f"paused: by {paused.by}: {paused.reason}")
    if _over(health.replica_lag, limits.replica_lag):
        waits.append(f"replica lag: {health.replica_lag:.1f}s > {limits.replica_lag:g}s")
    if _over(health.wal_rate, limits.wal_rate):
        waits.append(f"WAL rate: {health.wal_rate:,.0f} B/s > {limits.wal_rate:,.0f}")
    if _over(health.active_backends, limits.active_backends):
        waits.append(f"active backends: {health.active_backends} > {limits.active_backends}")
    if _over(health.lock_waits, limits.lock_waits):
        waits.append(f"lock waits: {health.lock_waits} > {limits.lock_waits}")
    if _over(health.query_value, limits.query_max):
        waits.append(f"query: {health.query_value:g} > {limits.query_max:g}")
    if _over(health.prometheus_value, limits.prometheus_max):
        waits.append(f"prometheus: {health.prometheus_value:g} > {limits.prometheus_max:g}")
    return Decision("wait" if waits else "go", tuple(waits), health, paused)


@dataclass
class MonolithBrake:
    """A brake over the monolith reached by ``connect`` (opened once, kept).

    ``read_pause`` returns the operator's pause (the target's), ``on_change`` receives every
    decision that differs from the previous one. Health is read at most every
    ``limits.check_every`` seconds; a wait re-reads at that pace.
    """

    limits: Limits
    connect: Callable[[], psycopg.Connection[Any]]
    read_pause: Callable[[], ManualPause | None] = lambda: None
    on_change: Callable[[Decision], None] = lambda _d: None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    decisions: list[Decision] = field(default_factory=list)  # the changes, oldest first
    waited: float = 0.0  # seconds spent waiting, in all
    _conn: psycopg.Connection[Any] | None = None
    _last: Health | None = None
    _decision: Decision | None = None
    _checked_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _health(self) -> Health:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        health = read_health(
            self._conn, self._last, query=self.limits.query_sql, clock=self.clock()
        )
        if self.limits.prometheus_url and self.limits.prometheus_query:
            value = prometheus_value(
                self.limits.prometheus_url,
                self.limits.prometheus_query,
                timeout=self.limits.prometheus_timeout,
            )
            health = Health(**{**health.__dict__, "prometheus_value": value})
        self._last = health
        return health

    def check(self) -> Decision:
        """The decision now (health re-read when the last reading is older than check_every)."""
        now = self.clock()
        fresh = self._checked_at is None or now - self._checked_at >= self.limits.check_every
        if not fresh and self._decision is not None:
            return self._decision  # a sync calls this every round: read at check_every pace
        self._checked_at = now
        paused = self.read_pause()
        if not self.limits.watch_health:
            decision = Decision(
                "wait" if paused else "go",
                (f"paused: by {paused.by}: {paused.reason}",) if paused else (),
                None,
                paused,
            )
        else:
            try:
                decision = judge(self._health(), self.limits, paused)
            except MetricsUnreachable as exc:
                decision = Decision("wait", (f"unreadable: {exc.message}",), self._last, paused)
        first = self._decision is None
        if first or decision.key != self._decision.key:  # type: ignore[union-attr]
            self.decisions.append(decision)
            # Without limits of its own, a brake says nothing until an operator pauses.
            if self.limits.watch_health or not (first and decision.action == "go"):
                self.on_change(decision)
        self._decision = decision
        return decision

    def between(self, what: str) -> None:
        started = self.clock()
        while True:
            with self._lock:  # a coordinator's threads share one brake and its connection
                decision = self.check()
            if decision.action == "go":
                return
            if decision.action == "abort":
                raise ThrottleAbort(
                    f"stopped before the next {what} to protect the monolith: "
                    + "; ".join(decision.reasons),
                    hint="nothing is half-done; run the same command again once the monolith "
                    "has recovered (or raise the limit in the spec's throttle: section)",
                )
            waited = self.clock() - started
            if self.limits.max_pause is not None and waited > self.limits.max_pause:
                raise ThrottleAbort(
                    f"waited {waited:.0f}s before the next {what} (throttle.max_pause is "
                    f"{self.limits.max_pause:g}s): " + "; ".join(decision.reasons),
                    hint="run the same command again later; nothing is half-done",
                )
            pause = max(0.05, min(self.limits.check_every, 5.0))
            self.sleep(pause)
            self.waited += pause

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(StranglerError, psycopg.Error):
                self._conn.close()
            self._conn = None
