"""``strangler status`` and ``strangler history`` for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table

from strangler.durations import format_duration
from strangler.journal import Entry
from strangler.steps.status import ServiceStatus

__all__ = ["render_history", "render_status"]


def _age(now: datetime, at: datetime | None) -> str:
    return "-" if at is None else format_duration(now - at) + " ago"


def render_status(out: Console, err: Console, rows: Sequence[ServiceStatus], now: datetime) -> None:
    table = Table(header_style="bold")
    for col in ("service", "strategy", "phase", "weight %", "last step", "status", "age"):
        table.add_column(col)
    table.add_column("verified")
    for r in rows:
        v = r.last_verification
        table.add_row(
            r.service,
            r.strategy,
            r.phase,
            f"{r.weight:g}",
            r.last_step or "-",
            r.last_status or "-",
            _age(now, r.last_at),
            f"{v.status} {_age(now, v.at)}" if v else "never",
        )
    out.print(table)
    for r in rows:
        if r.sync is not None:
            s = r.sync
            out.print(
                f"{r.service}: {s.direction} sync "
                + (
                    f"error: {s.error}"
                    if s.error is not None
                    else f"slot {s.slot} · lag {s.lag_bytes} bytes · WAL "
                    f"retained {s.retained_wal_bytes} bytes"
                )
            )
        if r.throttle is not None:
            out.print(f"{r.service}: throttle " + _throttle(r))
        for w in r.warnings:
            err.print(f"[yellow]warning:[/] {r.service}: {w}")
        for e in r.incomplete_steps:
            err.print(
                f"[red]{r.service}: step {e.step!r} began {e.at.isoformat()} by {e.operator} "
                "and never finished[/] (see 'strangler history')"
            )


def _throttle(r: ServiceStatus) -> str:
    t = r.throttle
    assert t is not None
    if t.error:
        return f"unreadable: {t.error}"
    parts = [f"paused by {t.paused.by}: {t.paused.reason}" if t.paused else "not paused"]
    if t.last_action:
        why = f" ({t.last_reason})" if t.last_reason else ""
        parts.append(f"last decision {t.last_action} for {t.last_for}{why}")
    return " · ".join(parts)


def render_history(out: Console, entries: Sequence[Entry]) -> None:
    table = Table(header_style="bold")
    for col in ("#", "at (UTC)", "operator", "step", "kind", "status", "reason / details"):
        table.add_column(col, overflow="fold")
    for e in entries:
        info = e.reason or ""
        if e.details:
            shown = {k: v for k, v in e.details.items() if k not in ("pid", "host")}
            info = (info + " " if info else "") + json.dumps(shown, default=str)[:200]
        table.add_row(
            str(e.id), f"{e.at:%Y-%m-%d %H:%M:%S}", e.operator, e.step, e.kind, e.status or "",
            info,
        )  # fmt: skip
    out.print(table)
