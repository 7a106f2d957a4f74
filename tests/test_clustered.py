"""Several samples per item (sampling.n > 1): the item is the unit (harness/verdict/clustered.py).

By simulation, hand computation and, for one sample per item, equality with today's figures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import expit

from harness.records.stage_records import JudgmentRecord
from harness.verdict import clustered, run_stats, stats
from harness.verdict.judge_stats import summarize_judgments


# ---------------------------------------------------------------------------- the simulation
def test_cluster_intervals_cover_the_truth_where_per_sample_ones_do_not() -> None:
    """200 items, 5 samples per item and side, no true difference. Each item has a latent skill (logit
    normal, SD 1.5) and each side its own item-level deviation from it (SD 1, the same distribution for
    both sides), so samples of one item are correlated and the population difference is exactly 0.
    (With identical item probabilities on both sides the per-sample differences would be uncorrelated
    and the per-sample bootstrap would happen to be right: the model-by-item effect is what clusters.)
    The cluster bootstrap's 95% CI covers 0 in 93-97% of datasets, today's per-sample bootstrap clearly
    less; the permutation test rejects about 5% of the time, today's per-sample McNemar far more."""
    rng = np.random.default_rng(20240611)
    items, samples, datasets = 200, 5, 1000
    covered_item = covered_sample = rejected_item = rejected_sample = 0
    for _ in range(datasets):
        skill = rng.normal(0.0, 1.5, items)
        p_base = expit(skill + rng.normal(0.0, 1.0, items))
        p_cand = expit(skill + rng.normal(0.0, 1.0, items))
        base = rng.random((items, samples)) < p_base[:, None]
        cand = rng.random((items, samples)) < p_cand[:, None]
        boot = clustered.cluster_bootstrap(base.mean(axis=1), cand.mean(axis=1), rng, resamples=1000)
        covered_item += boot.low <= 0 <= boot.high
        per_sample = stats.paired_bootstrap(base.ravel(), cand.ravel(), rng, resamples=1000)
        covered_sample += per_sample.low <= 0 <= per_sample.high
        rejected_item += clustered.sign_flip_p(cand.mean(axis=1) - base.mean(axis=1), rng, 1000) < 0.05
        rejected_sample += stats.mcnemar_exact(base.ravel(), cand.ravel()).p_value < 0.05
    coverage_item, coverage_sample = covered_item / datasets, covered_sample / datasets
    print(f"coverage: cluster {coverage_item:.3f}, per-sample {coverage_sample:.3f}; "
          f"type I: permutation {rejected_item / datasets:.3f}, per-sample McNemar {rejected_sample / datasets:.3f}")
    assert 0.93 <= coverage_item <= 0.97
    assert coverage_sample < 0.90
    assert 0.03 <= rejected_item / datasets <= 0.07
    assert rejected_sample / datasets > 0.09


# ---------------------------------------------------------------------------- by hand
def _clustered_case() -> tuple[list[str], list[bool], list[bool]]:
    """Item a: base 0/2, candidate 2/2 (difference 1); b: 1/2 -> 2/2 (0.5); c: 1/2 -> 2/2 (0.5);
    d: 2/3 -> 2/3 (0)."""
    rows = [("a", 0, 1), ("a", 0, 1), ("b", 0, 1), ("b", 1, 1), ("c", 1, 1), ("c", 0, 1),
            ("d", 1, 1), ("d", 1, 1), ("d", 0, 0)]
    return [r[0] for r in rows], [bool(r[1]) for r in rows], [bool(r[2]) for r in rows]


def test_a_small_clustered_case_matches_a_hand_computation() -> None:
    items, base, cand = _clustered_case()
    r = run_stats.paired_binary_clustered(items, base, cand, np.random.default_rng(0))
    assert (r.n, r.samples_per_item, r.test) == (4, 9 / 4, "cluster_permutation")
    assert r.base_rate == pytest.approx((0 + 0.5 + 0.5 + 2 / 3) / 4)
    assert r.candidate_rate == pytest.approx((1 + 1 + 1 + 2 / 3) / 4)
    assert r.delta == pytest.approx(0.5)
    # Three non-zero differences (1, 0.5, 0.5): of the 2^3 sign patterns only all-plus and all-minus
    # reach |sum| >= 2, so p = 2 / 8.
    assert r.p_value == r.mid_p_value == pytest.approx(0.25)
    assert (r.base_only, r.candidate_only) == (0, 3)
    # The cluster bootstrap is the bootstrap of the item differences, with the same generator.
    diffs = np.array([1.0, 0.5, 0.5, 0.0])
    idx = np.random.default_rng(0).integers(0, 4, size=(10_000, 4))
    low, high = np.quantile(diffs[idx].mean(axis=1), [0.025, 0.975])
    assert r.delta_ci == (pytest.approx(low), pytest.approx(high))
    assert r.base_stderr == pytest.approx(np.std([0, 0.5, 0.5, 2 / 3], ddof=1) / 2)
    assert r.mde == pytest.approx(clustered.normal_mde(float(diffs.std(ddof=1)), 4))


def test_sign_flip_p_matches_scipy_and_the_monte_carlo_path_approximates_it() -> None:
    d = np.random.default_rng(3).normal(0.2, 1.0, 12).round(2)
    d[0] = 0.0
    reference = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                     alternative="two-sided").pvalue
    assert clustered.sign_flip_p(d, np.random.default_rng(0)) == pytest.approx(reference)
    # 22 non-zero differences: beyond EXACT_MAX, so the Monte Carlo path; scipy's Monte Carlo as reference.
    mc = clustered.sign_flip_p(np.tile(d, 2), np.random.default_rng(1), permutations=20_000)
    approx = sps.permutation_test((np.tile(d, 2),), np.mean, permutation_type="samples", n_resamples=50_000,
                                  alternative="two-sided", random_state=2).pvalue
    assert mc == pytest.approx(approx, abs=0.01)
    assert clustered.sign_flip_p([0.0, 0.0], np.random.default_rng(0)) == 1.0


def test_sign_flip_p_by_sizes_agrees_with_flipping_each_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3,000 items with 4 samples a side: differences of a few sizes, so each size's coins are drawn as one
    # binomial. p-values of 20,000 patterns each: within 4 Monte Carlo standard errors of their difference.
    rng = np.random.default_rng(8)
    d = rng.choice([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0], size=3000, p=[0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05])
    d[:40] = 0.75  # a sum about two standard deviations from 0: p near 0.06
    by_sizes = clustered.sign_flip_p(d, np.random.default_rng(1), permutations=20_000)
    monkeypatch.setattr(clustered, "COUNTS_FACTOR", 10**9)
    each = clustered.sign_flip_p(d, np.random.default_rng(2), permutations=20_000)
    assert 0.02 < each < 0.98
    assert by_sizes == pytest.approx(each, abs=4 * np.sqrt(2 * each * (1 - each) / 20_000))


def test_cluster_bootstrap_of_counts_agrees_with_resampling_items(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2,000 items, 4 samples a side: item rates take 5 values, so at most 25 distinct (base, candidate)
    # pairs, whose counts are resampled. Every interval agrees with the per-item resampling within Monte
    # Carlo error (see test_stats.test_counts_bootstrap_agrees_with_the_item_bootstrap).
    rng = np.random.default_rng(9)
    skill = rng.normal(0.0, 1.5, 2000)
    base = rng.binomial(4, expit(skill)) / 4
    cand = rng.binomial(4, expit(skill + 0.2)) / 4
    counted = clustered.cluster_bootstrap(base, cand, np.random.default_rng(1), resamples=20_000)
    monkeypatch.setattr(clustered, "COUNTS_FACTOR", 10**9)
    items = clustered.cluster_bootstrap(base, cand, np.random.default_rng(2), resamples=20_000)
    assert counted.delta == items.delta and counted.n == items.n == 2000

    def tolerance(values: np.ndarray, q: float) -> float:
        se = values.std() / np.sqrt(len(values))
        return 4 * float(np.sqrt(2 * q * (1 - q) / 20_000) / sps.norm.pdf(sps.norm.ppf(q)) * se) + 0.25 / 2000

    pairs = [((counted.low, counted.high), (items.low, items.high), cand - base, 0.025),
             ((counted.lower_one_sided, counted.upper_one_sided), (items.lower_one_sided, items.upper_one_sided),
              cand - base, 0.05),
             (counted.base_ci, items.base_ci, base, 0.025), (counted.cand_ci, items.cand_ci, cand, 0.025)]
    for got, expected, values, q in pairs:
        assert got == pytest.approx(expected, abs=tolerance(values, q))


def test_no_item_moved_does_not_collapse_the_one_sided_bounds() -> None:
    items = [i for i in "abc" for _ in range(5)]
    same = [True] * 15
    r = run_stats.paired_binary_clustered(items, same, same, np.random.default_rng(0))
    assert r.delta == 0 and r.delta_ci == (0.0, 0.0) and r.p_value == 1.0  # the bootstrap collapses
    newcombe = stats.newcombe_paired_interval(same, same, confidence=0.90)
    assert (r.delta_lower_one_sided, r.delta_upper_one_sided) == (newcombe.low, newcombe.high)
    assert newcombe.low < -0.1 and newcombe.high > 0.1


# ---------------------------------------------------------------------------- one sample: today's figures
def test_one_sample_per_item_gives_todays_figures_exactly() -> None:
    rng = np.random.default_rng(5)
    base, cand = list(rng.random(300) < 0.6), list(rng.random(300) < 0.65)
    keys = [(f"i{k}", 0) for k in range(300)]
    today = run_stats.paired_binary(base, cand, np.random.default_rng(9))
    routed = run_stats.paired_by_item(keys, base, cand, np.random.default_rng(9))
    assert routed.model_dump() == today.model_dump()
    assert routed.test == "mcnemar_exact" and routed.samples_per_item is None
    # Sample indices other than 0 with still one per item are one sample per item too.
    shifted = run_stats.paired_by_item([(k, 3) for k, _ in keys], base, cand, np.random.default_rng(9))
    assert shifted.model_dump() == today.model_dump()


def _judgment(item: str, preference: str, sample: int = 0) -> JudgmentRecord:
    return JudgmentRecord(judge="pairwise", kind="llm", model="m", decided_by="pairwise", suite="s",
                          item_id=item, sample_index=sample, canary=None, preference=preference,
                          consistent=True, latency_s=0.1, prompt_tokens=1, completion_tokens=1, calls=2,
                          cached=False, base_words=10, candidate_words=10 + sample)


def test_judge_win_rate_with_several_samples_is_per_item() -> None:
    records = [_judgment("a", "candidate", 0), _judgment("a", "tie", 1), _judgment("b", "base", 0),
               _judgment("b", "base", 1), _judgment("c", "candidate", 0)]
    s = summarize_judgments(records, np.random.default_rng(0))
    assert (s.items, s.samples_per_item) == (3, 5 / 3)
    assert s.win_rate == pytest.approx((0.75 + 0 + 1) / 3)  # a pair-level mean would be 2.5 / 5
    assert s.by_suite["s"].win_rate == pytest.approx(7 / 12)
    rng = np.random.default_rng(0)
    expected = stats.paired_bootstrap(np.zeros(3), np.array([0.75, 0.0, 1.0]), rng, resamples=10_000)
    assert s.win_rate_ci == (pytest.approx(expected.low), pytest.approx(expected.high))
    # Differences from 0.5: 0.25, -0.5, 0.5; every sign pattern reaches |sum| >= 0.25.
    assert s.sign_test_p == s.sign_test_tie_split_p == 1.0
    assert s.decisive_win_rate.estimate == pytest.approx(2 / 3)  # a: 1/1, b: 0/2, c: 1/1
    assert s.min_detectable_win_rate is None  # 3 items detect no win rate: inf, written as null
    assert (s.wins, s.losses, s.ties) == (2, 2, 1)  # counts stay per pair
    assert "permutation" in s.significance_test and "cluster" in s.win_rate_ci_method


def test_judge_with_one_sample_per_item_is_unchanged() -> None:
    records = [_judgment(f"i{k}", p) for k, p in enumerate(["candidate"] * 6 + ["base"] * 3 + ["tie"] * 2)]
    s = summarize_judgments(records, np.random.default_rng(4))
    scores = np.array([1.0] * 6 + [0.0] * 3 + [0.5] * 2)
    expected = stats.paired_bootstrap(np.zeros(11), scores, np.random.default_rng(4), resamples=10_000)
    assert s.win_rate_ci == (expected.low, expected.high) and s.win_rate == scores.mean()
    assert s.sign_test_p == stats.sign_test(6, 3, 2).p_value
    assert s.items is None and s.samples_per_item is None
    assert s.significance_test == "exact sign test over decisive pairs"


def test_item_means_and_cluster_bootstrap_edge_cases() -> None:
    names, means = clustered.item_means(["x", "y", "x"], [1.0, 0.0, 0.0])
    assert names == ["x", "y"] and list(means) == [0.5, 0.0]
    empty = clustered.cluster_bootstrap([], [], np.random.default_rng(0))
    assert empty.n == 0 and np.isnan(empty.delta)
    with pytest.raises(ValueError):
        clustered.cluster_bootstrap([0.5], [0.5, 1.0], np.random.default_rng(0))
    with pytest.raises(ValueError):
        run_stats.paired_binary_clustered(["a"], [True, False], [True, False], np.random.default_rng(0))
