"""Human durations as the runbook writes them: ``24h``, ``14d``, ``10m``, ``1h30m``, ``45s``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_bytes", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse ``"1h30m"`` style text (or plain seconds) into a timedelta.

    Raises ValueError with the accepted forms, so pydantic reports it at the right field.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 24h or 14d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    text = str(value).strip().replace(" ", "")
    if not text:
        raise ValueError("expected a duration such as 30s, 10m, 24h or 14d")
    pos = 0
    seconds = 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(
            f"{value!r} is not a duration; use a number with a unit: ms, s, m, h, d or w "
            "(for example 30s, 10m, 24h, 14d, 1h30m)"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Shortest exact text for a duration: ``86400s`` -> ``1d``, ``5400s`` -> ``1h30m``."""
    total = delta.total_seconds()
    if total < 1:
        return f"{round(total * 1000)}ms"
    out = []
    remaining = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            out.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(out)


def format_bytes(value: int | float | None) -> str:
    """A byte count for people, in postgresql.conf's units (multiples of 1024): ``0 B``,
    ``812 B``, ``4.2 kB``, ``1.5 MB``, ``12 GB``; ``-`` for None (unknown)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if abs(size) < 10 else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
