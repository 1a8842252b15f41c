"""The report's charts, drawn with plotly (the chart library; imported only here, only when a
report is written, so neither the library nor ``strangler --help`` pays for it).

Each function takes the typed evidence and returns a plotly ``Figure``, or None when there is
nothing to draw. :func:`figure_html` turns one into a ``<div>`` that needs plotly.js, which
:func:`plotly_js` returns to inline once per page: the report fetches nothing when viewed.
"""

from __future__ import annotations

from typing import Any

from strangler.steps.evidence import Evidence

__all__ = [
    "figure_html",
    "lag_chart",
    "latency_chart",
    "plotly_js",
    "traffic_chart",
    "verification_chart",
]

_SERVICE = "#1f77b4"
_MONOLITH = "#7f7f7f"
_FAIL = "#d62728"
_PASS = "#2ca02c"


def _layout(fig: Any, title: str, yaxis: str) -> Any:
    fig.update_layout(
        title={"text": title, "x": 0},
        template="plotly_white",
        height=340,
        margin={"l": 60, "r": 60, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.18},
        yaxis_title=yaxis,
        hovermode="x unified",
    )
    return fig


def traffic_chart(ev: Evidence) -> Any | None:
    """Weight per step (a step line) and the error rate of each bake interval, the service
    against the monolith on the same route."""
    if not ev.traffic:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    xs, ys = [], []
    for step in ev.traffic:
        xs.append(step.at)
        ys.append(step.read_back if step.read_back is not None else step.after)
    xs.append(ev.generated_at)
    ys.append(ev.weight)
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, name="weight to the service (%)", line={"shape": "hv", "color": _SERVICE}
        )
    )
    intervals = [i for s in ev.traffic if s.bake for i in s.bake.intervals]
    if intervals:
        fig.add_trace(
            go.Scatter(
                x=[i.at for i in intervals],
                y=[(i.service_error_rate or 0) * 100 for i in intervals],
                name="service error rate (%)",
                mode="lines+markers",
                yaxis="y2",
                marker={"color": [_FAIL if i.verdict == "fail" else _PASS for i in intervals]},
                line={"color": _FAIL, "dash": "dot"},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[i.at for i in intervals],
                y=[(i.monolith_error_rate or 0) * 100 for i in intervals],
                name="monolith error rate (%)",
                mode="lines+markers",
                yaxis="y2",
                line={"color": _MONOLITH, "dash": "dot"},
            )
        )
    _layout(fig, "Traffic weight and error rate per bake interval", "weight %")
    fig.update_layout(
        yaxis={"range": [0, 105]},
        yaxis2={"title": "error rate %", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    return fig


def latency_chart(ev: Evidence) -> Any | None:
    intervals = [i for s in ev.traffic if s.bake for i in s.bake.intervals]
    if not intervals:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, color, values in (
        ("service p99 (ms)", _SERVICE, [i.service_p99 for i in intervals]),
        ("monolith p99 (ms)", _MONOLITH, [i.monolith_p99 for i in intervals]),
    ):
        fig.add_trace(
            go.Scatter(
                x=[i.at for i in intervals],
                y=[None if v is None else v * 1000 for v in values],
                name=name,
                mode="lines+markers",
                line={"color": color},
            )
        )
    return _layout(fig, "Latency p99 per bake interval", "ms")


def lag_chart(ev: Evidence) -> Any | None:
    if not ev.lag:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    for direction in sorted({p.direction for p in ev.lag}):
        points = [p for p in ev.lag if p.direction == direction]
        fig.add_trace(
            go.Scatter(
                x=[p.at for p in points],
                y=[p.lag_seconds for p in points],
                name=f"{direction} lag (s)",
                mode="lines+markers",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[p.at for p in points],
                y=[p.lag_bytes for p in points],
                name=f"{direction} lag (bytes)",
                yaxis="y2",
                line={"dash": "dot"},
            )
        )
    _layout(fig, "Sync lag over time", "seconds")
    fig.update_layout(yaxis2={"title": "bytes", "overlaying": "y", "side": "right"})
    return fig


def verification_chart(ev: Evidence) -> Any | None:
    if not ev.verifications:
        return None
    import plotly.graph_objects as go

    vs = ev.verifications
    fig = go.Figure(
        go.Scatter(
            x=[v.at for v in vs],
            y=[v.differences for v in vs],
            mode="markers+lines",
            name="rows that differ",
            marker={
                "size": 12,
                "color": [_PASS if v.status == "passed" else _FAIL for v in vs],
                "symbol": ["circle" if v.status == "passed" else "x" for v in vs],
            },
            text=[f"{v.status} ({v.mode}) by {v.operator}" for v in vs],
            line={"color": "#bbbbbb"},
        )
    )
    _layout(fig, "Verification timeline (green: identical, red: differences)", "rows differing")
    fig.update_layout(yaxis={"rangemode": "tozero"})
    return fig


def figure_html(fig: Any, div_id: str) -> str:
    import plotly.io as pio

    return str(
        pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def plotly_js() -> str:
    """plotly.js itself, from the plotly package (no network, ever)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())
