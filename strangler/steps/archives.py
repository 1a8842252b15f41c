"""One archive per removal of the old path, however often that step is interrupted.

``remove_old_path`` archives the old tables (or a moved service's views) with ``pg_dump``,
records the archive, then retires them. Interrupted between the dump and the record (the
journal's disk full, the monolith's link dropped mid-dump, kill -9), the step runs again and
dumps again: before this module, each attempt left its file beside the next, and the archive
directory held two dumps of which only one was vouched for by the journal (issue 15's fault
campaign: decommission-archive x journal-disk and x network).

Archives are made only while the service is ``stable``, so any archive of this service
stamped after it became stable that the journal does not record is an earlier attempt's,
superseded by the one being made: it is removed before the new one is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strangler.errors import CheckFailed
from strangler.pg.copy import retire as T
from strangler.phases import Action
from strangler.steps.records import ArchiveRecord
from strangler.steps.runbook import Runbook

__all__ = ["make_archive", "recorded"]

STAMP = "%Y%m%dT%H%M%SZ"
_STAMPED = re.compile(r"\d{8}T\d{6}Z")


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(STAMP)


def recorded(rb: Runbook) -> dict[str, Any] | None:
    """The archive the journal records for this removal, when its file is still intact."""
    kept = rb.progress.load(ArchiveRecord)
    if kept is None:
        return None
    path = Path(str(kept.archive.get("path", "")))
    if path.is_file() and T.sha256_of(path) == kept.archive.get("sha256"):
        return dict(kept.archive)
    return None


def discard_superseded(rb: Runbook, archive_dir: Path, kind: str) -> list[str]:
    """Remove this service's ``kind`` archives (and their restore lists) stamped at or
    after it became stable: earlier attempts of this removal that nothing records."""
    stable = rb.journal.last(rb.name, str(Action.MARK_STABLE), status="ok")
    if stable is None or not archive_dir.is_dir():
        return []
    floor, prefix = _stamp(stable.at), f"{rb.name}-{kind}-"
    gone = []
    for path in sorted(archive_dir.glob(prefix + "*")):
        stamp = path.name[len(prefix) :].split(".", 1)[0]
        if _STAMPED.fullmatch(stamp) and stamp >= floor and path.suffix in (".dump", ".list"):
            path.unlink(missing_ok=True)
            gone.append(str(path))
    return gone


def make_archive(
    rb: Runbook,
    archive_dir: Path,
    kind: str,
    major: int,
    schema: str,
    relations: Sequence[str],
) -> dict[str, Any]:
    """A new ``pg_dump`` of ``relations`` into ``archive_dir`` (earlier attempts' files
    removed first), recorded before returning. Callers take :func:`recorded` first."""
    if not relations:
        # pg_dump with no --table dumps the whole database: never the archive of nothing.
        raise CheckFailed(
            f"{rb.name}: no {kind} to archive in schema {schema!r}: they were moved or "
            "dropped outside this step",
            hint=f"see 'strangler history {rb.name}' and the schema's contents",
        )
    superseded = discard_superseded(rb, archive_dir, kind)
    dest = archive_dir / f"{rb.name}-{kind}-{_stamp(rb.journal.clock())}.dump"
    made = T.archive_tables(rb.spec.source.dsn, major, schema, relations, dest).to_dict()
    if superseded:
        made["superseded"] = superseded
    rb.progress.save(ArchiveRecord(made))
    return made
