"""Training: loss and eval-loss curves, grad norm, learning rate, DPO's reward curves, curation counts,
smoke checks."""

from __future__ import annotations

import report_charts
import report_ui
import streamlit as st

from harness.report import tables
from harness.report.run_data import RunInfo

md = report_ui.md


def curves(run: RunInfo) -> None:
    steps = report_ui.records(run, "train")
    if steps is None or steps.empty:
        st.info("No per-step training records in this run.")
        return
    steps = steps.assign(role=steps["role"].fillna("trained") if "role" in steps else "trained")
    for column in ("eval_loss", "grad_norm"):
        if column not in steps:
            steps[column] = None
    st.altair_chart(report_charts.curves_chart(steps, {"loss": "loss", "eval_loss": "eval loss"}, "loss"))
    left, right = st.columns(2)
    if steps["grad_norm"].notna().any():
        left.altair_chart(report_charts.curves_chart(steps, {"grad_norm": "grad norm"}, "grad norm"))
    right.altair_chart(report_charts.curves_chart(steps, {"learning_rate": "learning rate"}, "learning rate"))
    if "reward_margin" in steps and steps["reward_margin"].notna().any():  # a DPO run: what its verdict reads
        st.subheader("Preference optimisation")
        left, right = st.columns(2)
        left.altair_chart(report_charts.curves_chart(
            steps, {"reward_margin": "reward margin", "chosen_reward": "chosen reward",
                    "rejected_reward": "rejected reward"}, "reward (beta x log ratio)"))
        right.altair_chart(report_charts.curves_chart(steps, {"reward_accuracy": "reward accuracy"},
                                                      "pairs ranked right"))
        st.altair_chart(report_charts.curves_chart(
            steps, {"chosen_logp": "chosen", "rejected_logp": "rejected"}, "log-probability of the answers"))


def role_result(run: RunInfo, role: str) -> None:
    result = run.training[role]
    smoke, data = result.smoke, result.data
    st.subheader(f"{role}: {md(run.checkpoint_name(role))}")
    report_ui.outcome("Smoke test", "pass" if smoke.passed else "fail",
                      "; ".join(smoke.reasons) or "every smoke check passed")
    cols = st.columns(5)
    cols[0].metric("Steps", result.steps)
    cols[1].metric("Seconds", result.seconds)
    cols[2].metric("Tokens/s", result.tokens_per_second)
    # drawn by the browser, as summary.md prints a loss; None shows as —
    cols[3].metric("Final eval loss", result.eval_loss, format=tables.number("loss").format)
    cols[4].metric("Peak memory (MiB)", result.peak_memory_mib)
    report_ui.table(tables.smoke_checks_table(result))
    st.caption(f"Data: {data.rows} rows, {data.bad_rows} unparsable; {data.train} train / {data.validation} "
               f"validation; {data.flagged_refusals} flagged refusals.")
    if data.curation:
        left, right = st.columns([1, 2])
        with left:
            report_ui.table(tables.curation_table(result))
        with right:
            report_charts.show_counts(data.curation, "conversations removed")


st.title("Training")
run = report_ui.require_run()
if report_ui.stage_note(run, "train"):
    st.caption("A checkpoint with a `train:` block is trained by the harness (smoke-test SFT or DPO) and shows "
               "up here.")
    st.stop()
curves(run)
for trained in run.training:
    role_result(run, trained)
