"""``strangler decommission SERVICE --check``: the runbook's post-migration checklist as
evidence, one verdict per item.

=========================================  =================================================
stable for ``stable_for`` since 100 %      the journal: when traffic last reached 100 %
error rate no higher than the baseline     metric source: service now vs monolith before
latency within 10 % of the baseline        metric source: p99 now vs monolith's before
no P1/P2 incident                          attestation ``no_incident``, made after the window
old tables no longer written               guard log + write counters: none in the window
no dependents left on the old tables       catalog: views / foreign keys that would break
old route at 0 requests                    metric source: monolith's requests on the route
=========================================  =================================================

The metric items are :mod:`strangler.checks.decommission_metrics`.

``strategy: move`` has no old tables: the monolith writes through its compatibility views
into the service's own tables. "No longer written" is then "no role but the service's
writes them" (the guard of :mod:`strangler.pg.schema.compat`, which needs ``target.role``),
and the dependents are what the monolith still has on the views and the moved tables.
The step (:mod:`strangler.steps.decommission`) puts the write guard on first, journals the
verdicts and keeps the write window's new start; these checks only read.
"""

from __future__ import annotations

from typing import Any

from strangler.checks.attestations import attestation_check
from strangler.checks.base import CheckContext, CheckResult, Verdict, run_checks
from strangler.checks.decommission_metrics import MetricWindowSource, metric_items
from strangler.durations import format_duration
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.pg.schema import compat

__all__ = [
    "BASELINE",
    "STATISTICS_RESET",
    "MetricWindowSource",
    "decommission_checks",
    "old_tables_written",
]

# Evidence key of "old tables no longer written" when the quiet window must start again (a
# write was seen, or the statistics were reset): its new start, for the step to keep.
BASELINE = "window_restarts"
# Set (True) in the evidence when the counters went back: a crash restart or pg_stat_reset(),
# not a writer, so the window starts again without anyone to find.
STATISTICS_RESET = "statistics_reset"


def _stable(ctx: CheckContext) -> CheckResult:
    name = "stable since traffic reached 100%"
    need = ctx.svc.decommission.stable_for
    since = ctx.history.complete_since
    if since is None:
        return CheckResult(
            name,
            Verdict.FAIL,
            "traffic is not at 100% on the new service",
            {"stable_for": format_duration(need)},
        )
    held = ctx.now() - since
    evidence = {
        "since": since.isoformat(),
        "held": format_duration(held),
        "stable_for": format_duration(need),
    }
    if held < need:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"traffic has been at 100% for {format_duration(held)}; the spec asks for "
            f"{format_duration(need)} (until {since + need:%Y-%m-%d %H:%M} UTC)",
            evidence,
            until=since + need,
        )
    return CheckResult(
        name,
        Verdict.PASS,
        f"at 100% for {format_duration(held)} (≥ {format_duration(need)})",
        evidence,
    )


def _no_incident(ctx: CheckContext) -> CheckResult:
    since = ctx.history.complete_since
    after = since + ctx.svc.decommission.stable_for if since else None
    r = attestation_check(ctx, "no_incident", after=after)
    # Attesting before the window ends cannot cover it: wait for the window first.
    awaits_after = after if after is not None and after > ctx.now() else None
    return CheckResult(
        "no P1/P2 incident",
        r.verdict,
        r.message,
        r.evidence,
        until=awaits_after,
        awaits=None if awaits_after else r.awaits,
    )


def _through_views(ctx: CheckContext) -> CheckResult:
    """``strategy: move``: the guard's log of writes by any role but the service's."""
    name = "old tables no longer written"
    svc = ctx.svc
    target, tables = svc.target.schema_, list(svc.tables)
    window = svc.decommission.write_window
    now = ctx.now()
    guard = ctx.history.guard
    if svc.target.role is None:
        return CheckResult(
            name,
            Verdict.FAIL,
            "strategy move tells the monolith's writes (through its views) from the service's "
            "by the role that makes them, and the spec names no target.role",
            awaits=None,
        )
    if guard is None:
        return CheckResult(
            name, Verdict.FAIL, "no write guard on the moved tables yet (dry run: not installed)"
        )
    role = svc.target.role.name
    if guard.installed_now:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"write guard installed on {', '.join(f'{target}.{t}' for t in tables)} now: no "
            f"role but {role} may write them for {format_duration(window)} "
            f"(until {now + window:%Y-%m-%d %H:%M} UTC)",
            until=now + window,
        )
    with connect(ctx.spec.source.dsn, role="monolith") as conn:
        writes = T.recorded_writes(conn, target, tables)
    start = guard.installed_at
    evidence: dict[str, Any] = {"since": start.isoformat(), "writes": writes[-10:]}
    if writes:
        w = writes[-1]
        return CheckResult(
            name,
            Verdict.FAIL,
            f"{len(writes)} write(s) by roles other than {role} recorded since "
            f"{start:%Y-%m-%d %H:%M} UTC, the last: {w['operation']} on {w['table']} by "
            f"{w['by']} at {w['at']} (the monolith still writes through its views)",
            evidence,
        )
    held = now - start
    if held < window:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"no write but {role}'s for {format_duration(held)} so far; the spec asks for "
            f"{format_duration(window)} (until {start + window:%Y-%m-%d %H:%M} UTC)",
            evidence,
            until=start + window,
        )
    return CheckResult(
        name, Verdict.PASS, f"no write but {role}'s for {format_duration(held)}", evidence
    )


def old_tables_written(ctx: CheckContext) -> CheckResult:
    """ "Old tables no longer written", measured now: no write recorded by the guard or
    counted by the server's statistics within ``write_window``.

    A write counts in the window it was seen in, not forever: when this check sees writes
    (log rows after the guard's ``seen_id``, or counters that moved since its baseline) it
    fails and its result carries :data:`BASELINE`, the new start of the quiet window (now,
    the counters now, the newest log row seen), for the step to keep. After a full window
    without a write it passes again; nobody has to clear the log by hand."""
    name = "old tables no longer written"
    if ctx.svc.strategy == "move":
        return _through_views(ctx)
    schema, tables = ctx.spec.source.schema_, list(ctx.svc.tables)
    window = ctx.svc.decommission.write_window
    now = ctx.now()
    guard = ctx.history.guard
    with connect(ctx.spec.source.dsn, role="monolith") as conn:
        present = T.existing(conn, schema, tables)
        missing = [t for t in tables if t not in present]
        if missing:
            return CheckResult(
                name, Verdict.FAIL, f"old table(s) not found in {schema}: {', '.join(missing)}"
            )
        if guard is None:
            return CheckResult(
                name, Verdict.FAIL, "no write guard on the old tables yet (dry run: not installed)"
            )
        on = T.guard_installed(conn, schema, tables)
        counters = T.write_counters(conn, schema, tables)
        writes = (
            []
            if guard.installed_now
            else T.recorded_writes(conn, schema, tables, after_id=guard.seen_id)
        )
    if guard.installed_now:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"write guard installed on {', '.join(f'{schema}.{t}' for t in tables)} now; "
            f"they must show no write for {format_duration(window)} "
            f"(until {now + window:%Y-%m-%d %H:%M} UTC)",
            {"counters": dict(guard.counters)},
            until=now + window,
        )
    start = guard.quiet_since or guard.installed_at
    then = dict(guard.counters)
    seen = max([w["id"] for w in writes], default=guard.seen_id or 0)
    restart = {"quiet_since": now.isoformat(), "counters": counters, "seen_id": seen}
    evidence: dict[str, Any] = {
        "since": start.isoformat(),
        "counters_then": then,
        "counters_now": counters,
        "writes": writes[-10:],
        "seen_id": guard.seen_id,
    }
    if not on:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"the write guard is no longer on every one of {', '.join(tables)} (dropped?), so "
            "writes to them would go unrecorded; 'strangler decommission … --check' puts it "
            "back",
            evidence,
        )
    again = f"the write window ({format_duration(window)}) starts again now"
    if writes:
        w = writes[-1]
        return CheckResult(
            name,
            Verdict.FAIL,
            f"{len(writes)} write(s) to the old tables recorded since {start:%Y-%m-%d %H:%M} "
            f"UTC, the last: {w['operation']} on {w['schema']}.{w['table']} by {w['by']} at "
            f"{w['at']}; {again}",
            {**evidence, BASELINE: restart},
        )
    changed = {t: (then.get(t, 0), c) for t, c in counters.items() if c != then.get(t, 0)}
    if changed:
        if any(now_ < before for before, now_ in changed.values()):
            return CheckResult(
                name,
                Verdict.FAIL,
                "the server's statistics were reset; the write window starts again now",
                {**evidence, BASELINE: restart, STATISTICS_RESET: True},
                until=now + window,
            )
        text = ", ".join(f"{schema}.{t} {a} → {b}" for t, (a, b) in sorted(changed.items()))
        return CheckResult(
            name,
            Verdict.FAIL,
            f"write counters changed since {start:%Y-%m-%d %H:%M} UTC: {text} (writes the "
            "guard cannot see: a session in replica mode, such as a still running reverse "
            f"sync, or a dropped guard); {again}",
            {**evidence, BASELINE: restart},
        )
    held = now - start
    if held < window:
        return CheckResult(
            name,
            Verdict.FAIL,
            f"no write for {format_duration(held)} so far; the spec asks for "
            f"{format_duration(window)} (until {start + window:%Y-%m-%d %H:%M} UTC)",
            evidence,
            until=start + window,
        )
    return CheckResult(
        name, Verdict.PASS, f"no write recorded or counted for {format_duration(held)}", evidence
    )


def _dependents(ctx: CheckContext) -> CheckResult:
    name = "nothing else depends on the old tables"
    schema = ctx.spec.source.schema_
    with connect(ctx.spec.source.dsn, role="monolith") as conn:
        if ctx.svc.strategy == "move":
            deps = compat.dependents(conn, schema, ctx.svc.target.schema_, list(ctx.svc.tables))
        else:
            deps = T.dependents(conn, schema, list(ctx.svc.tables))
    if deps:
        return CheckResult(
            name,
            Verdict.FAIL,
            "; ".join(deps) + ": remove them with the old code path first",
            {"dependents": deps},
        )
    return CheckResult(name, Verdict.PASS, "no view or foreign key outside uses them")


def decommission_checks(
    ctx: CheckContext, source: MetricWindowSource | None = None
) -> list[CheckResult]:
    """Every item of the post-migration checklist, one verdict each."""
    results = run_checks(
        ctx,
        [
            ("stable since traffic reached 100%", _stable),
            ("no P1/P2 incident", _no_incident),
            ("old tables no longer written", old_tables_written),
            ("nothing else depends on the old tables", _dependents),
        ],
    )
    return results + metric_items(ctx, source)
