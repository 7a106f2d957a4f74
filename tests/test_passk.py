"""pass@k and majority vote over several samples per item (harness/verdict/passk.py), their paired
differences (run_stats.sampled_stats), the plan checks, the gates that read them and the summary table."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.config.schema import GateConfig, PlanConfig
from harness.config.suites import Suite, SuiteItem
from harness.errors import ConfigError
from harness.records.run_results import RunStats
from harness.records.stage_records import CheckRecord
from harness.render.run_summary import sampled_lines
from harness.verdict import gate as gates_module
from harness.verdict import run_stats
from harness.verdict.passk import check_sampled_plan, majority_right, pass_at_k


# ---------------------------------------------------------------------------- the estimator
def test_pass_at_k_by_hand() -> None:
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the pass rate
    assert pass_at_k(4, 0, 3) == 0.0 and pass_at_k(4, 2, 3) == 1.0 and pass_at_k(4, 4, 4) == 1.0


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_the_closed_form_and_enumeration(n: int) -> None:
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            closed = 1 - math.comb(n - c, k) / math.comb(n, k)
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5)
    assert 0 < pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_majority_vote_by_hand() -> None:
    assert majority_right(3, 2) and not majority_right(3, 1)
    assert not majority_right(4, 2), "a tie counts as wrong"
    assert majority_right(4, 3) and majority_right(1, 1) and not majority_right(5, 0)


# ---------------------------------------------------------------------------- the paired figures
def _records(outcomes: dict[str, dict[str, list[bool]]], suite: str = "s", check: str = "equals_reference",
             extra: dict[str, dict[str, list[bool]]] | None = None) -> list[CheckRecord]:
    """outcomes[role][item] = each sample's check result; extra: a second, non-reference check."""
    out = []
    for role, items in outcomes.items():
        for item, samples in items.items():
            for i, ok in enumerate(samples):
                out.append(CheckRecord(role=role, suite=suite, item_id=item, sample_index=i, check=check,  # type: ignore[arg-type]
                                       passed=ok, detail=""))
                if extra is not None:
                    out.append(CheckRecord(role=role, suite=suite, item_id=item, sample_index=i,  # type: ignore[arg-type]
                                           check="max_words", passed=extra[role][item][i], detail=""))
    return out


OUTCOMES = {"base": {"a": [True, False, False, False], "b": [False, False, False, False],
                     "c": [True, True, True, False]},
            "candidate": {"a": [True, True, True, False], "b": [True, False, False, False],
                          "c": [True, True, True, True]}}


def test_sampled_stats_by_hand() -> None:
    found = run_stats.sampled_stats(["s"], _records(OUTCOMES), [1, 2], True, seed=0)
    assert found is not None
    s = found["s"]
    assert s.samples_per_item == 4
    one, two = s.pass_at_k["1"], s.pass_at_k["2"]
    assert one.n == 3 and one.base == pytest.approx(4 / 12) and one.candidate == pytest.approx(8 / 12)
    base2 = [pass_at_k(4, c, 2) for c in (1, 0, 3)]
    cand2 = [pass_at_k(4, c, 2) for c in (3, 1, 4)]
    assert two.base == pytest.approx(np.mean(base2)) and two.delta == pytest.approx(np.mean(cand2) - np.mean(base2))
    vote = s.majority_vote
    assert vote is not None and (vote.base, vote.candidate) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    # three items all moved up: the exact sign-flip p is 2 / 2^3; the vote moved one item: p = 1
    assert one.p_value == pytest.approx(0.25) and vote.p_value == pytest.approx(1.0)
    low, high = one.delta_ci
    assert low is not None and high is not None and low <= one.delta <= high  # type: ignore[operator]


def test_majority_vote_reads_only_reference_checks() -> None:
    style = {r: {i: [False] * 4 for i in items} for r, items in OUTCOMES.items()}
    found = run_stats.sampled_stats(["s"], _records(OUTCOMES, extra=style), [1], True, seed=0)
    assert found is not None
    assert found["s"].pass_at_k["1"].base == 0.0, "pass@k needs every check"
    assert found["s"].majority_vote is not None and found["s"].majority_vote.base == pytest.approx(1 / 3)


def test_paired_delta_on_a_clustered_set() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(40)
    cand = np.clip(base + 0.2 + rng.normal(0, 0.1, 40), 0, 1)
    d = run_stats.paired_delta(list(base), list(cand), run_stats.subject_rng(0, "x"))
    assert d.n == 40 and d.delta == pytest.approx(float((cand - base).mean()))
    low, high = d.delta_ci
    assert low is not None and high is not None and 0 < low < d.delta < high  # type: ignore[operator]
    assert d.delta_lower_one_sided is not None and low <= d.delta_lower_one_sided
    assert d.p_value is not None and d.p_value < 0.001 and d.mde is not None


def test_unchanged_items_do_not_prove_no_drop() -> None:
    d = run_stats.paired_delta([0.5] * 3, [0.5] * 3, run_stats.subject_rng(0, "x"))
    assert d.delta == 0 and d.delta_lower_one_sided == pytest.approx(-(1 - 0.05 ** (1 / 3)))


def test_one_sample_runs_have_no_sampled_stats() -> None:
    single = {r: {i: v[:1] for i, v in items.items()} for r, items in OUTCOMES.items()}
    assert run_stats.sampled_stats(["s"], _records(single), [1], True, seed=0) is None
    assert run_stats.sampled_stats(["s"], _records(OUTCOMES), [], False, seed=0) is None
    assert RunStats(seed=0, suites={}).model_dump()["sampled"] is None


def test_holm_covers_the_sampled_figures() -> None:
    stats = RunStats(seed=0, suites={}, sampled=run_stats.sampled_stats(["s"], _records(OUTCOMES), [1, 2], False, 0))
    run_stats.apply_holm(stats)
    assert stats.sampled is not None
    assert all(d.p_holm is not None and d.p_value is not None and d.p_holm >= d.p_value
               for d in stats.sampled["s"].pass_at_k.values())


# ---------------------------------------------------------------------------- the plan
def _suite(reference: str | None = "4", checks: list[dict[str, Any]] | None = None) -> Suite:
    item = SuiteItem.model_validate({"id": "i1", "prompt": "2+2?", "reference": reference,
                                     "checks": checks if checks is not None else [{"type": "equals_reference"}]})
    return Suite("math", Path("math.yaml"), "", (item,), (), "0")


@pytest.mark.parametrize("plan, n_base, n_cand, suite, field, words", [
    ({"pass_at_k": [1, 8]}, 8, 4, _suite(), "plan.pass_at_k",
     "k = 8 needs at least 8 samples per item; sampling.n is 4 for the candidate"),
    ({"majority_vote": True}, 1, 4, _suite(), "plan.majority_vote", "sampling.n is 1 for the base"),
    ({"majority_vote": True}, 4, 4, _suite(checks=[{"type": "max_words", "limit": 3}]), "plan.majority_vote",
     "no check that compares to a reference"),
    ({"majority_vote": True}, 4, 4, _suite(reference=None), "plan.majority_vote", "has no reference"),
])
def test_plan_checks_are_one_line_naming_the_field(plan: dict[str, Any], n_base: int, n_cand: int, suite: Suite,
                                                   field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_sampled_plan(PlanConfig.model_validate(plan), n_base, n_cand, [suite], "cand.yaml")
    assert info.value.field == field and words in str(info.value) and "\n" not in str(info.value)


def test_plan_accepts_meaningful_settings_and_refuses_repeated_k() -> None:
    check_sampled_plan(PlanConfig(pass_at_k=[1, 4], majority_vote=True), 4, 5, [_suite()], None)
    check_sampled_plan(PlanConfig(), 1, 1, [_suite(reference=None)], None)
    with pytest.raises(ValueError, match="more than once"):
        PlanConfig.model_validate({"pass_at_k": [2, 2]})
    with pytest.raises(ValueError):
        PlanConfig.model_validate({"pass_at_k": [0]})
    assert "pass_at_k" not in PlanConfig().model_dump(), "an unused setting leaves the inputs hash as it was"


# ---------------------------------------------------------------------------- gates and summary
def _stats() -> RunStats:
    stats = RunStats(seed=0, suites={}, sampled=run_stats.sampled_stats(["s"], _records(OUTCOMES), [1, 2], True, 0))
    return run_stats.apply_holm(stats)


def test_gate_observation_paths() -> None:
    stats = _stats()
    found = gates_module.observations("suite.pass_at_k_delta", stats, {})
    assert [o.subject for o in found] == ["s@k1", "s@k2"] and all(o.value is not None and o.ci for o in found)
    vote = gates_module.observations("suite.majority_vote_delta", stats, {})
    assert [o.subject for o in vote] == ["s"] and vote[0].lower_one_sided is not None
    for metric in ("suite.pass_at_k_delta", "suite.majority_vote_delta"):
        for spec in ({"test": "superiority", "threshold": 0.0}, {"test": "non_inferiority", "margin": 0.05}):
            g = GateConfig.model_validate({"name": "g", "metric": metric, **spec})
            assert all(r.outcome in ("pass", "fail", "inconclusive") for r in gates_module.evaluate_gate(g, stats, {}))
    missing = GateConfig.model_validate({"name": "g", "metric": "suite.pass_at_k_delta", "test": "superiority",
                                         "threshold": 0.0})
    result = gates_module.evaluate_gate(missing, RunStats(seed=0, suites={}), {})
    assert result[0].outcome == "inconclusive" and "plan.pass_at_k" in result[0].reason


def test_summary_shows_a_sampled_table_only_when_present() -> None:
    assert sampled_lines(None, "b", "c") == []
    lines = sampled_lines(_stats().sampled, "b", "c")
    assert "## Sampled" in lines
    assert any(line.startswith("| s | pass@2 | 3 |") for line in lines)
    assert any(line.startswith("| s | majority vote | 3 | 33.3% | 66.7% | +33.3 pts |") for line in lines)
