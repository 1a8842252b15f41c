"""What ``strangler plan`` checks by connecting, read-only: findings that would stop a step.

Terraform's ``plan`` fails when a provider cannot be reached; ``strangler plan`` likewise
connects to the monolith and the service's database (short timeouts, read-only queries) and
reports, before a row moves, what a step would refuse later (issue 14: a wrong password or a
missing table used to plan with exit 0):

- a database that cannot be reached, refuses the credentials, or has no such database;
- a table the spec names that the monolith's schema does not have (while it is still to copy);
- for ``strategy: online`` before the writes are cut over: ``wal_level`` not ``logical``, and
  a table whose UPDATEs and DELETEs a publication would break (no replica identity);
- a reference across the service boundary that strangler cannot carry (``copy`` refuses it).

Each finding names the fix. Only the steps still to come are checked: after the copy, the
monolith's tables may rightly be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from strangler.errors import CheckFailed, StranglerError, translate
from strangler.pg.connect import connect
from strangler.pg.sync.slot import check_replica_identity
from strangler.phases import Phase
from strangler.spec import Spec

__all__ = ["Finding", "findings"]

_BEFORE_COPY = (Phase.PLANNED, Phase.SCHEMA_READY)
_BEFORE_CUTOVER = (*_BEFORE_COPY, Phase.COPIED, Phase.SYNCING, Phase.VERIFIED)


@dataclass(frozen=True)
class Finding:
    """Something a step would refuse: where, what, and the fix."""

    service: str
    where: str
    message: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "where": self.where,
            "message": self.message,
            "hint": self.hint,
        }


def _missing_tables(conn: Any, schema: str, tables: list[str]) -> list[str]:
    rows = conn.execute(
        sql.SQL(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = {} AND c.relname = ANY({}) AND c.relkind IN ('r', 'p')"
        ).format(sql.Literal(schema), sql.Literal(tables))
    ).fetchall()
    found = {r[0] for r in rows}
    return [t for t in tables if t not in found]


def findings(spec: Spec, service: str, phase: Phase, *, boundary: Any = None) -> list[Finding]:
    """The findings for ``service`` at ``phase`` (see the module docstring).

    ``boundary``: the plan's boundary report, whose ``cannot carry`` references count."""
    svc = spec.service(service)
    if phase is Phase.DECOMMISSIONED:
        return []
    out: list[Finding] = []
    schema = spec.source.schema_
    try:
        with (
            connect(spec.source.dsn, role="monolith", connect_timeout=5) as conn,
            translate("the monolith"),
        ):
            if phase in _BEFORE_COPY:
                for table in _missing_tables(conn, schema, list(svc.tables)):
                    out.append(
                        Finding(
                            service,
                            "monolith",
                            f"table {schema}.{table} does not exist",
                            f"fix services.{service}.tables, or source.schema if the "
                            "tables live in another schema",
                        )
                    )
            if svc.strategy == "online" and phase in _BEFORE_CUTOVER:
                row = conn.execute("SHOW wal_level").fetchone()
                level = row[0] if row else "?"
                if level != "logical":
                    out.append(
                        Finding(
                            service,
                            "monolith",
                            f"wal_level is {level}; online sync needs logical decoding",
                            "ALTER SYSTEM SET wal_level = logical; then restart the "
                            "monolith's server (or use strategy: copy)",
                        )
                    )
                present = [t for t in svc.tables if not any(t in f.message for f in out)]
                try:
                    check_replica_identity(conn, schema, present)
                except CheckFailed as exc:
                    out.append(Finding(service, "monolith", exc.message, exc.hint or "see above"))
    except StranglerError as exc:
        out.append(Finding(service, "monolith", exc.message, exc.hint or "check the DSN"))
    if svc.target.dsn is not None:
        try:
            with connect(svc.target.dsn, role=f"{service} database", connect_timeout=5):
                pass
        except StranglerError as exc:
            out.append(
                Finding(service, f"{service} database", exc.message, exc.hint or "check the DSN")
            )
    for ref in (getattr(boundary, "references", None) or []) if phase in _BEFORE_COPY else []:
        if ref.get("action") == "cannot carry":
            out.append(
                Finding(
                    service,
                    "service boundary",
                    f"{ref['kind']} {ref['from']} → {ref['to']}: {ref['breaks']}",
                    "change it in the monolith first; 'strangler copy' refuses until then",
                )
            )
    return out
