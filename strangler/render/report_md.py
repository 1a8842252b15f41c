"""``strangler report``: the evidence bundle as Markdown, for the change ticket.

Plain Markdown (GitHub / GitLab / Jira's Markdown all render it): tables of the facts, with
times in ISO-8601 UTC and sizes human-sized. The HTML file beside it holds the charts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from strangler.durations import format_bytes
from strangler.steps.evidence import Evidence, TrafficStep

__all__ = ["iso", "md_table", "render_markdown"]


def iso(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _traffic(out: list[str], steps: Sequence[TrafficStep]) -> None:
    out += md_table(
        ["at (UTC)", "by", "from → to", "read back", "status", "bake", "intervals"],
        [
            (
                iso(s.at),
                s.operator,
                f"{s.before:g} % → {s.after:g} %" if s.before is not None else f"→ {s.after:g} %",
                "-" if s.read_back is None else f"{s.read_back:g} %",
                s.status,
                s.bake.status if s.bake else "-",
                len(s.bake.intervals) if s.bake else 0,
            )
            for s in steps
        ],
    )
    for s in steps:
        if not s.bake or not s.bake.intervals:
            continue
        out += ["", f"**Bake at {s.after:g} %** (started {iso(s.bake.started)})", ""]
        out += md_table(
            [
                "interval end",
                "verdict",
                "service req",
                "service errors",
                "monolith errors",
                "service p99",
                "monolith p99",
                "gates",
            ],
            [
                (
                    iso(i.at),
                    i.verdict,
                    i.service_requests,
                    _pct(i.service_error_rate),
                    _pct(i.monolith_error_rate),
                    _ms(i.service_p99),
                    _ms(i.monolith_p99),
                    "; ".join(f"{c.check} {c.status}" for c in i.checks),
                )
                for i in s.bake.intervals
            ],
        )


def render_markdown(ev: Evidence) -> str:
    """The whole report as one Markdown document."""
    out: list[str] = [
        f"# Migration evidence: {ev.service}",
        "",
        f"Generated {iso(ev.generated_at)} by `strangler report`. Spec `{ev.spec_path}` "
        f"(sha256 `{ev.spec_sha256 or 'unreadable'}`). The files of this bundle are listed "
        "with their sha256 in `MANIFEST.sha256` (`sha256sum -c MANIFEST.sha256`).",
        "",
        *md_table(
            ["", ""],
            [
                ("strategy", ev.strategy),
                ("phase now", ev.phase),
                ("traffic to the service", f"{ev.weight:g} %"),
                ("source", ev.source),
                ("target", ev.target),
                ("tables", ", ".join(ev.tables)),
            ],
        ),
        "",
        "## Plan",
        "",
        *md_table(
            ["", "step", "to phase", "what"],
            [("done" if s["done"] else "", s["action"], s["to"], s["what"]) for s in ev.plan_steps],
        ),
        "",
    ]
    if ev.plan_findings:
        out += ["Findings of the plan (service boundary, spec):", ""]
        out += [f"- {f}" for f in ev.plan_findings] + [""]
    out += ["## Checklists and attestations", ""]
    if not ev.checks and not ev.attestations:
        out += ["No checklist was run.", ""]
    for run in ev.checks:
        out += [f"**{run.kind}** at {iso(run.at)} by {run.operator}: {run.status}", ""]
        out += md_table(
            ["check", "verdict", "evidence"],
            [(c.name, c.verdict, c.message) for c in run.checks],
        )
        out.append("")
    if ev.attestations:
        out += md_table(
            ["attested", "by", "at (UTC)", "note"],
            [(a.status, a.operator, iso(a.at), a.reason) for a in ev.attestations],
        )
        out.append("")
    out += ["## Copy", ""]
    if not ev.copies:
        out += ["No copy recorded.", ""]
    for c in ev.copies:
        out += [
            f"At {iso(c.at)} by {c.operator}: {c.rows:,} rows, {format_bytes(c.bytes)} in "
            f"{c.seconds_load:.1f} s of loading ({format_bytes(c.bytes_per_second)}/s, "
            f"{c.rows_per_second:,.0f} rows/s), {c.seconds_total:.1f} s with keys, indexes "
            f"and checks; formats {', '.join(c.formats) or '-'}"
            + (" (resumed after a crash)" if c.resumed else ""),
            "",
        ]
        out += md_table(
            ["table", "rows copied", "rows in source snapshot", "bytes"],
            [
                (t.table, f"{t.rows:,}", "-" if t.source_rows is None else f"{t.source_rows:,}",
                 format_bytes(t.bytes))
                for t in c.tables
            ],
        )  # fmt: skip
        out.append("")
    out += ["## Verifications", ""]
    if not ev.verifications:
        out += ["No verification recorded.", ""]
    else:
        out += md_table(
            ["at (UTC)", "by", "mode", "result", "differences", "seconds"],
            [
                (iso(v.at), v.operator, v.mode, v.status, v.differences,
                 "-" if v.seconds is None else f"{v.seconds:.1f}")
                for v in ev.verifications
            ],
        )  # fmt: skip
        out.append("")
        for v in ev.verifications:
            if v.status == "passed":
                continue
            out += [f"Differences found at {iso(v.at)}:", ""]
            out += md_table(
                ["table", "method", "source rows", "target rows", "missing", "extra", "changed"],
                [
                    (t.table, t.method, t.source_rows, t.target_rows, t.missing, t.extra,
                     t.changed)
                    for t in v.tables
                ],
            )  # fmt: skip
            out.append("")
    out += ["## Sync lag", ""]
    if not ev.lag:
        out += ["No lag samples (`strangler sync` keeps one every 5 s while it runs).", ""]
    else:
        worst = max(ev.lag, key=lambda p: p.lag_seconds or 0)
        out += [
            f"{len(ev.lag)} samples from {iso(ev.lag[0].at)} to {iso(ev.lag[-1].at)}; worst "
            f"{worst.lag_seconds or 0:.1f} s ({format_bytes(worst.lag_bytes)}) at "
            f"{iso(worst.at)}. The chart is in report.html.",
            "",
        ]
    out += ["## Write cutover", ""]
    if not ev.cutovers:
        out += ["Writes were not cut over.", ""]
    else:
        out += md_table(
            ["step", "at (UTC)", "by", "status", "writes refused for", "reason"],
            [
                (c.kind, iso(c.at), c.operator, c.status,
                 "-" if c.window_seconds is None else f"{c.window_seconds * 1000:.0f} ms",
                 c.reason)
                for c in ev.cutovers
            ],
        )  # fmt: skip
        out.append("")
    out += ["## Traffic", ""]
    if not ev.traffic:
        out += ["No traffic was shifted.", ""]
    else:
        _traffic(out, ev.traffic)
        out.append("")
    out += ["## Rollbacks", ""]
    if not ev.rollbacks:
        out += ["None.", ""]
    else:
        out += md_table(
            ["kind", "at (UTC)", "by", "status", "reason"],
            [(r.kind, iso(r.at), r.operator, r.status, r.reason) for r in ev.rollbacks],
        )
        out.append("")
    out += ["## Decommission", ""]
    if not ev.decommission:
        out += ["Not decommissioned.", ""]
    else:
        out += md_table(
            ["step", "at (UTC)", "by", "archive", "sha256", "size", "dropped"],
            [
                (d.step, iso(d.at), d.operator, d.archive_path, d.archive_sha256,
                 format_bytes(d.archive_bytes), ", ".join(d.dropped))
                for d in ev.decommission
            ],
        )  # fmt: skip
        out.append("")
    out += ["## Who did what, when", ""]
    out += md_table(
        ["#", "at (UTC)", "operator", "step", "kind", "status", "reason"],
        [(e.id, iso(e.at), e.operator, e.step, e.kind, e.status, e.reason) for e in ev.journal],
    )
    return "\n".join(out) + "\n"
