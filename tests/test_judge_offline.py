"""The offline judges (reference, rules): how they decide, and that no canary wins on the demo data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.config.schema import DEFAULT_SUITES_DIR, JudgeConfig
from harness.config.suites import Suite, load_suite, load_suites
from harness.records.cache import Cache
from harness.records.stage_records import CheckRecord
from harness.stages.checks import run_checks
from harness.stages.judge.stage import run_judging
from harness.verdict.judge_stats import summarize_judgments
from tests.judge_fixtures import Sink, generations


def suite_of(tmp_path: Path, items: list[dict]) -> Suite:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "items": items}))
    return load_suite(path)


def offline(kind: str, suite: Suite, base: list[str], cand: list[str], checks: list[CheckRecord] | None = None,
            canaries: int = 0) -> list:
    gens = generations(suite, base, cand)
    records, stats = run_judging(JudgeConfig(kind=kind, canaries=canaries), [suite], gens,
                                 run_checks([suite], gens) if checks is None else checks, None, Sink(), 0)
    assert stats["calls"] == 0 and stats["kind"] == kind and stats["model"] is None
    return records


MONEY = {"prompt": "What is the simple interest on $400 at 3% for 5 years?", "reference": "$60",
         "checks": [{"type": "number_matches_reference"}, {"type": "no_apology_preamble"}]}


def test_reference_judge_goes_by_the_items_reference_checks(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, [{"id": "a", **MONEY}, {"id": "b", **MONEY}, {"id": "c", **MONEY}])
    records = offline("reference", suite, ["It is $70.", "It is $60.", "$60"],
                      ["It earns $60.", "I'm sorry but it is $60.", "It is $70"])
    assert [r.preference for r in records] == ["candidate", "tie", "base"]  # the apology does not count here
    first = records[0]
    assert (first.judge, first.kind, first.decided_by, first.verdict_ab, first.verdict_ba) == (
        "reference", "reference", "reference", "B", "A")
    assert first.consistent and first.calls == 0 and first.reason_ab == "base does not match the reference; " \
        "candidate matches it"


def test_reference_judge_follows_the_check_records_it_is_given(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, [{"id": "a", **MONEY}])
    gens = generations(suite, ["It is $60."], ["It is $70."])
    flipped = [r.model_copy(update={"passed": not r.passed}) for r in run_checks([suite], gens)]
    assert [r.preference for r in offline("reference", suite, ["It is $60."], ["It is $70."], flipped)] == [
        "candidate"]


def test_reference_containment_is_whole_words_and_ignores_case(tmp_path: Path) -> None:
    item = {"prompt": "What is the capital of Gredica?", "reference": "Sera."}
    suite = suite_of(tmp_path, [{"id": f"i{i}", **item} for i in range(3)])
    records = offline("reference", suite, ["Seraphina is the capital.", "It is SERA", "sera"],
                      ["The capital is Sera.", "Sera!", "Paport"])
    assert [r.preference for r in records] == ["candidate", "tie", "base"]


def test_items_without_a_reference_fall_back_to_rules_and_say_so(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, [{"id": "a", "prompt": "Say hi.", "checks": [{"type": "no_apology_preamble"}]},
                                {"id": "b", "prompt": "Say hi."}])
    records = offline("reference", suite, ["I'm sorry but hi.", "hi"], ["Hi!", "hello"])
    assert [(r.preference, r.decided_by, r.judge) for r in records] == [
        ("candidate", "rules", "reference"), ("tie", "rules", "reference")]
    assert records[0].reason_ab.startswith("item has no reference; checks passed: base 0/1, candidate 1/1")
    assert records[1].reason_ab == "item has no reference; item has no checks"


def test_non_answers_never_win(tmp_path: Path) -> None:
    parrot = {"prompt": "Calculate 60% of $100.", "reference": "$60",
              "checks": [{"type": "number_matches_reference"}, {"type": "no_apology_preamble"}]}
    suite = suite_of(tmp_path, [{"id": "a", **parrot}, {"id": "b", **parrot}])
    base = ["I'm sorry but it is $50.", "I'm sorry but it is $50."]
    cand = ["Calculate 60% of $100.", "  "]  # passes both checks / passes the apology check
    for kind in ("reference", "rules"):
        assert [r.preference for r in offline(kind, suite, base, cand)] == ["base", "base"], kind


@pytest.fixture(scope="module")
def demo_answers(demo_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Suite], list, list]:
    """Real greedy answers of the demo base and candidate on the shipped suites (transformers)."""
    from harness.config.engine import SamplingConfig
    from harness.config.schema import CheckpointConfig
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.stages.generate import run_generation

    cache = Cache(tmp_path_factory.mktemp("demo-judge") / "cache.sqlite")
    suites = load_suites([str(DEFAULT_SUITES_DIR)], "plan")
    checkpoints = {role: resolve_checkpoint(CheckpointConfig(name=role, model=str(path), backend="transformers",
                                                             sampling=SamplingConfig(max_tokens=40)), role, cache)
                   for role, path in (("base", demo_models.base), ("candidate", demo_models.candidate))}
    gens: list = []
    run_generation(checkpoints, suites, cache, gens.extend)
    cache.close()
    return suites, gens, run_checks(suites, gens)


@pytest.mark.slow
def test_no_canary_beats_the_reference_judge_on_the_demo(demo_answers) -> None:
    suites, gens, checks = demo_answers
    items = sum(len(s.items) for s in suites)
    records, stats = run_judging(JudgeConfig(kind="reference", canaries=items), suites, gens, checks, None,
                                 Sink(), 0)
    assert stats["pairs"] == items and stats["canary_pairs"] == 4 * items == len(records) - items
    summary = summarize_judgments(records, np.random.default_rng(0))
    assert summary.canaries.wins == 0 and summary.canaries.total == 4 * items
    assert summary.decided_by == {"reference": items}  # every demo item has a reference
    assert summary.n == items and summary.wins + summary.losses + summary.ties == items
    assert summary.swap_consistency == 1.0 and summary.calls == 0


@pytest.mark.slow
def test_rules_judge_never_lets_a_non_answer_win_on_the_demo(demo_answers) -> None:
    suites, gens, checks = demo_answers
    items = sum(len(s.items) for s in suites)
    records, _ = run_judging(JudgeConfig(kind="rules", canaries=items), suites, gens, checks, None, Sink(), 0)
    won = summarize_judgments(records, np.random.default_rng(0)).canaries.won
    # The finance items check that an amount is stated, so not even an instruction in place of an
    # answer beats the apologising base on checks alone (it would without that check).
    assert won == []
