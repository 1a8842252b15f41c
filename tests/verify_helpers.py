"""Shared helpers of the verify tests: a spec over two test databases, and report digests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strangler.spec import Spec, parse_spec_text
from strangler.steps.verify import verify_service
from strangler.verify import VerifyReport

SPEC = """\
version: 1
state: sqlite:///{state}
source: {{ dsn: {source}, schema: public }}
services:
  svc:
    tables: {tables}
    target: {{ dsn: {target}, schema: svc }}
    strategy: copy
"""


def make_spec(source: str, target: str, tables: list[str], state: Path) -> Spec:
    text = SPEC.format(
        state=state,
        source=json.dumps(source),
        target=json.dumps(target),
        tables=json.dumps(tables),
    )
    return parse_spec_text(text)


def both(dbs: list[Any], sql_text: str) -> None:
    """Run ``sql_text`` on each database; the target's tables live in schema svc."""
    for i, db in enumerate(dbs):
        prefix = (
            "SET search_path = public;"
            if i == 0
            else "CREATE SCHEMA IF NOT EXISTS svc; SET search_path = svc;"
        )
        with db.connect() as conn:
            conn.execute(prefix + sql_text)


def run(
    source: Any, target: Any, tables: list[str], tmp: Path, only: list[str] | None = None, **kw: Any
) -> VerifyReport:
    spec = make_spec(source.dsn, target.dsn, tables, tmp / "state.db")
    return verify_service(spec, "svc", tables=only, **kw)


def digest(report: VerifyReport) -> set[tuple[str, str, tuple[str, ...]]]:
    """Every differing row as (kind, "k=v, …", columns)."""
    return {(r.kind, r.key_text(), r.columns) for t in report.tables for r in t.rows}
