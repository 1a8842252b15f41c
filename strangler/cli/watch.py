"""``--watch`` for ``status`` and ``sync --status``, the way ``kubectl get -w`` and
``argo rollouts status --watch`` behave: print what is there, then again each time it
changes, until a condition holds (exit 0), something fails (exit 1), ``--timeout`` passes
(exit 75: nothing is wrong, it is still on its way) or Ctrl-C (exit 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from strangler.durations import parse_duration
from strangler.errors import BadInput
from strangler.steps.types import EXIT_WAITING

__all__ = ["IntervalOpt", "TimeoutOpt", "WatchOpt", "timeout_seconds", "watch"]

T = TypeVar("T")

WatchOpt = Annotated[
    bool, typer.Option("--watch", "-w", help="Print again whenever it changes, until stopped.")
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        help="With --watch: stop after this long (e.g. 30m); exit 75 if still waiting.",
        show_default=False,
    ),
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.2, help="With --watch: seconds between looks.")
]


def timeout_seconds(timeout: str | None) -> float | None:
    if timeout is None:
        return None
    try:
        seconds = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        raise BadInput(f"--timeout: {exc}", hint="for example --timeout 30m") from None
    if seconds <= 0:
        raise BadInput("--timeout must be longer than zero", hint="for example --timeout 30m")
    return seconds


def watch(
    fetch: Callable[[], T],
    show: Callable[[T], None],
    *,
    key: Callable[[T], Any],
    verdict: Callable[[T], int | None],
    interval: float,
    timeout: float | None,
    on_timeout: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show ``fetch()`` each time ``key`` of it changes; return the exit code: ``verdict``'s
    (0 reached, 1 failed) as soon as it has one, 75 at ``timeout``, 0 on Ctrl-C."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: Any = object()
    try:
        while True:
            value = fetch()
            if key(value) != seen:
                seen = key(value)
                show(value)
            code = verdict(value)
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                on_timeout()
                return EXIT_WAITING
            sleep(interval if deadline is None else min(interval, deadline - time.monotonic()))
    except KeyboardInterrupt:
        return 0
