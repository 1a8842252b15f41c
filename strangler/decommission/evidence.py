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
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from strangler.checks.attestations import attestation_check
from strangler.checks.base import CheckContext, CheckResult, Verdict, blocking, run_checks
from strangler.durations import format_duration
from strangler.errors import CheckFailed
from strangler.evidence import requires
from strangler.journal import Journal
from strangler.pg.connect import connect
from strangler.pg.copy import retire as T
from strangler.phases import Action

__all__ = [
    "CHECK_STEP",
    "MetricWindowSource",
    "decommission_evidence",
    "traffic_timeline",
]

CHECK_STEP = "decommission_check"
GUARD_KEY = "decommission:guard"


class MetricWindowSource(Protocol):
    """Any metric source with history: ``measure(start, end)`` returns an object with
    ``monolith`` and ``service`` stats (``requests``, ``errors``, ``error_rate``, ``p99``),
    as :class:`strangler.metrics.base.MetricSource` does."""

    def measure(self, start: datetime, end: datetime) -> Any: ...


def traffic_timeline(journal: Journal, service: str) -> tuple[datetime | None, datetime | None]:
    """``(first_shift, complete_since)``: when traffic first moved, and since when it has been
    at 100 % without interruption (None if it is not at 100 % now)."""
    intents: dict[int, Any] = {}
    first: datetime | None = None
    since: datetime | None = None
    for e in journal.history(service):
        if e.kind == "intent":
            intents[e.id] = e
            continue
        if e.kind != "outcome" or e.status != "ok" or e.intent_id not in intents:
            continue
        intent = intents[e.intent_id]
        if intent.step == "shift_traffic":
            weight = float(intent.details.get("weight", 0) or 0)
            if weight > 0 and first is None:
                first = e.at
            since = (since or e.at) if weight >= 100 else None
        elif intent.step == "rollback_traffic":
            since = None
    return first, since


def _stable(ctx: CheckContext) -> CheckResult:
    name = "stable since traffic reached 100%"
    need = ctx.svc.decommission.stable_for
    _, since = traffic_timeline(ctx.journal, ctx.service)
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
        )
    return CheckResult(
        name,
        Verdict.PASS,
        f"at 100% for {format_duration(held)} (≥ {format_duration(need)})",
        evidence,
    )


def _no_incident(ctx: CheckContext) -> CheckResult:
    _, since = traffic_timeline(ctx.journal, ctx.service)
    after = since + ctx.svc.decommission.stable_for if since else None
    r = attestation_check(ctx, "no_incident", after=after)
    return CheckResult("no P1/P2 incident", r.verdict, r.message, r.evidence)


def _old_tables(ctx: CheckContext) -> CheckResult:
    name = "old tables no longer written"
    schema, tables = ctx.spec.source.schema_, list(ctx.svc.tables)
    window = ctx.svc.decommission.write_window
    now = ctx.now()
    with connect(ctx.spec.source.dsn, role="monolith") as conn:
        present = T.existing(conn, schema, tables)
        missing = [t for t in tables if t not in present]
        if missing:
            return CheckResult(
                name, Verdict.FAIL, f"old table(s) not found in {schema}: {', '.join(missing)}"
            )
        counters = T.write_counters(conn, schema, tables)
        saved = ctx.journal.get(ctx.service, GUARD_KEY)
        if saved is None or not T.guard_installed(conn, schema, tables):
            if ctx.cache.get("dry_run"):
                return CheckResult(
                    name,
                    Verdict.FAIL,
                    "no write guard on the old tables yet (dry run: not installed)",
                )
            T.install_guard(conn, schema, tables)
            ctx.journal.put(
                ctx.service, GUARD_KEY, {"installed_at": now.isoformat(), "counters": counters}
            )
            return CheckResult(
                name,
                Verdict.FAIL,
                f"write guard installed on {', '.join(f'{schema}.{t}' for t in tables)} now; "
                f"they must show no write for {format_duration(window)} "
                f"(until {now + window:%Y-%m-%d %H:%M} UTC)",
                {"counters": counters},
            )
        writes = T.recorded_writes(conn, schema, tables)
    start = datetime.fromisoformat(saved["installed_at"])
    evidence: dict[str, Any] = {
        "since": start.isoformat(),
        "counters_then": saved["counters"],
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
    changed = {
        t: (saved["counters"].get(t, 0), c)
        for t, c in counters.items()
        if c != saved["counters"].get(t, 0)
    }
    if changed:
        if any(now_ < then for then, now_ in changed.values()):
            ctx.journal.put(
                ctx.service, GUARD_KEY, {"installed_at": now.isoformat(), "counters": counters}
            )
            return CheckResult(
                name,
                Verdict.FAIL,
                "the server's statistics were reset; the write window starts again now",
                evidence,
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
        )
    return CheckResult(
        name, Verdict.PASS, f"no write recorded or counted for {format_duration(held)}", evidence
    )


def _dependents(ctx: CheckContext) -> CheckResult:
    name = "nothing else depends on the old tables"
    schema = ctx.spec.source.schema_
    with connect(ctx.spec.source.dsn, role="monolith") as conn:
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
    first, since = traffic_timeline(ctx.journal, ctx.service)
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


def decommission_evidence(
    ctx: CheckContext, source: MetricWindowSource | None = None, *, record: bool = True
) -> tuple[bool, list[CheckResult]]:
    """Gather every item; journal the verdicts. ``(all_hold, results)``."""
    results = run_checks(
        ctx,
        [
            ("stable since traffic reached 100%", _stable),
            ("no P1/P2 incident", _no_incident),
            ("old tables no longer written", _old_tables),
            ("nothing else depends on the old tables", _dependents),
        ],
    )
    results += _metrics(ctx, source)
    ok = not blocking(results)
    if record:
        ctx.journal.event(
            ctx.service,
            CHECK_STEP,
            status="pass" if ok else "fail",
            details={"results": [r.to_dict() for r in results]},
        )
    return ok, results


@requires(Action.MARK_STABLE)
def passing_decommission_check(rb: Any) -> None:
    """MARK_STABLE needs a passing ``decommission --check`` made while traffic was at 100 %."""
    last = rb.journal.last(rb.name, CHECK_STEP)
    _, since = traffic_timeline(rb.journal, rb.name)
    how = f"strangler decommission {rb.name} --check"
    if last is None or last.status != "pass":
        raise CheckFailed(f"{rb.name} has no passing decommission check", hint=f"run '{how}'")
    if since is None or last.at < since:
        raise CheckFailed(
            f"the last passing decommission check of {rb.name} predates the current traffic state",
            hint=f"run '{how}' again",
        )


@requires(Action.DECOMMISSION)
def grace_period_over(rb: Any) -> None:
    """Dropping the old tables waits ``drop_old_tables_after`` after they were renamed."""
    renamed = rb.journal.last(rb.name, str(Action.REMOVE_OLD_PATH), status="ok")
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
