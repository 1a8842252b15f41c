"""The evidence checks of the decommission steps (see :mod:`strangler.steps.proofs` for
the contract): each runs inside the service's lock when its step acts, refuses with
CheckFailed or returns what it was checked against. The ``stable`` phase is never taken as
proof that the old tables may go: they are measured again, now. The mechanism a check
measures with is imported inside it: every step imports this table, and most never need it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from strangler.checks.base import CheckContext, Guard, History, Verdict
from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.phases import Action
from strangler.steps import facts
from strangler.steps.records import Event, GuardOff, GuardState, Progress
from strangler.steps.types import JournaledRef, Moment

__all__ = [
    "archive_intact",
    "decommission_check_holds",
    "grace_period_over",
    "no_dependents",
    "old_tables_quiet",
    "retired_tables_untouched",
]

Evidence = dict[str, Any]


def decommission_check_holds(rb: JournaledRef, moment: Moment) -> Evidence:
    """The newest ``decommission --check`` passed, and was made while traffic has been at
    100 % (read from the journal in the lock): a later failing check, or a traffic move
    after it, withdraws it."""
    last = rb.journal.last(rb.name, Event.DECOMMISSION_CHECK)
    _, since = facts.traffic_timeline(rb.journal, rb.name)
    how = f"strangler decommission {rb.name} --check"
    if last is None or last.status != "pass":
        failed = [
            r.get("name", "?")
            for r in (last.details.get("results", []) if last else [])
            if r.get("verdict") == "fail"
        ]
        raise CheckFailed(
            f"{rb.name} has no passing decommission check"
            + (
                f": the newest ({last.at:%Y-%m-%d %H:%M:%S} UTC) failed on {', '.join(failed)}"
                if last is not None and failed
                else ""
            ),
            hint=f"run '{how}'",
        )
    if since is None or last.at < since:
        raise CheckFailed(
            f"the last passing decommission check of {rb.name} predates the current traffic state",
            hint=f"run '{how}' again",
        )
    return {"check": last.id, "at": last.at.isoformat()}


def old_tables_quiet(rb: JournaledRef, moment: Moment) -> Evidence:
    """No write to the old tables within ``decommission.write_window``, measured now: the
    guard's log after the rows already accounted for, the server's write counters against
    the window's start, and the guard still on every table."""
    from strangler.checks.decommission import BASELINE, STATISTICS_RESET, old_tables_written

    progress = Progress(rb.journal, rb.name)
    how = f"strangler decommission {rb.name} --check"
    off = progress.load(GuardOff)
    if off is not None:
        found_off = _unwritten_since_guard_off(rb, off, how)
        if found_off is not None:
            return found_off
    saved = progress.load(GuardState)
    if saved is None:
        raise CheckFailed(
            f"{rb.name}: no write guard was ever put on the old tables, so nothing shows they "
            "are no longer written",
            hint=f"run '{how}'",
        )
    guard = Guard(
        datetime.fromisoformat(saved.installed_at),
        saved.counters,
        quiet_since=datetime.fromisoformat(saved.quiet_since) if saved.quiet_since else None,
        seen_id=saved.seen_id,
    )
    ctx = CheckContext(rb.spec, rb.name, History(now=rb.journal.clock(), guard=guard))
    found = old_tables_written(ctx)
    window = rb.service.decommission.write_window
    if found.verdict is not Verdict.PASS and found.evidence.get(STATISTICS_RESET):
        # The server lost its counters (a crash restart): nobody wrote, nothing to find. The
        # window starts again now, as the message says, so that a retry after it can pass.
        restart = found.evidence[BASELINE]
        progress.save(
            GuardState(
                saved.installed_at, restart["counters"], restart["quiet_since"], restart["seen_id"]
            )
        )
        again = datetime.fromisoformat(restart["quiet_since"]) + window
        raise CheckFailed(
            f"{rb.name}: the old tables are not proven unwritten, measured now: the server's "
            "write counters were reset (a restart after a crash, or pg_stat_reset()), so no "
            "count covers the write window; it starts again now and ends "
            f"{again:%Y-%m-%d %H:%M:%S} UTC",
            hint=f"run 'strangler decommission {rb.name}' again after that; the write guard's "
            "log, which survives restarts, keeps recording writes meanwhile",
        )
    if found.verdict is not Verdict.PASS:
        raise CheckFailed(
            f"{rb.name}: the old tables are not proven unwritten, measured now: {found.message}",
            hint=f"find the writer; '{how}' shows the writes, and the old tables go once they "
            f"show none for {format_duration(window)}",
        )
    return {"message": found.message, **found.evidence}


def _unwritten_since_guard_off(rb: JournaledRef, off: GuardOff, how: str) -> Evidence | None:
    """A retried ``remove_old_path`` whose earlier attempt took the guard off for the
    archive: the tables are as quiet as they were then if their write counters have not
    moved since (None: the guard is back on, so the guard's own evidence applies)."""
    from strangler.pg.connect import connect
    from strangler.pg.copy import retire as T

    schema, tables = rb.spec.source.schema_, list(rb.service.tables)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if T.guard_installed(conn, schema, tables):
            return None
        now = T.write_counters(conn, schema, tables)
    moved = [
        f"{t}: {off.counters.get(t, 0):,} → {now.get(t, 0):,} rows written"
        for t in tables
        if now.get(t, 0) != off.counters.get(t, 0)
    ]
    if moved:
        raise CheckFailed(
            f"{rb.name}: the old tables cannot be shown unwritten since remove_old_path took "
            f"their write guard off for the archive at {off.at} ({'; '.join(moved)}; the "
            "server's counters also reset when it restarts after a crash)",
            hint=f"'{how}' puts the guard back; the old tables go once they show no write for "
            f"{format_duration(rb.service.decommission.write_window)}",
        )
    return {"guard": f"taken off by remove_old_path at {off.at} for its archive", "counters": now}


def no_dependents(rb: JournaledRef, moment: Moment) -> Evidence:
    """No view or foreign key outside the old tables depends on them (the catalog, now;
    ``strategy: move``: on the compatibility views and the moved tables)."""
    from strangler.pg.connect import connect
    from strangler.pg.copy import retire as T
    from strangler.pg.schema import compat

    schema, tables = rb.spec.source.schema_, list(rb.service.tables)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        if rb.service.strategy == "move":
            # What the monolith still has on its compatibility views and the moved tables.
            deps = compat.dependents(conn, schema, rb.service.target.schema_, tables)
        else:
            deps = T.dependents(conn, schema, tables)
    if deps:
        raise CheckFailed(
            f"{rb.name}: " + "; ".join(deps) + ": remove them with the old code path first",
            hint=f"see 'strangler decommission {rb.name} --check'",
        )
    return {"dependents": []}


def _renamed(rb: JournaledRef) -> Any:
    return rb.journal.last(rb.name, str(Action.REMOVE_OLD_PATH), status="ok")


def grace_period_over(rb: JournaledRef, moment: Moment) -> Evidence:
    """Dropping the old tables waits ``drop_old_tables_after`` after they were renamed."""
    renamed = _renamed(rb)
    wait = rb.service.decommission.drop_old_tables_after
    if renamed is None:
        raise CheckFailed(
            f"the old tables of {rb.name} were never archived and renamed",
            hint=f"run 'strangler decommission {rb.name}'",
        )
    due = renamed.at + wait
    if rb.journal.clock() < due:
        raise CheckFailed(
            f"the old tables of {rb.name} were renamed "
            f"{format_duration(rb.journal.clock() - renamed.at)} ago; they are dropped only "
            f"{format_duration(wait)} after that, from "
            f"{due:%Y-%m-%d %H:%M} UTC (decommission.drop_old_tables_after)",
            hint=f"run 'strangler decommission {rb.name}' again after that time",
        )
    return {"renamed": renamed.at.isoformat(), "waited": format_duration(wait)}


def archive_intact(rb: JournaledRef, moment: Moment) -> Evidence:
    """The archive of the old tables is where it was written, byte for byte (its sha256
    computed now), before anything is dropped."""
    from strangler.pg.copy import retire as T

    renamed = _renamed(rb)
    info = (renamed.details.get("archive") if renamed else None) or {}
    path = Path(str(info.get("path", "")))
    if not info or not path.is_file():
        raise CheckFailed(
            f"the archive of the old tables ({path}) is missing; nothing dropped",
            hint="restore it from backup before dropping the tables",
        )
    actual = T.sha256_of(path)
    if actual != info.get("sha256"):
        raise CheckFailed(
            f"the archive {path} changed since it was written (sha256 {actual} ≠ "
            f"{info.get('sha256')}); nothing dropped"
        )
    return {"archive": str(path), "sha256": actual}


def retired_tables_untouched(rb: JournaledRef, moment: Moment) -> Evidence:
    """Nothing wrote to the retired tables since they were archived and moved: their write
    counters now against the ones the rename recorded (a write there is missing from the
    archive)."""
    from strangler.pg.connect import connect
    from strangler.pg.copy import retire as T

    if rb.service.strategy == "move":
        return {"skipped": "strategy move: only the compatibility views were retired"}
    renamed = _renamed(rb)
    then = (renamed.details.get("retired_counters") if renamed else None) or {}
    if not then:
        return {"skipped": "the rename recorded no counters (a journal from before they were kept)"}
    retired = T.retired_schema(rb.name)
    with connect(rb.spec.source.dsn, role="monolith") as conn:
        now = T.write_counters(conn, retired, list(rb.service.tables))
    grew = {t: (then[t], c) for t, c in now.items() if t in then and c > then[t]}
    if grew:
        text = ", ".join(f"{retired}.{t} {a} → {b}" for t, (a, b) in sorted(grew.items()))
        raise CheckFailed(
            f"{rb.name}: the retired tables were written after the archive was made ({text}); "
            "the archive does not hold those rows, nothing dropped",
            hint=f"find the writer, then archive again by hand before dropping {retired}",
        )
    return {"counters_then": then, "counters_now": now}
