"""Ranking: a run of three or more checkpoints, ranked by the Bradley-Terry fit on every judged pair, the
verdict per candidate, and any two checkpoints' answers side by side."""

from __future__ import annotations

import report_ui
import streamlit as st

from harness.report import group_data, run_data, tables

md = report_ui.md
st.title("Ranking")
run = report_ui.require_run()
group = group_data.group_of(run.path)
if isinstance(group, run_data.Unreadable):  # a group file that is there but does not read: say which, and why
    st.warning(md(group.reason))
    st.stop()
if group is None:
    st.info("This run compares two checkpoints: its judge's win rate is on the Overview page. A ranking needs a "
            "run of three or more: `harness compare base.yaml a.yaml b.yaml`.")
    st.stop()

manifest = group.manifest
st.caption(f"Run {md(manifest.group_id)}: {md(manifest.reference)} (the reference) and "
           f"{len(manifest.checkpoints) - 1} candidates; pairs: {manifest.pairs}.")
if group.verdict is not None:
    st.subheader(f"Verdict: {group.verdict.outcome.upper()}")
    st.caption(md(f"{group.verdict.reason} (require {group.verdict.require})"))
    for c in group.verdict.candidates:
        report_ui.outcome(c.name, c.outcome, c.reason)
if group.stats is None:
    st.info("The run has not finished: the ranking is written at its end.")
    st.stop()
if group.stats.ranking is None:
    st.info("No ranking: the run's plan has no judge.")
    st.stop()

ranking = group.stats.ranking
st.subheader("Strengths")
st.caption(f"{md(ranking.method)}; {ranking.games} judged pairs, {ranking.resamples} resamples. Strength is the "
           f"log-odds of beating {md(manifest.reference)}; low and high bound its 95% interval.")
report_ui.table(tables.ranking_table(group.stats))

st.subheader("Any two side by side")
names = manifest.checkpoints
left, right = st.columns(2)
first = left.selectbox("Checkpoint", names, index=0, key="rank-first")
second = right.selectbox("Against", names, index=min(1, len(names) - 1), key="rank-second")
if first == second:
    st.info("Pick two different checkpoints.")
    st.stop()
pair = group_data.pair_row(group.stats, first, second)
if pair is not None:
    low, high = pair["ci"]
    how = (f"{pair['judged']} pairs judged directly" if pair["judged"]
           else "not judged directly: inferred through the others")
    st.metric(f"P({first} beats {second})", f"{100 * pair['probability']:.1f}%")
    st.caption(md(f"95% interval [{100 * low:.1f}%, {100 * high:.1f}%]; {how}."))
sources = [group_data.answers_in(group, name) for name in (first, second)]
frames = [report_ui.records_in(source[0], "generations") if source else None for source in sources]
answers = None
if sources[0] and sources[1] and frames[0] is not None and frames[1] is not None:  # read once, then from cache
    answers = group_data.side_by_side(frames[0], sources[0][1], frames[1], sources[1][1], (first, second))
if answers is None or answers.empty:
    st.info("No answers of both to show.")
else:
    report_ui.table(report_ui.paginate(answers, "rank-answers"))
