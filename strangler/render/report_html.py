"""``strangler report``: the evidence bundle as one self-contained HTML file.

Everything the page needs is inside it: the styles, the data, and plotly.js (the chart
library, ~4.8 MB) inlined once, so it opens from a ticket attachment on a machine without
network and shows the same thing in five years. Charts: traffic weight and error rate per
bake interval against the monolith's, latency p99, sync lag, the verification timeline.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from strangler.durations import format_bytes
from strangler.render.charts import (
    figure_html,
    lag_chart,
    latency_chart,
    plotly_js,
    traffic_chart,
    verification_chart,
)
from strangler.render.report_md import iso
from strangler.steps.evidence import Evidence

__all__ = ["render_html"]

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { opacity: .8; font-size: 13px; }
main { padding: 8px 32px 40px; max-width: 1280px; }
section { background: #fff; border: 1px solid #e2e5ea; border-radius: 6px; margin: 16px 0;
          padding: 12px 18px; }
h2 { font-size: 17px; margin: 4px 0 10px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f0f2f5; font-weight: 600; }
.ok, .passed, .pass, .attested { color: #1a7f37; font-weight: 600; }
.failed, .fail, .rollback, .error { color: #cf222e; font-weight: 600; }
.warn, .skipped, .waiting { color: #9a6700; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #e2e5ea; border-radius: 6px; padding: 10px 16px;
        min-width: 150px; }
.card b { display: block; font-size: 20px; }
code { font-size: 12px; }
"""


def _e(value: object) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text = _e(cell)
            cls = text if text in _STATUS_CLASSES else ""
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_STATUS_CLASSES = {
    "ok",
    "passed",
    "pass",
    "attested",
    "failed",
    "fail",
    "rollback",
    "error",
    "warn",
    "skipped",
    "waiting",
}


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def render_html(ev: Evidence) -> str:
    """The whole report as one HTML document (about 5 MB: plotly.js is inside)."""
    charts = []
    for div_id, fig in (
        ("chart-traffic", traffic_chart(ev)),
        ("chart-latency", latency_chart(ev)),
        ("chart-lag", lag_chart(ev)),
        ("chart-verify", verification_chart(ev)),
    ):
        if fig is not None:
            charts.append(f'<div class="chart">{figure_html(fig, div_id)}</div>')
    last_verify = ev.verifications[-1] if ev.verifications else None
    cards = [
        ("phase", ev.phase),
        ("traffic to the service", f"{ev.weight:g} %"),
        ("last verification", last_verify.status if last_verify else "never"),
        ("rollbacks", str(len(ev.rollbacks))),
        ("journal entries", str(len(ev.journal))),
    ]
    parts: list[str] = [
        '<div class="cards">'
        + "".join(f'<div class="card">{_e(k)}<b>{_e(v)}</b></div>' for k, v in cards)
        + "</div>",
        _section(
            "Spec and plan",
            _table(
                ["", ""],
                [
                    ("spec", ev.spec_path),
                    ("spec sha256", ev.spec_sha256),
                    ("strategy", ev.strategy),
                    ("source", ev.source),
                    ("target", ev.target),
                    ("tables", ", ".join(ev.tables)),
                ],
            )
            + _table(
                ["done", "step", "to phase", "what"],
                [
                    ("✓" if s["done"] else "", s["action"], s["to"], s["what"])
                    for s in ev.plan_steps
                ],
            )
            + "".join(f"<p>{_e(f)}</p>" for f in ev.plan_findings),
            "plan",
        ),
        _section("Charts", "".join(charts) or "<p>Nothing to chart yet.</p>", "charts"),
    ]
    checks = "".join(
        f"<p><b>{_e(r.kind)}</b> at {_e(iso(r.at))} by {_e(r.operator)}: "
        f'<span class="{_e(r.status)}">{_e(r.status)}</span></p>'
        + _table(
            ["check", "verdict", "evidence"], [(c.name, c.verdict, c.message) for c in r.checks]
        )
        for r in ev.checks
    )
    if ev.attestations:
        checks += _table(
            ["attested", "by", "at (UTC)", "note"],
            [(a.status, a.operator, iso(a.at), a.reason) for a in ev.attestations],
        )
    parts.append(_section("Checklists and attestations", checks or "<p>None run.</p>", "checks"))
    copies = "".join(
        f"<p>At {_e(iso(c.at))} by {_e(c.operator)}: {c.rows:,} rows, {_e(format_bytes(c.bytes))}"
        f" in {c.seconds_load:.1f} s ({_e(format_bytes(c.bytes_per_second))}/s, "
        f"{c.rows_per_second:,.0f} rows/s); {c.seconds_total:.1f} s in all.</p>"
        + _table(
            ["table", "rows copied", "rows in source snapshot", "bytes"],
            [(t.table, f"{t.rows:,}", t.source_rows, format_bytes(t.bytes)) for t in c.tables],
        )
        for c in ev.copies
    )
    parts.append(_section("Copy", copies or "<p>No copy recorded.</p>", "copy"))
    verifications = _table(
        ["at (UTC)", "by", "mode", "result", "rows differing", "seconds"],
        [
            (iso(v.at), v.operator, v.mode, v.status, v.differences,
             "-" if v.seconds is None else f"{v.seconds:.1f}")
            for v in ev.verifications
        ],
    )  # fmt: skip
    for v in ev.verifications:
        if v.status != "passed":
            verifications += f"<p>Differences at {_e(iso(v.at))}:</p>" + _table(
                ["table", "source rows", "target rows", "missing", "extra", "changed"],
                [
                    (t.table, t.source_rows, t.target_rows, t.missing, t.extra, t.changed)
                    for t in v.tables
                ],
            )
    parts.append(
        _section(
            "Verifications",
            verifications if ev.verifications else "<p>None recorded.</p>",
            "verify",
        )
    )
    parts.append(
        _section(
            "Write cutover",
            _table(
                ["step", "at (UTC)", "by", "status", "writes refused for", "reason"],
                [
                    (
                        c.kind,
                        iso(c.at),
                        c.operator,
                        c.status,
                        "-" if c.window_seconds is None else f"{c.window_seconds * 1000:.0f} ms",
                        c.reason,
                    )
                    for c in ev.cutovers
                ],
            )
            if ev.cutovers
            else "<p>Writes were not cut over.</p>",
            "cutover",
        )
    )
    traffic = _table(
        ["at (UTC)", "by", "to", "read back", "status", "bake"],
        [
            (iso(s.at), s.operator, f"{s.after:g} %",
             "-" if s.read_back is None else f"{s.read_back:g} %", s.status,
             s.bake.status if s.bake else "-")
            for s in ev.traffic
        ],
    )  # fmt: skip
    for s in ev.traffic:
        if s.bake and s.bake.intervals:
            traffic += f"<p>Bake at {s.after:g} %:</p>" + _table(
                [
                    "interval end",
                    "verdict",
                    "requests",
                    "service errors",
                    "monolith errors",
                    "gates",
                ],
                [
                    (
                        iso(i.at),
                        i.verdict,
                        i.service_requests,
                        _pct(i.service_error_rate),
                        _pct(i.monolith_error_rate),
                        "; ".join(f"{c.check}: {c.status}" for c in i.checks),
                    )
                    for i in s.bake.intervals
                ],
            )
    parts.append(
        _section("Traffic", traffic if ev.traffic else "<p>No traffic shifted.</p>", "traffic")
    )
    parts.append(
        _section(
            "Rollbacks",
            _table(
                ["kind", "at (UTC)", "by", "status", "reason"],
                [(r.kind, iso(r.at), r.operator, r.status, r.reason) for r in ev.rollbacks],
            )
            if ev.rollbacks
            else "<p>None.</p>",
            "rollbacks",
        )
    )
    parts.append(
        _section(
            "Decommission",
            _table(
                ["step", "at (UTC)", "by", "archive", "sha256", "size", "dropped"],
                [
                    (
                        d.step,
                        iso(d.at),
                        d.operator,
                        d.archive_path,
                        d.archive_sha256,
                        format_bytes(d.archive_bytes),
                        ", ".join(d.dropped),
                    )
                    for d in ev.decommission
                ],
            )
            if ev.decommission
            else "<p>Not decommissioned.</p>",
            "decommission",
        )
    )
    parts.append(
        _section(
            "Who did what, when",
            _table(
                ["#", "at (UTC)", "operator", "step", "kind", "status", "reason"],
                [
                    (e.id, iso(e.at), e.operator, e.step, e.kind, e.status, e.reason)
                    for e in ev.journal
                ],
            ),
            "journal",
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Migration evidence: {_e(ev.service)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">{plotly_js()}</script>
</head><body>
<header><h1>Migration evidence: {_e(ev.service)}</h1>
<div class="meta">generated {_e(iso(ev.generated_at))} by strangler report · spec sha256
{_e(ev.spec_sha256)} · files and digests in MANIFEST.sha256</div></header>
<main>{"".join(parts)}</main>
</body></html>
"""
