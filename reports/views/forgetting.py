"""Forgetting: per-task accuracy of both checkpoints, the deltas with CIs, and the flips."""

from __future__ import annotations

import report_charts
import report_ui
import streamlit as st

from harness.report import item_data, tables

md = report_ui.md
st.title("Forgetting")
run = report_ui.require_run()
if report_ui.stage_note(run, "forgetting"):
    st.stop()

forgetting = run.stats.forgetting if run.stats is not None else None
if forgetting is None:
    st.info("No forgetting statistics to show (stats.json is not written yet, or cannot be read): the flips below "
            "are the raw records.")
else:
    st.caption(f"lm-evaluation-harness {md(forgetting.lm_eval_version or '?')}; accuracy per task, candidate "
               "minus base, with the CI and Holm-corrected p-value the stats stage stored.")
    report_ui.table(tables.forgetting_table(run))
    report_charts.show_deltas(tables.delta_points(run.forgetting_tasks), "candidate - base accuracy")

records = report_ui.records(run, "forgetting")
if records is None or records.empty:
    st.info("No per-document forgetting records in this run.")
    st.stop()
st.subheader("Documents that flipped")
direction = st.segmented_control("Direction", ["right → wrong", "wrong → right"], default="right → wrong",
                                 key="flip-direction")
flips = item_data.forgetting_flips(records, lost=direction != "wrong → right")
tasks = sorted(flips["task"].unique())
chosen = st.multiselect("Task", tasks, key="flip-task")
if chosen:
    flips = flips[flips["task"].isin(chosen)]
st.caption(f"{len(flips)} document(s) the base got {'right' if direction != 'wrong → right' else 'wrong'} "
           f"and the candidate {'wrong' if direction != 'wrong → right' else 'right'}.")
if not flips.empty:
    report_ui.table(report_ui.paginate(flips, "flips"))
