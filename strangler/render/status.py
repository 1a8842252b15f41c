"""``strangler status``, ``describe`` and ``history`` for people.

No Python reprs reach a person (issue 14): details are summarised as words, byte counts are
human-sized, times are UTC, and a long detail is shortened at a word boundary, never in the
middle of one (``-o json`` has everything).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from strangler.durations import format_bytes, format_duration

if TYPE_CHECKING:  # annotations only: a rollback's one line (describe_details) loads no steps
    from strangler.journal import Entry
    from strangler.steps.overview import ServiceOverview
    from strangler.steps.status import RunningStep, ServiceStatus

__all__ = ["describe_details", "render_describe", "render_history", "render_status"]


def _age(now: datetime, at: datetime | None) -> str:
    if at is None:
        return "-"
    if at > now:  # a clock moved forward (demo --fast-forward) wrote it
        return "ahead of now"
    return format_duration(now - at) + " ago"


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def running_line(service: str, r: RunningStep) -> str:
    if r.state == "running":
        return (
            f"{service}: step {r.step!r} is running: pid {r.pid} on {r.host}, since "
            f"{_when(r.since)}, by {r.operator} ('{r.command}')"
        )
    return (
        f"{service}: step {r.step!r} began {_when(r.since)} by {r.operator} and never "
        f"finished (its process is gone); inspect with 'strangler history {service}', then "
        f"'strangler resolve {service} --reason …'"
    )


def render_status(
    out: Console, err: Console, rows: Sequence[ServiceStatus], now: datetime, *, wide: bool = False
) -> None:
    table = Table(header_style="bold")
    cols = ["service", "strategy", "phase", "weight %", "last step", "status", "age", "verified"]
    if wide:
        cols += ["last at (UTC)", "sync lag", "WAL retained", "running"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        v = r.last_verification
        cells = [
            r.service,
            r.strategy,
            r.phase,
            f"{r.weight:g}",
            r.last_step or "-",
            r.last_status or "-",
            _age(now, r.last_at),
            f"{v.shown} {_age(now, v.at)}" if v else "never",
        ]
        if wide:
            s = r.sync
            cells += [
                _when(r.last_at),
                format_bytes(s.lag_bytes) if s and s.error is None else "-",
                format_bytes(s.retained_wal_bytes) if s and s.error is None else "-",
                ", ".join(f"{x.step} ({x.state}, pid {x.pid})" for x in r.incomplete_steps) or "-",
            ]
        table.add_row(*cells)
    out.print(table)
    for r in rows:
        if r.sync is not None:
            s = r.sync
            out.print(
                f"{r.service}: {s.direction} sync "
                + (
                    f"error: {s.error}"
                    if s.error is not None
                    else f"slot {s.slot} · lag {format_bytes(s.lag_bytes)} · WAL retained "
                    f"{format_bytes(s.retained_wal_bytes)}"
                ),
                markup=False,
            )
        if r.throttle is not None:
            out.print(f"{r.service}: throttle " + _throttle(r))
        for w in r.warnings:
            err.print(f"[yellow]warning:[/] {r.service}: {w}")
        for e in r.incomplete_steps:
            style = "yellow" if e.state == "running" else "red"
            err.print(f"[{style}]{running_line(r.service, e)}[/]")


def _value(key: str, value: Any) -> str | None:
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and ("bytes" in key or key in ("size",)):
        return format_bytes(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float) for v in value):
            shown = [str(v) for v in value[:6]]
            more = f" and {len(value) - 6} more" if len(value) > 6 else ""
            return ", ".join(shown) + more
        return f"{len(value)} items"
    if isinstance(value, Mapping):
        if "message" in value:
            return str(value["message"])
        if "sha256" in value:
            return f"{value.get('path', '')} sha256 {str(value['sha256'])[:16]}…".strip()
        if all(isinstance(v, str | int | float | bool) for v in value.values()):
            return ", ".join(
                f"{k} {_value(str(k), v)}" for k, v in list(value.items())[:6] if v is not None
            )
        return f"{len(value)} entries"
    return str(value)


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


def describe_details(details: Mapping[str, Any], *, limit: int | None = 240) -> str:
    """A journal entry's details in words: ``mode rows · seconds 0.5 · tables 3 entries``.

    With ``limit`` the text is shortened at a word boundary (``…`` added), never mid-word."""
    parts = []
    for key, value in details.items():
        if key in ("pid", "host"):
            continue
        text = _value(key, value)
        if text is not None:
            parts.append(f"{key.replace('_', ' ')} {text}")
    line = " · ".join(parts)
    if limit is None or len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit)
    return line[: cut if cut > 0 else limit].rstrip(" ·,") + " …"


def render_history(out: Console, entries: Sequence[Entry], *, wide: bool = False) -> None:
    table = Table(header_style="bold")
    for col in ("#", "at (UTC)", "operator", "step", "kind", "status", "reason / details"):
        table.add_column(col, overflow="fold")
    full = wide or not out.is_terminal
    for e in entries:
        info = " · ".join(
            p for p in (e.reason or "", describe_details(e.details, limit=None if full else 240))
            if p
        )  # fmt: skip
        table.add_row(
            str(e.id), f"{e.at:%Y-%m-%d %H:%M:%S}", e.operator, e.step, e.kind, e.status or "",
            info,
        )  # fmt: skip
    out.print(table)


def render_describe(out: Console, o: ServiceOverview, st: ServiceStatus, now: datetime) -> None:
    """One service in full, as ``kubectl describe`` does: fields, then recent events."""
    rows: list[tuple[str, str]] = [
        ("Service", o.service),
        ("Strategy", o.strategy),
        ("Phase", o.phase),
        ("Traffic", f"{o.weight:g} % to the service"),
        ("Traffic steps", ", ".join(f"{w:g} %" for w in o.steps) or "-"),
        ("Updated", _when(o.updated_at)),
    ]
    if o.verification:
        v = o.verification
        rows.append(
            (
                "Last verification",
                f"{v.status} ({v.details.get('mode', '?')}) {_when(v.at)} by {v.operator}",
            )
        )
    else:
        rows.append(("Last verification", "never"))
    if st.sync is not None:
        s = st.sync
        rows.append(
            (
                "Sync",
                f"{s.direction}: error {s.error}"
                if s.error
                else f"{s.direction}, slot {s.slot}, lag {format_bytes(s.lag_bytes)}, WAL "
                f"retained {format_bytes(s.retained_wal_bytes)}",
            )
        )
    if o.run:
        w = o.run.details.get("waiting") or {}
        text = f"{o.run.status} {_when(o.run.at)}"
        if w:
            text += f": waiting ({w.get('reason')}): {w.get('message')}"
            if w.get("command"):
                text += f"; next: {w['command']}"
        if o.run.details.get("error"):
            text += f": {o.run.details['error']}"
        rows.append(("strangler run", text))
    if o.gate:
        g = o.gate.details
        rows.append(
            (
                "Gates",
                f"{g.get('verdict', o.gate.status)} at {_value('', g.get('weight'))} % "
                f"({_when(o.gate.at)}): {g.get('reason', '')}",
            )
        )
        for c in g.get("checks", []):
            rows.append(("", f"{c.get('check')}: {c.get('status')} {c.get('detail') or ''}"))
    for r in o.running:
        rows.append(
            ("Running" if r.state == "running" else "Unfinished", running_line(o.service, r))
        )
    for w in st.warnings:
        rows.append(("Warning", w))
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        out.print(f"{(key + ':') if key else '':{width}}{value}", markup=False, highlight=False)
    out.print("\nEvents:", markup=False)
    render_history(out, o.history)
