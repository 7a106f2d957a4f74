"""Overview: the verdict and its gates, the smoke test, suites, judge reliability, provenance."""

from __future__ import annotations

from typing import Any

import report_charts
import report_ui
import streamlit as st

from harness.report import item_data, run_data
from harness.report.run_data import RunInfo

md = report_ui.md


def verdict_section(run: RunInfo) -> None:
    verdict = run.verdict
    if verdict is None:
        st.info("This run has no verdict yet: it is still running, or it stopped before the gate stage.")
        return
    outcome = str(verdict.get("outcome", "?"))
    left, right = st.columns([1, 3])
    left.metric("Verdict", outcome.upper())
    left.caption(f"exit code {verdict.get('exit_code', '?')}")
    with right:
        report_ui.outcome("Verdict", outcome, str(verdict.get("reason", "")))
    for warning in verdict.get("warnings") or []:
        st.warning(md(warning))
    gates = run_data.gates_table(verdict)
    st.subheader("Gates")
    if gates.empty:
        st.info("No release gates were applied to this run." if outcome == "ungated"
                else "This run has no gate stage.")
    else:
        report_ui.table(gates)


def smoke_section(run: RunInfo) -> None:
    st.subheader("Smoke-test SFT")
    results = run.stage("train").get("results") or {}
    verdict_train = (run.verdict or {}).get("train") or {}
    if not results and not verdict_train:
        st.info("This run has no train stage: neither checkpoint was trained by the harness.")
        return
    for role in sorted(set(results) | set(verdict_train)):
        smoke = (results.get(role) or {}).get("smoke") or {}
        passed = smoke.get("passed", (verdict_train.get(role) or {}).get("smoke_passed"))
        reasons = smoke.get("reasons", (verdict_train.get(role) or {}).get("reasons")) or []
        name = run.checkpoint(role).get("name", role)
        report_ui.outcome(f"{role} {name}", "pass" if passed else "fail",
                          "; ".join(reasons) or "every smoke check passed")


def suites_section(run: RunInfo) -> None:
    st.subheader("Suites (all checks passed)")
    table = run_data.suites_table(run)
    if table.empty:
        st.info("This run has no suite results yet.")
        return
    report_ui.table(table)
    points = run_data.delta_points(run_data.suite_stats(run))
    if not points.empty:
        report_charts.show_deltas(points, "candidate - base pass rate")


def judge_section(run: RunInfo) -> None:
    st.subheader("Judge")
    judge = run_data.judge_stats(run.stats)
    if not judge:
        if not report_ui.stage_note(run, "judge"):
            st.info("The judge's statistics are not written yet (no stats.json).")
        return
    st.caption(f"{md(judge.get('judge', '?'))} ({md(judge.get('kind', '?'))}"
               f"{', ' + md(judge['model']) if judge.get('model') else ''}), {judge.get('n', '?')} items")
    shown = {"Win rate": "win_rate", "Swap consistency": "swap_consistency", "Parse failures": "parse_failure_rate",
             "Failed calls": "failure_rate", "Tie rate": "tie_rate", "Length-controlled win rate":
             "length_controlled_win_rate"}
    for column, (label, key) in zip(st.columns(len(shown)), shown.items()):
        column.metric(label, run_data.fmt_rate(judge.get(key)))
    st.caption(f"Win-rate CI {run_data.fmt_ci(judge.get('win_rate_ci'), as_rate=True)}, "
               f"sign test p = {run_data.fmt_p(judge.get('sign_test_p'))}.")
    counts = {k: judge.get(k, 0) for k in ("wins", "losses", "ties", "inconsistent", "unparsed", "failed")}
    report_charts.show_counts(counts, "items")
    canaries_section(run, judge.get("canaries") or {})


def canaries_section(run: RunInfo, canaries: dict[str, Any]) -> None:
    total, wins = canaries.get("total", 0), canaries.get("wins", 0)
    if not total:
        st.caption("No canary answers were judged.")
        return
    if wins:
        st.error(f"Canaries: {wins} of {total} canary answers won (they must never win): "
                 f"{md(', '.join(str(w) for w in canaries.get('won') or []))}")
    else:
        st.success(f"Canaries: 0 of {total} canary answers won.")
    rows = item_data.canary_rows(report_ui.records(run, "judge"))
    if rows is not None and not rows.empty:
        with st.expander("Canary verdicts"):
            report_ui.table(rows)


def provenance_section(run: RunInfo) -> None:
    st.subheader("Provenance")
    manifest = run.manifest
    st.caption(f"run {md(manifest.get('run_id', run.name))}, created {md(manifest.get('created_at', '?'))}, "
               f"finished {md(manifest.get('finished_at', 'not yet'))}; inputs hash "
               f"{md(manifest.get('inputs_hash', '?'))}")
    report_ui.table(run_data.checkpoints_table(run))
    tabs = st.tabs(["Stages", "Suites", "Packages", "Hardware", "Git and seeds"])
    with tabs[0]:
        report_ui.table(run_data.stages_table(run))
    with tabs[1]:
        report_ui.table(run_data.mapping_table({s.get("name", "?"): {k: s.get(k) for k in ("path", "sha256", "items")}
                                               for s in manifest.get("suites") or []}, "suite", "file"))
    with tabs[2]:
        report_ui.table(run_data.mapping_table(manifest.get("packages"), "package", "version"))
    with tabs[3]:
        report_ui.table(run_data.mapping_table(run_data.flatten(manifest.get("hardware")), "property", "value"))
    with tabs[4]:
        report_ui.table(run_data.mapping_table({**{f"git {k}": v for k, v in (manifest.get("git") or {}).items()},
                                               **{f"seed {k}": v for k, v in (manifest.get("seeds") or {}).items()}},
                                              "name", "value"))


run = report_ui.require_run()
st.title("Overview")
st.caption(f"{md(run.checkpoint('base').get('name', '?'))} (base) vs "
           f"{md(run.checkpoint('candidate').get('name', '?'))} (candidate): run {md(run.name)}")
verdict_section(run)
smoke_section(run)
suites_section(run)
judge_section(run)
provenance_section(run)
