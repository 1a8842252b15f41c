"""Building specs and contexts for the check tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strangler.checks.base import CheckContext
from strangler.journal import Journal
from strangler.spec import Spec, parse_spec_text
from strangler.steps.preflight import context
from strangler.steps.runbook import Runbook


class Clock:
    """A clock tests move by hand (``Journal(clock=…)``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def spec_text(
    source: str,
    extra: str = "",
    *,
    target: str | None = None,
    tables: str = "[orders, order_items]",
    role: str = "",
) -> str:
    target_dsn = f"dsn: {json.dumps(target)}\n      " if target else ""
    role_line = f"\n      role: {role}" if role else ""
    body = "\n".join("    " + line for line in extra.splitlines()) if extra else ""
    return (
        "version: 1\nstate: sqlite:///state.db\n"
        f"source:\n  dsn: {json.dumps(source)}\n  schema: public\n"
        "services:\n  order_service:\n"
        f"    tables: {tables}\n"
        f"    target:\n      {target_dsn}schema: order_service{role_line}\n"
        "    strategy: copy\n" + body + "\n"
    )


def make_rb(tmp_path: Path, text: str, clock: Clock | None = None) -> Runbook:
    """A runbook of the spec ``text`` with a journal on ``clock``."""
    spec: Spec = parse_spec_text(text, base_dir=tmp_path)
    journal = Journal(spec.state_url(), operator="tester", command="test", clock=clock or Clock())
    return Runbook(spec, journal, "order_service")


def make_ctx(tmp_path: Path, text: str, clock: Clock | None = None) -> CheckContext:
    """The checks' context, with the journal's facts as they are now."""
    return context(make_rb(tmp_path, text, clock))
