"""The decommission steps of a ``strategy: move`` service, where the old path is the
compatibility views and not old tables (:mod:`strangler.steps.decommission` calls these).

- the write guard goes on the moved tables and records writes by any role but the
  service's (:func:`strangler.pg.schema.compat.install_guard`);
- ``remove_old_path``: the views are archived (``pg_dump`` of their definitions and grants,
  with sha256: ``pg_restore`` puts them back while the tables exist), the guard comes off,
  the views move to ``retired_<service>`` and the serial sequences kept in the monolith's
  schema join the service's;
- ``decommission``: the retired views are dropped.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from strangler.checks.base import Guard
from strangler.errors import CheckFailed
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.pg.schema import compat
from strangler.pg.schema.move import Moved
from strangler.steps import archives
from strangler.steps.records import Event, GuardState, MoveRecord
from strangler.steps.runbook import Runbook

__all__ = ["archive_views", "drop_views", "guard", "retire_views"]


def _moved(rb: Runbook) -> Moved:
    record = rb.progress.load(MoveRecord)
    if record is None:
        raise CheckFailed(
            f"strangler has no record of moving {rb.name}'s tables",
            hint=f"see 'strangler history {rb.name}'",
        )
    return Moved.from_json(dict(record.moved))


def guard(rb: Runbook, dry_run: bool) -> Guard | None:
    """The guard on the moved tables, put on now if missing (None without a service role:
    the check then says why)."""
    role = rb.service.target.role
    if role is None:
        return None
    target, tables = rb.service.target.schema_, list(rb.service.tables)
    saved = rb.progress.load(GuardState)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if not set(tables) <= set(T.existing(conn, target, tables)):
            return None
        installed = T.guard_installed(conn, target, tables)
        if saved is not None and installed:
            return Guard(datetime.fromisoformat(saved.installed_at), saved.counters)
        if dry_run:
            return None
        compat.install_guard(conn, target, tables, role.name)
    now = rb.journal.clock()
    rb.progress.save(GuardState(now.isoformat(), {}))
    rb.journal.event(rb.name, Event.GUARD_INSTALLED, status="ok", details={"role": role.name})
    return Guard(now, {}, installed_now=True)


def archive_views(rb: Runbook, archive_dir: Path, major: int) -> dict[str, Any]:
    """``pg_dump`` of the compatibility views (definitions, comments, grants), or the
    archive an interrupted attempt recorded when its file is still intact."""
    kept = archives.recorded(rb)
    if kept is not None:
        return kept
    schema, tables = rb.spec.source.schema_, list(rb.service.tables)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        views = compat.compat_views(conn, schema, tables)
    return archives.make_archive(rb, archive_dir, "views", major, schema, views)


def retire_views(rb: Runbook) -> str:
    """The guard off, the views to ``retired_<service>``, the kept sequences home."""
    moved = _moved(rb)
    retired = T.retired_schema(rb.name)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        T.remove_guard(conn, moved.target_schema, moved.tables)
        compat.retire_views(
            conn,
            moved.source_schema,
            moved.target_schema,
            moved.tables,
            moved.kept_sequences,
            retired,
        )
    return retired


def drop_views(rb: Runbook) -> list[str]:
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        return compat.drop_views(conn, T.retired_schema(rb.name), list(rb.service.tables))
