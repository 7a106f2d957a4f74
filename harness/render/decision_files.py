"""The run's decision files: verdict.json, junit.xml, summary.md (and the CI step
summary). Written at the end of `harness compare`, and rewritten by `harness
gate RUN_DIR` from the stored records alone, so both give the same verdict."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config.schema import GateConfig, PlanConfig, PolicyFile
from harness.config.yamlio import validate
from harness.errors import ConfigError
from harness.records.answers import AnswerRow, Answers
from harness.records.outcomes import CheckedAnswers
from harness.records.run_dir import RunDir
from harness.records.run_files import read_run_file
from harness.records.run_results import RunStats, TrainingResult, Verdict
from harness.records.stage_records import CheckRecord
from harness.render.run_summary import RunSummary, junit_xml, markdown, summarize, verdict
from harness.verdict.gate import Decision, decide, default_policy, load_policy


@dataclass(frozen=True)
class Outputs:
    summary: RunSummary
    decision: Decision
    verdict: Verdict


DEFAULT_LABEL = "default (harness/verdict/default_policy.yaml)"


def policy_for(plan: PlanConfig, policy_file: Path | None) -> tuple[list[GateConfig], str]:
    """--policy wins, then the plan's `gates:`, then the shipped default policy; with where they came from."""
    if policy_file is not None:
        return load_policy(policy_file), str(policy_file)
    if plan.gates is None:
        return default_policy(), DEFAULT_LABEL
    return list(plan.gates), "the plan's gates"


def write_outputs(run: RunDir, suite_names: Sequence[str], generations: Iterable[AnswerRow],
                  checks: Sequence[CheckRecord] | CheckedAnswers, run_stats: RunStats,
                  training: dict[str, TrainingResult], gates: Sequence[GateConfig], policy: str) -> Outputs:
    summary = summarize(suite_names, generations, checks)
    decision = replace(decide(gates, run_stats, training), policy=policy)
    result = verdict(summary, training, decision, run_stats)
    text = markdown(summary, run.manifest, decision, training, run_stats)
    run.write_json("verdict.json", result.model_dump(mode="json"))
    run.write_text("junit.xml", junit_xml(decision, run.manifest.run_id))
    run.write_text("summary.md", text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions renders this file on the job's page
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return Outputs(summary, decision, result)


def regate(run_dir: Path, policy_file: Path | None = None) -> tuple[RunDir, Outputs, RunStats]:
    """Re-decide a finished run from disk: no model, no engine, no cache."""
    run = RunDir.open(run_dir)
    try:
        return _regate(run, policy_file)
    finally:
        run.close()


def _regate(run: RunDir, policy_file: Path | None) -> tuple[RunDir, Outputs, RunStats]:
    run_stats, gates, policy = regate_inputs(run, policy_file)
    return run, rewrite_outputs(run, run_stats, gates, policy), run_stats


def regate_inputs(run: RunDir, policy_file: Path | None) -> tuple[RunStats, list[GateConfig], str]:
    """Everything `harness gate` reads, read and checked before anything is written: this process becomes
    the run dir's writer, its stats.json and its gates (`policy_file`, else those it was decided by)."""
    run.take_writer_lock()  # a compare still writing this run dir would overwrite (or be overwritten by) us
    stats_file = run.path / "stats.json"
    if not stats_file.is_file():
        raise ConfigError(str(run.path), None, "no stats.json: the compare in this run dir did not finish; "
                          "rerun it with --run-dir to resume")
    run_stats = read_run_file(stats_file, RunStats)
    if policy_file is not None:
        return run_stats, load_policy(policy_file), str(policy_file)
    # The gates the run was decided by, as its manifest recorded them (a --policy file included).
    recorded = run.manifest.policy
    gates = validate(PolicyFile, {"gates": recorded.gates}, str(run.path / "manifest.json"), "policy").gates
    return run_stats, gates, recorded.source


def rewrite_outputs(run: RunDir, run_stats: RunStats, gates: Sequence[GateConfig], policy: str) -> Outputs:
    names = [s.name for s in run.manifest.suites]
    answers = Answers.read(run.path / "records" / "generations.parquet")
    return write_outputs(run, names, answers, run.read("checks", CheckRecord),
                         run_stats, run.manifest.training(), gates, policy)
