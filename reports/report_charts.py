"""Altair charts of stored numbers (deltas with their CIs, trends, curves, counts).

Every chart draws values a stage wrote; none aggregates or fits anything.
Text in charts (task and suite names, tooltips) is drawn by Vega as SVG text,
never parsed as HTML.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

FLAG_COLOURS = alt.Scale(domain=["ok", "warn", "fail", ""], range=["#2e7d32", "#f9a825", "#c62828", "#1565c0"])


def _rows_height(rows: int) -> int:
    """Pixels for a chart with one row per name: Streamlit sizes such charts by the height it is
    given (axes included), not by the spec's, so it is passed to st.altair_chart."""
    return 90 + 34 * max(rows, 1)


def show_deltas(points: pd.DataFrame, title: str) -> None:
    st.altair_chart(deltas_chart(points, title), height=_rows_height(len(points)))


def show_counts(counts: dict[str, int], title: str) -> None:
    st.altair_chart(counts_chart(counts, title), height=_rows_height(len(counts)))


def deltas_chart(points: pd.DataFrame, title: str) -> alt.LayerChart:
    """One dot per suite or task at its delta (in points), its CI as a bar, zero as a rule."""
    data = points.assign(delta_pts=100 * points["delta"], lo_pts=100 * points["lo"], hi_pts=100 * points["hi"])
    y = alt.Y("name:N", title=None, sort=None)
    bars = alt.Chart(data).mark_rule(strokeWidth=2).encode(
        y=y, x=alt.X("lo_pts:Q", title=f"{title} (points, with CI)"), x2="hi_pts:Q",
        color=alt.Color("flag:N", scale=FLAG_COLOURS, legend=None))
    dots = alt.Chart(data).mark_circle(size=90).encode(
        y=y, x="delta_pts:Q", color=alt.Color("flag:N", scale=FLAG_COLOURS, legend=None),
        tooltip=[alt.Tooltip("name:N"), alt.Tooltip("delta_pts:Q", format="+.1f", title="delta (pts)"),
                 alt.Tooltip("lo_pts:Q", format="+.1f", title="CI low"),
                 alt.Tooltip("hi_pts:Q", format="+.1f", title="CI high")])
    zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="x:Q")
    return zero + bars + dots


def trend_chart(frame: pd.DataFrame, y_title: str, percent: bool) -> alt.LayerChart:
    """A stored metric across runs (oldest first), one line per series, CIs as bars."""
    scale = 100.0
    data = frame.assign(v=scale * frame["value"], l=scale * frame["lo"].astype(float),
                        h=scale * frame["hi"].astype(float))
    x = alt.X("created:T", title="run created")
    colour = alt.Color("series:N", title=None)
    line = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=alt.Y("v:Q", title=y_title), color=colour,
        tooltip=["run:N", "candidate:N", "series:N", alt.Tooltip("v:Q", format=".1f" if percent else "+.1f")])
    bars = alt.Chart(data).mark_rule().encode(x=x, y="l:Q", y2="h:Q", color=colour)
    return (bars + line).properties(height=260)


def curves_chart(steps: pd.DataFrame, fields: dict[str, str], y_title: str, log: bool = False) -> alt.Chart:
    """Per-step curves (loss, eval loss, ...) by role; eval points where eval ran."""
    long = steps.melt(id_vars=["role", "step"], value_vars=list(fields), var_name="series", value_name="value")
    long = long.dropna(subset=["value"]).assign(series=lambda f: f["role"].astype(str) + " " + f["series"].map(fields))
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(type="log") if log else alt.Scale(zero=False))
    return alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=30)).encode(
        x=alt.X("step:Q"), y=y, color=alt.Color("series:N", title=None),
        tooltip=["series:N", "step:Q", alt.Tooltip("value:Q", format=".4g")]).properties(height=260)


def counts_chart(counts: dict[str, int], title: str) -> alt.Chart:
    data = pd.DataFrame({"name": list(counts), "count": list(counts.values())})
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("name:N", title=None, sort=None), x=alt.X("count:Q", title=title),
        tooltip=["name:N", "count:Q"])
