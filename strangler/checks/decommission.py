"""``strangler decommission SERVICE --check``: the runbook's post-migration checklist as
evidence, one verdict per item.

=========================================  =================================================
stable for ``stable_for`` since 100 %      the journal: when traffic last reached 100 %
error rate no higher than the baseline     metric source: service now vs monolith before
latency within 10 % of the baseline        metric source: p99 now vs monolith's before
no P1/P2 incident                          attestation ``no_incident``, made after the window
old tables no longer written               guard trigger log + write counters over a window
no dependents left on the old tables       catalog: views / foreign keys that would break
old route at 0 requests                    metric source: monolith's requests on the route
=========================================  =================================================

The baseline is the monolith's own figures for the route over a window of the same length
ending when traffic first moved; without a metric source those items are skipped, saying why.

``strategy: move`` has no old tables: the monolith writes through its compatibility views
into the service's own tables. "No longer written" is then "no role but the service's
writes them" (the guard of :mod:`strangler.pg.schema.compat`, which needs ``target.role``),
and the dependents are what the monolith still has on the views and the moved tables.
The step (:mod:`strangler.steps.decommission`) puts the write guard on first and journals the
verdicts; these checks only read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from strangler.checks.attestations import attestation_check
from strangler.checks.base import CheckContext, CheckResult, Verdict, run_checks
from strangler.durations import format_duration
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.pg.schema import compat

__all__ = ["RESTART_WINDOW", "MetricWindowSource", "decommission_checks"]

# Evidence key a result carries when the write window must start again (statistics reset).
RESTART_WINDOW = "restart_window"


class MetricWindowSource(Protocol):
    """Any metric source with history: ``measure(start, end)`` returns an object with
    ``monolith`` and ``service`` stats (``requests``, ``errors``, ``error_rate``, ``p99``),
    as :class:`strangler.metrics.base.MetricSource` does."""

    def measure(self, start: datetime, end: datetime) -> Any: ...


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


def _old_tables(ctx: CheckContext) -> CheckResult:
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
        counters = T.write_counters(conn, schema, tables)
        writes = [] if guard.installed_now else T.recorded_writes(conn, schema, tables)
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
    start = guard.installed_at
    then = dict(guard.counters)
    evidence: dict[str, Any] = {
        "since": start.isoformat(),
        "counters_then": then,
        "counters_now": counters,
        "writes": writes[-10:],
    }
    if writes:
        w = writes[-1]
        return CheckResult(
            name,
            Verdict.FAIL,
            f"{len(writes)} write(s) to the old tables recorded since {start:%Y-%m-%d %H:%M} "
            f"UTC, the last: {w['operation']} on {w['schema']}.{w['table']} by {w['by']} at "
            f"{w['at']}",
            evidence,
        )
    changed = {t: (then.get(t, 0), c) for t, c in counters.items() if c != then.get(t, 0)}
    if changed:
        if any(now_ < before for before, now_ in changed.values()):
            return CheckResult(
                name,
                Verdict.FAIL,
                "the server's statistics were reset; the write window starts again now",
                {**evidence, RESTART_WINDOW: True},
                until=now + window,
            )
        text = ", ".join(f"{schema}.{t} {a} → {b}" for t, (a, b) in sorted(changed.items()))
        return CheckResult(
            name,
            Verdict.FAIL,
            f"write counters changed since {start:%Y-%m-%d %H:%M} UTC: {text} (writes the "
            "guard cannot see: a session in replica mode, such as a still running reverse "
            "sync, or a dropped guard)",
            evidence,
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


def _metrics(ctx: CheckContext, source: MetricWindowSource | None) -> list[CheckResult]:
    names = ("error rate vs baseline", "latency vs baseline", "old route at 0 requests")
    if source is None:
        why = (
            "no metric source in the spec (traffic.metrics); compare with the monolith's "
            "baseline by hand"
        )
        return [CheckResult(n, Verdict.SKIPPED, why) for n in names]
    d = ctx.svc.decommission
    first, since = ctx.history.first_shift, ctx.history.complete_since
    if first is None or since is None:
        return [
            CheckResult(n, Verdict.FAIL, "traffic is not at 100% on the new service") for n in names
        ]
    span = min(d.stable_for, ctx.now() - since) or timedelta(minutes=1)
    base = source.measure(first - span, first).monolith
    now = source.measure(ctx.now() - span, ctx.now())
    out = []
    ev = {"baseline": _stats(base), "service": _stats(now.service), "window": str(span)}
    if base.error_rate is None or now.service.error_rate is None:
        out.append(CheckResult(names[0], Verdict.FAIL, "no requests to compare error rates", ev))
    else:
        limit = base.error_rate + d.max_error_rate_increase
        verdict = Verdict.PASS if now.service.error_rate <= limit else Verdict.FAIL
        out.append(
            CheckResult(
                names[0],
                verdict,
                f"service {now.service.error_rate:.4%} vs baseline "
                f"{base.error_rate:.4%} (limit {limit:.4%})",
                ev,
            )
        )
    if base.p99 is None or now.service.p99 is None:
        out.append(CheckResult(names[1], Verdict.SKIPPED, "the metric source has no p99", ev))
    else:
        limit = base.p99 * d.max_latency_ratio
        verdict = Verdict.PASS if now.service.p99 <= limit else Verdict.FAIL
        out.append(
            CheckResult(
                names[1],
                verdict,
                f"p99 {now.service.p99 * 1000:.0f} ms vs baseline "
                f"{base.p99 * 1000:.0f} ms (limit {limit * 1000:.0f} ms)",
                ev,
            )
        )
    old = now.monolith.requests
    out.append(
        CheckResult(
            names[2],
            Verdict.PASS if old == 0 else Verdict.FAIL,
            f"{old} request(s) reached the monolith's route in the last {format_duration(span)}",
            ev,
        )
    )
    return out


def _stats(s: Any) -> dict[str, Any]:
    return {"requests": s.requests, "errors": s.errors, "p99": s.p99}


def decommission_checks(
    ctx: CheckContext, source: MetricWindowSource | None = None
) -> list[CheckResult]:
    """Every item of the post-migration checklist, one verdict each."""
    results = run_checks(
        ctx,
        [
            ("stable since traffic reached 100%", _stable),
            ("no P1/P2 incident", _no_incident),
            ("old tables no longer written", _old_tables),
            ("nothing else depends on the old tables", _dependents),
        ],
    )
    return results + _metrics(ctx, source)
