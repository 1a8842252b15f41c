"""How far behind a sync route is, in bytes and in seconds, sampled from outside the applier.

The applier measures the lag of what it applies (commit on the source → commit on the
target), but a stalled applier (a lock on the target, a crashed process) applies nothing and
so measures nothing: exactly when an alarm must fire. :class:`LagSampler` looks from the
outside instead. Every :meth:`~LagSampler.sample` notes the source's current WAL position
with the wall-clock time, and reads the position the target has stored as applied; the lag
in seconds is the age of the oldest noted position that is not applied yet. It rises one
second per second while nothing is applied, and falls back to zero once the applier passes
the position noted. An idle applier writes a mark every 10 s so that its position follows
WAL the service does not care about, so an idle, healthy route reads at most about
``10 s + interval``; alarms watch minutes.

Usage::

    sampler = LagSampler(route)
    while running:
        s = sampler.sample()
        print(s.lag_bytes, s.lag_seconds, s.retained_wal_bytes)
        time.sleep(5)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from strangler.pg.sync.cdc import SyncRoute, status
from strangler.pg.sync.pgoutput import parse_lsn

__all__ = ["LagSample", "LagSampler"]


@dataclass(frozen=True)
class LagSample:
    """One look at a route. ``None`` where the route cannot say (no slot, no position)."""

    at: datetime
    service: str
    direction: str
    slot_exists: bool
    lag_bytes: int | None
    lag_seconds: float | None
    retained_wal_bytes: int | None
    rows_applied: int
    transactions_applied: int


def _now() -> datetime:
    return datetime.now(UTC)


class LagSampler:
    """Samples one route; keep one per process and call :meth:`sample` every few seconds."""

    def __init__(
        self, route: SyncRoute, *, clock: Callable[[], datetime] = _now, keep: int = 4096
    ) -> None:
        self.route = route
        self.clock = clock
        # (when, source WAL position then), oldest first; positions applied are dropped.
        self._noted: deque[tuple[datetime, int]] = deque(maxlen=keep)

    def sample(self) -> LagSample:
        """Read the route now (two short connections); raises StranglerError if unreachable."""
        info = status(self.route)
        now = self.clock()
        lag_seconds: float | None = None
        if info.applied_lsn is not None and info.lag_bytes is not None:
            applied = parse_lsn(info.applied_lsn)
            current = applied + info.lag_bytes
            if not self._noted or self._noted[-1][1] < current:
                self._noted.append((now, current))
            while self._noted and self._noted[0][1] <= applied:
                self._noted.popleft()
            lag_seconds = (now - self._noted[0][0]).total_seconds() if self._noted else 0.0
        return LagSample(
            at=now,
            service=self.route.service,
            direction=self.route.direction,
            slot_exists=info.slot_exists,
            lag_bytes=info.lag_bytes,
            lag_seconds=lag_seconds,
            retained_wal_bytes=info.retained_wal_bytes,
            rows_applied=info.rows_applied,
            transactions_applied=info.transactions_applied,
        )
