"""Run statistics from records, checked against independent computations:
scipy's binomial test on the discordant pairs of a hand-built 2x2 table, and
plain counting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from harness.config.schema import ForgettingConfig
from harness.records.run_results import RunStats
from harness.records.stage_records import CheckRecord, ForgettingRecord
from harness.verdict.run_stats import apply_holm, forgetting_flag, forgetting_stats, paired_binary, suite_stats


def table(both: int, base_only: int, cand_only: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Paired outcomes from a 2x2 table (rows: base right/wrong, columns: candidate right/wrong)."""
    base = [True] * both + [True] * base_only + [False] * cand_only + [False] * neither
    cand = [True] * both + [False] * base_only + [True] * cand_only + [False] * neither
    return base, cand


def test_paired_binary_matches_a_hand_built_table() -> None:
    base, cand = table(150, 18, 8, 25)
    got = paired_binary(base, cand, np.random.default_rng(0))
    n = 201
    assert got.n == n and (got.base_only, got.candidate_only) == (18, 8)
    assert got.base_rate == pytest.approx(168 / n) and got.candidate_rate == pytest.approx(158 / n)
    assert got.delta == pytest.approx((8 - 18) / n)
    assert got.p_value == pytest.approx(binomtest(8, 26, 0.5).pvalue)
    assert got.base_stderr == pytest.approx(math.sqrt((168 / n) * (1 - 168 / n) / (n - 1)))
    low, high = got.delta_ci
    assert low < got.delta < high
    # The one-sided 95% bound is the two-sided 90% bound: inside the two-sided 95% interval.
    assert low < got.delta_lower_one_sided < got.delta < got.delta_upper_one_sided < high
    assert 0 < got.mde < 1


def test_same_seed_same_interval_and_empty_input_is_decided() -> None:
    base, cand = table(50, 10, 3, 37)
    one = paired_binary(base, cand, np.random.default_rng(7))
    two = paired_binary(base, cand, np.random.default_rng(7))
    assert one == two
    empty = paired_binary([], [], np.random.default_rng(0))
    assert empty.n == 0 and empty.delta is None and empty.delta_ci == (None, None)
    assert empty.p_value == 1.0 and empty.cohens_h is None


def forgetting_records(task: str, base: list[bool], cand: list[bool]) -> list[ForgettingRecord]:
    out = []
    for role, values in (("base", base), ("candidate", cand)):
        out += [ForgettingRecord(role=role, checkpoint=role, task=task, doc_id=i, correct=v, target="a",
                                 prediction="a" if v else "b", prompt="p", cached=False)
                for i, v in enumerate(values)]
    return out


def test_forgetting_stats_pair_by_doc_and_flag_at_the_thresholds() -> None:
    config = ForgettingConfig(warn_drop=0.02, fail_drop=0.05)
    b1, c1 = table(180, 12, 2, 6)     # -5 points: fail
    b2, c2 = table(190, 5, 1, 4)      # -2 points exactly: ok (the threshold is "more than")
    records = forgetting_records("t1", b1, c1) + forgetting_records("t2", b2, c2)
    records.reverse()  # order must not matter: pairs are made by doc_id
    got = forgetting_stats(records, config, seed=0)
    assert got.tasks["t1"].delta == pytest.approx(-0.05) and got.tasks["t2"].delta == pytest.approx(-0.02)
    assert got.tasks["t1"].p_value == pytest.approx(binomtest(2, 14, 0.5).pvalue)
    assert forgetting_flag(-0.0501, config) == "fail" and forgetting_flag(-0.03, config) == "warn"
    assert forgetting_flag(-0.02, config) == "ok" and forgetting_flag(None, config) == "ok"


def test_holm_runs_across_suites_and_tasks_together() -> None:
    checks = []
    for i in range(40):
        checks.append(CheckRecord(role="base", suite="s", item_id=str(i), sample_index=0, check="c",
                                  passed=i < 10, detail=""))
        checks.append(CheckRecord(role="candidate", suite="s", item_id=str(i), sample_index=0, check="c",
                                  passed=i < 30, detail=""))
    b, c = table(100, 9, 1, 90)
    stats = RunStats(seed=0, suites=suite_stats(["s"], checks, 0),
                     forgetting=forgetting_stats(forgetting_records("t", b, c), ForgettingConfig(), 0))
    apply_holm(stats)
    p_suite, p_task = stats.suites["s"].p_value, stats.forgetting.tasks["t"].p_value
    assert p_suite == pytest.approx(binomtest(20, 20, 0.5).pvalue)
    low, high = sorted([p_suite, p_task])
    expected = {p_suite: None, p_task: None}
    expected[low] = min(1.0, 2 * low)
    expected[high] = max(min(1.0, 2 * low), high)
    assert stats.suites["s"].p_holm == pytest.approx(expected[p_suite])
    assert stats.forgetting.tasks["t"].p_holm == pytest.approx(expected[p_task])
