"""Records read back as columns: the later stages see the same fields, in the same order, as the records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harness.records.answers as answers_module
from harness.records.answers import Answers, Judgments
from harness.records.run_dir import RunDir
from harness.records.stage_records import GenerationRecord, JudgmentRecord
from harness.render.run_summary import summarize
from harness.verdict.judge_stats import summarize_judgments
from tests.run_files import manifest
from tests.test_judge_summary import record
from tests.test_summary import CHECKS, GENS, gen


def test_answers_read_back_from_the_stage_are_the_records_fields_in_order(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_module, "BATCH", 4)  # several batches
    gens = [gen("base" if i % 3 else "candidate", f"i{i}", f"answer {i}", "length" if i % 5 == 0 else "stop")
            for i in range(11)]
    run = RunDir.create(tmp_path / "run", manifest())
    started = run.stage_started("generations")
    run.append("generations", gens)
    run.stage_done("generations", started, GenerationRecord)
    read = Answers.read(run.path / "records" / "generations.parquet")
    expected = [(g.role, g.suite, g.item_id, g.sample_index, g.text, g.finish_reason, g.completion_tokens)
                for g in gens]
    assert len(read) == 11 and [tuple(a) for a in read] == expected
    assert list(read) == list(read) == list(Answers.of(gens))  # walked as often as needed
    rows = list(read)
    assert rows[1].role is rows[10].role and rows[1].suite is rows[10].suite  # one string for a repeated value


def test_the_summary_of_answers_read_back_is_the_summary_of_the_records() -> None:
    assert summarize(["s"], Answers.of(GENS), CHECKS) == summarize(["s"], GENS, CHECKS)
    assert summarize(["s"], iter(GENS), CHECKS) == summarize(["s"], GENS, CHECKS)  # a one-shot iterator too


def test_judge_statistics_of_judgments_read_back_are_those_of_the_records(tmp_path: Path) -> None:
    records = ([record("candidate", candidate_words=20) for _ in range(7)] + [record("base", suite="t")]
               + [record("tie", consistent=False), record("unparsed", consistent=None, calls=4)]
               + [record("candidate", canary="padded"), record("failed", consistent=None, calls=1)])
    run = RunDir.create(tmp_path / "run", manifest())
    started = run.stage_started("judge")
    run.append("judge", records)
    run.stage_done("judge", started, JudgmentRecord)
    read = Judgments.read(run.path / "records" / "judge.parquet")
    assert len(read) == len(records)
    assert summarize_judgments(read, np.random.default_rng(3)) == summarize_judgments(records, np.random.default_rng(3))


def test_judge_statistics_with_several_samples_read_back_are_those_of_the_records(tmp_path: Path) -> None:
    """The per-item figures walk the judgments twice: a lazy read-back must give the same summary."""
    records = [record(pref).model_copy(update={"item_id": f"i{k // 2}", "sample_index": k % 2})
               for k, pref in enumerate(["candidate", "tie", "base", "base", "candidate", "candidate"] * 3)]
    run = RunDir.create(tmp_path / "run", manifest())
    started = run.stage_started("judge")
    run.append("judge", records)
    run.stage_done("judge", started, JudgmentRecord)
    read = Judgments.read(run.path / "records" / "judge.parquet")
    summary = summarize_judgments(read, np.random.default_rng(3))
    assert summary == summarize_judgments(records, np.random.default_rng(3))
    assert (summary.items, summary.samples_per_item) == (9, 2.0)
