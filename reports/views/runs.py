"""Runs: every run in the directory (and those that cannot be read, with why), two runs side by side, and
trends of one base."""

from __future__ import annotations

import report_charts
import report_ui
import streamlit as st

from harness.report import tables

st.title("Runs")
for unreadable in report_ui.unreadable_runs():
    st.warning(report_ui.md(f"{unreadable.name} cannot be read: {unreadable.reason}"))
runs = report_ui.all_runs()
for run in runs:
    report_ui.show_problems(run, prefix=f"{run.name}: ")
if not runs:
    st.info(f"No run dirs in {report_ui.md(report_ui.runs_dir())}. Run `harness compare BASE.yaml CANDIDATE.yaml` "
            "(or `harness demo`) to make one.")
    st.stop()

st.caption(f"{len(runs)} run(s) in {report_ui.md(report_ui.runs_dir())}, newest first. Pick the run the other pages "
           "show in the sidebar.")
report_ui.table(tables.runs_table(runs))

st.subheader("Compare two runs")
by_name = {r.name: r for r in runs}
chosen = st.multiselect("Runs to compare", list(by_name), max_selections=2, key="compare-runs",
                        placeholder="Pick one or two runs")
if chosen:
    report_ui.table(tables.compare_runs_table([by_name[n] for n in chosen]))

current = report_ui.selected_run()
assert current is not None
st.subheader("Over time: runs of the same base")
st.caption(f"Base {report_ui.md(current.checkpoint_name('base'))} "
           f"(fingerprint {report_ui.md(current.base_identity[:12])}): stored win rates and forgetting deltas "
           "of every run of it, with their CIs.")
trend = tables.trend_frame(runs, current.base_identity)
if trend.empty:
    st.info("No run of this base has judge or forgetting statistics yet.")
else:
    if trend["run"].nunique() < 2:
        st.caption("Only one run of this base has statistics so far; the trend grows with each run.")
    wins, forgetting = trend[trend["metric"] == "win rate"], trend[trend["metric"] == "forgetting delta"]
    left, right = st.columns(2)
    if not wins.empty:
        left.altair_chart(report_charts.trend_chart(wins, "judge win rate (%)", percent=True))
    if not forgetting.empty:
        right.altair_chart(report_charts.trend_chart(forgetting, "forgetting delta (points)", percent=False))
