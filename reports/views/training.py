"""Training: loss and eval-loss curves, grad norm, learning rate, curation counts, smoke checks."""

from __future__ import annotations

from typing import Any

import pandas as pd
import report_charts
import report_ui
import streamlit as st

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


def role_result(run: RunInfo, role: str, result: dict[str, Any]) -> None:
    name = run.checkpoint(role).get("name", role)
    smoke = result.get("smoke") or {}
    st.subheader(f"{role}: {md(name)}")
    report_ui.outcome("Smoke test", "pass" if smoke.get("passed") else "fail",
                      "; ".join(smoke.get("reasons") or []) or "every smoke check passed")
    cols = st.columns(5)
    cols[0].metric("Steps", result.get("steps", "?"))
    cols[1].metric("Seconds", result.get("seconds", "?"))
    cols[2].metric("Tokens/s", result.get("tokens_per_second", "?"))
    cols[3].metric("Final eval loss", f"{result['eval_loss']:.4f}" if isinstance(result.get("eval_loss"), float)
                   else "n/a")
    cols[4].metric("Peak memory (MiB)", result.get("peak_memory_mib", "?"))
    checks = pd.DataFrame([{"check": c.get("name"), "result": "pass" if c.get("passed") else "FAIL",
                            "measured": c.get("detail", "")} for c in smoke.get("checks") or []],
                          columns=["check", "result", "measured"])
    report_ui.table(checks)
    data = result.get("data") or {}
    if data:
        st.caption(f"Data: {data.get('rows', '?')} rows, {data.get('bad_rows', '?')} unparsable; "
                   f"{data.get('train', '?')} train / {data.get('validation', '?')} validation; "
                   f"{data.get('flagged_refusals', 0)} flagged refusals.")
        curation = data.get("curation") or {}
        if curation:
            left, right = st.columns([1, 2])
            with left:
                report_ui.table(pd.DataFrame({"curation filter": list(curation),
                                              "removed": [curation[k] for k in curation]}))
            with right:
                report_charts.show_counts(curation, "conversations removed")


run = report_ui.require_run()
st.title("Training")
if report_ui.stage_note(run, "train"):
    st.caption("A checkpoint with a `train:` block is trained by the harness (smoke-test SFT) and shows up here.")
    st.stop()
curves(run)
for role, result in (run.stage("train").get("results") or {}).items():
    role_result(run, role, result or {})
