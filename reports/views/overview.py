"""Overview: the verdict and its gates, the smoke test, suites, judge reliability, provenance."""

from __future__ import annotations

import report_charts
import report_ui
import streamlit as st

from harness.report import item_data, tables
from harness.report.run_data import RunInfo

md = report_ui.md


def verdict_section(run: RunInfo) -> None:
    verdict = run.verdict
    if verdict is None:
        st.info("This run has no verdict yet: it is still running, or it stopped before the gate stage."
                if "verdict.json" not in run.problems else "This run's verdict cannot be read (see above).")
        return
    left, right = st.columns([1, 3])
    left.metric("Verdict", verdict.outcome.upper())
    left.caption(f"exit code {verdict.exit_code}")
    with right:
        report_ui.outcome("Verdict", verdict.outcome, verdict.reason)
    for warning in verdict.warnings:
        st.warning(md(warning))
    gates = tables.gates_table(verdict)
    st.subheader("Gates")
    if gates.empty:
        st.info("No release gates were applied to this run." if verdict.outcome == "ungated"
                else "This run has no gate stage.")
    else:
        report_ui.table(gates)


def smoke_section(run: RunInfo) -> None:
    st.subheader("Smoke-test SFT")
    results = run.training
    decided = run.verdict.train if run.verdict is not None else {}
    if not results and not decided:
        st.info("This run has no train stage: neither checkpoint was trained by the harness.")
        return
    for role in sorted(set(results) | set(decided)):
        result = results.get(role)
        passed, reasons = ((result.smoke.passed, result.smoke.reasons) if result is not None
                           else (decided[role].smoke_passed, decided[role].reasons))
        report_ui.outcome(f"{role} {run.checkpoint_name(role)}", "pass" if passed else "fail",
                          "; ".join(reasons) or "every smoke check passed")


def suites_section(run: RunInfo) -> None:
    st.subheader("Suites (all checks passed)")
    table = tables.suites_table(run)
    if table.empty:
        st.info("This run has no suite results yet.")
        return
    report_ui.table(table)
    points = tables.delta_points(run.suite_rates)
    if not points.empty:
        report_charts.show_deltas(points, "candidate - base pass rate")
    sampled = tables.sampled_table(run)
    if not sampled.empty:  # several samples per item: pass@k, majority vote, and who became less reliable
        st.subheader("Several samples per item")
        report_ui.table(sampled)
        checks = report_ui.records(run, "checks")
        changes = item_data.consistency_changes(checks) if checks is not None else None
        if changes is not None and not changes.empty:
            st.caption("Items where one side was right in every sample and the other only in some:")
            report_ui.table(changes)


def judge_section(run: RunInfo) -> None:
    st.subheader("Judge")
    judge = run.judge
    if judge is None:
        if not report_ui.stage_note(run, "judge"):
            st.info("The judge's statistics are not written yet (no stats.json), or cannot be read.")
        return
    st.caption(f"{md(judge.judge or '?')} ({md(judge.kind or '?')}{', ' + md(judge.model) if judge.model else ''}), "
               f"{judge.n} items")
    figures = tables.judge_figures(judge)
    for column, (label, shown) in zip(st.columns(len(figures)), figures.items()):
        column.metric(label, shown)
    st.caption(tables.judge_tests_line(judge))
    if (gold := tables.judge_gold_line(judge)) is not None:
        st.caption(md(gold))
    counts = {"wins": judge.wins, "losses": judge.losses, "ties": judge.ties, "inconsistent": judge.inconsistent,
              "unparsed": judge.unparsed, "failed": judge.failed}
    report_charts.show_counts(counts, "items")
    canaries_section(run)


def canaries_section(run: RunInfo) -> None:
    canaries = run.judge.canaries if run.judge is not None else None
    if canaries is None or not canaries.total:
        st.caption("No canary answers were judged.")
        return
    if canaries.wins:
        st.error(f"Canaries: {canaries.wins} of {canaries.total} canary answers won (they must never win): "
                 f"{md(', '.join(canaries.won))}")
    else:
        st.success(f"Canaries: 0 of {canaries.total} canary answers won.")
    rows = item_data.canary_rows(report_ui.records(run, "judge"))
    if rows is not None and not rows.empty:
        with st.expander("Canary verdicts"):
            report_ui.table(rows)


def provenance_section(run: RunInfo) -> None:
    st.subheader("Provenance")
    manifest = run.manifest
    st.caption(f"run {md(manifest.run_id)}, created {md(manifest.created_at)}, finished "
               f"{md(manifest.finished_at or 'not yet')}; inputs hash {md(manifest.inputs_hash)}")
    report_ui.table(tables.checkpoints_table(run))
    tabs = st.tabs(["Stages", "Suites", "Packages", "Hardware", "Git and seeds"])
    with tabs[0]:
        report_ui.table(tables.stages_table(run))
    with tabs[1]:
        report_ui.table(tables.suite_files_table(run))
    with tabs[2]:
        report_ui.table(tables.mapping_table(manifest.packages, "package", "version"))
    with tabs[3]:
        report_ui.table(tables.mapping_table(tables.flatten(manifest.hardware), "property", "value"))
    with tabs[4]:
        report_ui.table(tables.mapping_table({**{f"git {k}": v for k, v in (manifest.git or {}).items()},
                                               **{f"seed {k}": v for k, v in manifest.seeds.items()}},
                                              "name", "value"))


st.title("Overview")
run = report_ui.require_run()
st.caption(f"{md(run.checkpoint_name('base'))} (base) vs {md(run.checkpoint_name('candidate'))} (candidate): "
           f"run {md(run.name)}")
verdict_section(run)
smoke_section(run)
suites_section(run)
judge_section(run)
provenance_section(run)
