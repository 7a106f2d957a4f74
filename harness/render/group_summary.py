"""The files of a run of three or more checkpoints, beside its comparisons' run dirs: stats.json (the
ranking), verdict.json (per candidate and overall), summary.md and junit.xml. Written at the end of
`harness compare` and rewritten by `harness gate` on the group's directory, from the comparisons'
stored records and decisions alone."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ConfigError
from harness.records.group_results import (
    GROUP,
    CandidateVerdict,
    GroupManifest,
    GroupStats,
    GroupVerdict,
    RankingStats,
)
from harness.records.run_dir import RunDir, atomic_write_json, atomic_write_text, writer_lock
from harness.records.run_files import read_run_file
from harness.records.stage_records import JudgmentRecord
from harness.render.decision_files import regate_inputs, rewrite_outputs
from harness.render.formatting import pct
from harness.render.run_summary import gate_suite
from harness.render.text import inert
from harness.verdict.gate import Decision
from harness.verdict.overall import overall
from harness.verdict.ranking import Game, judged_games, ranking_stats
from harness.verdict.run_stats import subject_rng


def group_ranking(path: Path, manifest: GroupManifest, seed: int) -> RankingStats | None:
    """Bradley-Terry over every judged pair of every comparison, read back from their records."""
    index = {name: i for i, name in enumerate(manifest.checkpoints)}
    games: list[Game] = []
    judged = False
    for c in manifest.comparisons:
        run = RunDir.open(path / c.dir)
        if run.manifest.stages.get("judge") is None:
            continue
        judged = True
        games += judged_games(run.read("judge", JudgmentRecord), index[c.base], index[c.candidate])
    if not judged:
        return None
    return ranking_stats(manifest.checkpoints, games, subject_rng(seed, "ranking"))


def regate_group(path: Path, policy_file: Path | None = None) -> tuple[GroupManifest, GroupVerdict]:
    """`harness gate` on a run of several checkpoints: each candidate's comparison is re-decided (by
    `policy_file`, else the gates it was decided by), then the group's files. The p-values stay those of
    the whole run's Holm family, as stats.json holds them. Every comparison is read and checked, with
    this process as its writer, before any file is rewritten."""
    lock = writer_lock(path)
    runs: list[RunDir] = []
    try:
        manifest = read_run_file(path / GROUP, GroupManifest)
        stats_file = path / "stats.json"
        if not stats_file.is_file():
            raise ConfigError(str(path), None, "no stats.json: the compare in this run dir did not finish; rerun "
                              "it with --run-dir to resume")
        seed = read_run_file(stats_file, GroupStats).seed
        gated = []
        for c in manifest.comparisons:
            if c.gated:
                runs.append(RunDir.open(path / c.dir))
                gated.append((runs[-1], regate_inputs(runs[-1], policy_file)))
        decided = iter([rewrite_outputs(run, *inputs).decision for run, inputs in gated])
        ranking_only = Decision("ungated", 0, "a pair of candidates is compared for the ranking only", [])
        decisions = [next(decided) if c.gated else ranking_only for c in manifest.comparisons]
        _, verdict = write_group_outputs(path, manifest, decisions, seed)
    finally:
        for run in runs:
            run.close()
        lock.release()
    return manifest, verdict


def write_group_outputs(path: Path, manifest: GroupManifest, decisions: Sequence[Decision],
                        seed: int) -> tuple[GroupStats, GroupVerdict]:
    """`decisions`: each comparison's, in the order of manifest.comparisons."""
    stats = GroupStats(seed=seed, holm_family=[f"{c.base} vs {c.candidate}" for c in manifest.comparisons],
                       ranking=group_ranking(path, manifest, seed))
    candidates = [CandidateVerdict(name=c.candidate, comparison=c.dir, outcome=d.outcome, exit_code=d.exit_code,
                                   reason=d.reason) for c, d in zip(manifest.comparisons, decisions) if c.gated]
    verdict = overall(candidates, manifest.require)
    text = markdown(manifest, stats, verdict)
    atomic_write_json(path / "stats.json", stats.model_dump(mode="json"))
    atomic_write_json(path / "verdict.json", verdict.model_dump(mode="json"))
    atomic_write_text(path / "summary.md", text)
    atomic_write_text(path / "junit.xml", junit_xml(manifest, decisions))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return stats, verdict


OUTCOME = {"pass": "PASS", "fail": "**FAIL**", "inconclusive": "**INCONCLUSIVE**", "ungated": "ungated"}


def _cell(text: str) -> str:
    return inert(text).replace("|", "\\|")


def markdown(manifest: GroupManifest, stats: GroupStats, verdict: GroupVerdict) -> str:
    lines = [f"# {_cell(manifest.reference)} and {len(manifest.checkpoints) - 1} candidates: "
             f"{OUTCOME[verdict.outcome]}", "",
             f"{_cell(verdict.reason)}. Run {_cell(manifest.group_id)}; each comparison is a run dir of its own, "
             "with its summary.md.", "",
             "| candidate | verdict | reason | comparison |", "|---|---|---|---|"]
    lines += [f"| {_cell(c.name)} | {OUTCOME[c.outcome]} | {_cell(c.reason)} | [{c.comparison}]({c.comparison}/"
              "summary.md) |" for c in verdict.candidates]
    lines += ["", f"Holm adjusts the p-values of all {len(stats.holm_family)} comparisons together "
              f"({'; '.join(_cell(f) for f in stats.holm_family)})."]
    lines += ranking_lines(stats.ranking, manifest.reference)
    return "\n".join(lines) + "\n"


def ranking_lines(ranking: RankingStats | None, reference: str) -> list[str]:
    if ranking is None:
        return ["", "No ranking: the plan has no judge."]
    lines = ["", "## Ranking", "",
             f"{ranking.method}: {ranking.games} judged pairs, {ranking.resamples} resamples. Strength is the "
             f"log-odds of beating {_cell(reference)}.", "",
             f"| rank | checkpoint | strength | 95% CI | P(beats {_cell(reference)}) | wins | losses | ties |",
             "|---:|---|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {_cell(c.name)} | {c.strength:+.2f} | [{c.strength_ci[0]:+.2f}, {c.strength_ci[1]:+.2f}] | "
              f"{pct(c.win_probability)} | {c.wins} | {c.losses} | {c.ties} |"
              for k, c in enumerate(ranking.checkpoints, 1)]
    lines += ["", "| pair | P(first wins) | 95% CI | judged directly |", "|---|---:|---|---:|"]
    lines += [f"| {_cell(p.first)} vs {_cell(p.second)} | {pct(p.probability)} | [{pct(p.ci[0])}, {pct(p.ci[1])}] | "
              f"{p.judged} |" for p in ranking.pairs]
    return lines


def junit_xml(manifest: GroupManifest, decisions: Sequence[Decision]) -> str:
    """One test suite per gated comparison, one case per gate (as a two-checkpoint run's junit.xml)."""
    suites = ET.Element("testsuites", name="harness")
    for c, d in zip(manifest.comparisons, decisions):
        if c.gated:
            gate_suite(suites, f"harness gates ({c.candidate})", d, f"harness.gates.{c.candidate}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
