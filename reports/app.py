"""The harness report: a Streamlit app over a directory of run dirs (read-only).

Start it with `harness report [RUNS_DIR]` (or `HARNESS_RUNS_DIR=runs streamlit
run reports/app.py --server.address 127.0.0.1`). Every page reads what the
pipeline wrote and computes nothing; a stage that has not landed is a note.
The sidebar picks the run; the choice lives in the `run` query parameter, so
a URL names what it shows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `streamlit run` adds it; AppTest does not
    sys.path.insert(0, str(HERE))

import report_ui  # noqa: E402

st.set_page_config(page_title="harness report", layout="wide")

runs = report_ui.all_runs()
if runs:
    # Options are the dir names themselves: a bound widget matches the URL against its displayed labels.
    st.sidebar.selectbox("Run", [r.name for r in runs], key="run", bind="query-params",
                         help="Newest first. The choice is kept in the URL (?run=...).")
    chosen = report_ui.selected_run()
    if chosen is not None:
        st.sidebar.caption(f"{report_ui.md(chosen.checkpoint_name('base'))} → "
                           f"{report_ui.md(chosen.checkpoint_name('candidate'))}: **{report_ui.md(chosen.outcome)}**")
else:
    st.sidebar.info("No run dirs found.")
st.sidebar.caption(f"Runs dir: {report_ui.md(report_ui.runs_dir())}")

pages = [
    st.Page(HERE / "views" / "runs.py", title="Runs", url_path="runs", default=True),
    st.Page(HERE / "views" / "overview.py", title="Overview", url_path="overview"),
    st.Page(HERE / "views" / "side_by_side.py", title="Side by side", url_path="side-by-side"),
    st.Page(HERE / "views" / "forgetting.py", title="Forgetting", url_path="forgetting"),
    st.Page(HERE / "views" / "training.py", title="Training", url_path="training"),
    st.Page(HERE / "views" / "ranking.py", title="Ranking", url_path="ranking"),
]
st.navigation(pages).run()
