"""Every statistic of harness.verdict.stats against an independent computation (statsmodels,
scipy, or a hand-built count), plus the edge cases whose results were decided."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

from harness.verdict import resampling, stats


def paired_flags(b: int, c: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Pass/fail arrays with b (base only), c (candidate only) and concordant items."""
    base = np.array([True] * b + [False] * c + [True] * both + [False] * neither)
    cand = np.array([False] * b + [True] * c + [True] * both + [False] * neither)
    return base, cand


# Wilson


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (57, 200), (4999, 10000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(k: int, n: int, confidence: float) -> None:
    got = stats.wilson_interval(k, n, confidence)
    low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert got.estimate == pytest.approx(k / n)
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)
    assert got.n == n


def test_wilson_accepts_a_half_count() -> None:
    got = stats.wilson_interval(7.5, 20)
    assert (got.low, got.high) == pytest.approx(proportion_confint(7.5, 20, method="wilson"), abs=1e-12)


def test_wilson_of_nothing_is_the_unit_interval() -> None:
    got = stats.wilson_interval(0, 0)
    assert math.isnan(got.estimate) and (got.low, got.high, got.n) == (0.0, 1.0, 0)


@pytest.mark.parametrize("k,n,conf", [(5, 4, 0.95), (-1, 4, 0.95), (1, 4, 1.0), (1, 4, 0.0)])
def test_wilson_rejects_impossible_input(k: int, n: int, conf: float) -> None:
    with pytest.raises(ValueError):
        stats.wilson_interval(k, n, conf)


# sign test


@pytest.mark.parametrize("wins,losses,ties", [(30, 20, 0), (12, 3, 5), (0, 9, 1), (50, 50, 10), (1, 0, 0)])
def test_sign_test_matches_binomtest(wins: int, losses: int, ties: int) -> None:
    got = stats.sign_test(wins, losses, ties)
    assert got.p_value == pytest.approx(sps.binomtest(wins, wins + losses, 0.5).pvalue, rel=1e-12)
    assert got.win_rate.estimate == pytest.approx(wins / (wins + losses))
    assert (got.win_rate.low, got.win_rate.high) == pytest.approx(
        proportion_confint(wins, wins + losses, method="wilson"), abs=1e-12)
    total = wins + losses + ties
    assert got.tie_split_rate.estimate == pytest.approx((wins + ties / 2) / total)
    assert got.tie_split_rate.n == total
    # An odd tie goes to the losses: the p-value never flatters the candidate.
    assert got.tie_split_p_value == pytest.approx(sps.binomtest(wins + ties // 2, total, 0.5).pvalue)


def test_sign_test_all_ties() -> None:
    got = stats.sign_test(0, 0, 8)
    assert got.p_value == 1.0 and math.isnan(got.win_rate.estimate)
    assert got.tie_split_rate.estimate == 0.5 and got.tie_split_p_value == pytest.approx(1.0)


def test_sign_test_no_comparisons() -> None:
    got = stats.sign_test(0, 0, 0)
    assert got.p_value == 1.0 and got.tie_split_p_value == 1.0
    assert math.isnan(got.win_rate.estimate) and math.isnan(got.tie_split_rate.estimate)


def test_sign_test_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        stats.sign_test(3, -1)


# McNemar


@pytest.mark.parametrize("b,c,both,neither", [(3, 9, 40, 8), (10, 10, 5, 5), (0, 6, 10, 0), (25, 11, 100, 64)])
def test_mcnemar_matches_statsmodels_and_the_table(b: int, c: int, both: int, neither: int) -> None:
    base, cand = paired_flags(b, c, both, neither)
    perm = np.random.default_rng(1).permutation(len(base))  # order must not matter
    got = stats.mcnemar_exact(base[perm], cand[perm])
    # rows: base pass / fail; columns: candidate pass / fail
    table = np.array([[both, b], [c, neither]])
    assert (got.b, got.c, got.n) == (table[0, 1], table[1, 0], table.sum())
    assert got.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert got.base_rate == pytest.approx(table[0].sum() / table.sum())
    assert got.cand_rate == pytest.approx(table[:, 0].sum() / table.sum())
    assert got.delta == pytest.approx((c - b) / table.sum())


def test_mcnemar_chi_square_agrees_for_large_counts() -> None:
    base, cand = paired_flags(400, 480, 3000, 1000)
    got = stats.mcnemar_exact(base, cand)
    chi2 = sm_mcnemar(np.array([[3000, 400], [480, 1000]]), exact=False, correction=True).pvalue
    assert got.p_value == pytest.approx(chi2, rel=0.05)


def test_mcnemar_mid_p_by_hand() -> None:
    b, c = 2, 9
    m = b + c
    pmf = [math.comb(m, k) / 2**m for k in range(m + 1)]
    exact = 2 * sum(pmf[: b + 1])
    got = stats.mcnemar_exact(*paired_flags(b, c, 20, 20))
    assert got.p_value == pytest.approx(exact)
    assert got.mid_p_value == pytest.approx(exact - pmf[b])
    assert got.mid_p_value < got.p_value


def test_mcnemar_mid_p_is_one_when_balanced() -> None:
    got = stats.mcnemar_exact(*paired_flags(7, 7, 3, 3))
    assert got.p_value == 1.0 and got.mid_p_value == pytest.approx(1.0)


def test_mcnemar_no_discordant_pairs() -> None:
    got = stats.mcnemar_exact(*paired_flags(0, 0, 5, 5))
    assert (got.p_value, got.mid_p_value, got.delta) == (1.0, 1.0, 0.0)


def test_mcnemar_empty() -> None:
    got = stats.mcnemar_exact([], [])
    assert got.n == 0 and got.p_value == 1.0 and math.isnan(got.delta)


def test_mcnemar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="paired"):
        stats.mcnemar_exact([True, False], [True])
    with pytest.raises(ValueError, match="NaN"):
        stats.mcnemar_exact([1.0, math.nan], [1, 0])
    with pytest.raises(ValueError, match="booleans"):
        stats.mcnemar_exact([0.3, 1], [1, 0])


# bootstrap


def test_bootstrap_same_seed_same_interval() -> None:
    rng = np.random.default_rng(0)
    base, cand = rng.normal(size=300), rng.normal(0.1, size=300)
    one = stats.paired_bootstrap(base, cand, np.random.default_rng(42), resamples=2000)
    two = stats.paired_bootstrap(base, cand, np.random.default_rng(42), resamples=2000)
    other = stats.paired_bootstrap(base, cand, np.random.default_rng(43), resamples=2000)
    assert one == two
    assert (other.low, other.high) != (one.low, one.high)
    assert other.low == pytest.approx(one.low, abs=0.03) and other.high == pytest.approx(one.high, abs=0.03)
    assert one.estimate == pytest.approx(np.mean(cand - base)) and one.low < one.estimate < one.high


def test_bootstrap_blocks_do_not_change_the_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several blocks draw the same indices as one block: rng.integers streams row by row.
    rng = np.random.default_rng(5)
    base, cand = rng.normal(size=50), rng.normal(size=50)
    whole = stats.paired_bootstrap(base, cand, np.random.default_rng(9), resamples=1000)
    monkeypatch.setattr(stats, "BOOTSTRAP_BLOCK", 50 * 7)
    blocked = stats.paired_bootstrap(base, cand, np.random.default_rng(9), resamples=1000)
    assert blocked == whole


def test_bootstrap_matches_a_loop() -> None:
    rng = np.random.default_rng(3)
    base, cand = rng.normal(size=40), rng.normal(size=40)
    got = stats.paired_bootstrap(base, cand, np.random.default_rng(11), resamples=500, statistic="median")
    draw, diffs = np.random.default_rng(11), cand - base
    values = [np.median(diffs[draw.integers(0, 40, size=40)]) for _ in range(500)]
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert got.estimate == pytest.approx(np.median(diffs))


def test_bootstrap_coverage_is_nominal() -> None:
    rng = np.random.default_rng(2024)
    true_delta, n, sims, covered = 0.05, 200, 1000, 0
    for _ in range(sims):
        ability = rng.normal(size=n)  # shared item difficulty: the pairing matters
        base = ability + rng.normal(size=n)
        cand = ability + true_delta + rng.normal(size=n)
        ci = stats.paired_bootstrap(base, cand, rng, resamples=2000)
        covered += ci.low <= true_delta <= ci.high
    assert 0.93 <= covered / sims <= 0.97


def test_bootstrap_edge_cases() -> None:
    rng = np.random.default_rng(0)
    empty = stats.paired_bootstrap([], [], rng)
    assert empty.n == 0 and all(math.isnan(v) for v in (empty.estimate, empty.low, empty.high))
    one = stats.paired_bootstrap([1.0], [3.0], rng, resamples=100)
    assert (one.estimate, one.low, one.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="cand contains NaN at index 1"):
        stats.paired_bootstrap([1.0, 2.0], [1.0, math.nan], rng)
    with pytest.raises(ValueError, match="paired"):
        stats.paired_bootstrap([1.0, 2.0], [1.0], rng)
    with pytest.raises(ValueError, match="statistic"):
        stats.paired_bootstrap([1.0], [1.0], rng, statistic="trimmed")  # type: ignore[arg-type]


def _per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the per-item resampling whatever the data (no data set has a billion items per value)."""
    monkeypatch.setattr(stats, "COUNTS_FACTOR", 10**9)


def test_counts_bootstrap_agrees_with_the_item_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pass/fail pairs (differences -1, 0, 1) and judge scores (0, 0.5, 1): few distinct values, so the
    # counts are resampled. Each percentile of the two bootstraps agrees within Monte Carlo error: the
    # q-th percentile of R resamples has standard error sqrt(q (1 - q) / R) / phi(z_q) standard errors
    # of the mean; two independent ones differ by sqrt(2) of that. Allowed: 4 of those, plus one step
    # of the lattice the means lie on. (The median's resamples: test_counts_median_is_numpys_median.)
    base, cand = paired_flags(b=180, c=260, both=1100, neither=460)
    scores = np.repeat([0.0, 0.5, 1.0], [300, 900, 800])
    resamples = 20_000
    for b_arr, c_arr, step in ((base, cand, 1 / 2000), (np.zeros(len(scores)), scores, 0.5 / 2000)):
        diffs = c_arr.astype(float) - b_arr
        se = diffs.std() / math.sqrt(len(diffs))
        assert len(np.unique(diffs)) * stats.COUNTS_FACTOR <= len(diffs)
        for confidence in (0.5, 0.8, 0.95, 0.99):
            q = (1 - confidence) / 2
            mc = math.sqrt(2 * q * (1 - q) / resamples) / sps.norm.pdf(sps.norm.ppf(q)) * se
            counted = stats.paired_bootstrap(b_arr, c_arr, np.random.default_rng(1), resamples, confidence)
            with monkeypatch.context() as m:
                _per_item(m)
                items = stats.paired_bootstrap(b_arr, c_arr, np.random.default_rng(2), resamples, confidence)
            assert counted.estimate == items.estimate
            assert counted.low == pytest.approx(items.low, abs=4 * mc + step)
            assert counted.high == pytest.approx(items.high, abs=4 * mc + step)


def test_resample_counts_is_the_item_bootstrap_in_distribution() -> None:
    # Counts of each kind when n items are drawn with replacement: multinomial means, variances and
    # covariances, and the same distribution of the mean difference (two-sample Kolmogorov-Smirnov).
    counts = np.array([37, 5, 120, 18])
    values = np.array([-1.0, 0.5, 0.0, 1.0])
    n, draws = int(counts.sum()), 20_000
    drawn = stats.resample_counts(counts, np.random.default_rng(3), draws)
    assert drawn.shape == (draws, 4) and (drawn.sum(axis=1) == n).all()
    p = counts / n
    assert drawn.mean(axis=0) == pytest.approx(n * p, abs=4 * np.sqrt(n * p * (1 - p) / draws).max())
    expected_cov = n * (np.diag(p) - np.outer(p, p))
    assert np.cov(drawn.T) == pytest.approx(expected_cov, abs=0.05 * np.abs(expected_cov).max())
    items = np.repeat(values, counts)
    picked = np.random.default_rng(4).integers(0, n, size=(draws, n))
    per_item = items[picked].mean(axis=1)
    assert sps.ks_2samp(drawn @ values / n, per_item).pvalue > 0.001


def test_counts_median_is_numpys_median() -> None:
    rng = np.random.default_rng(6)
    distinct = np.array([-1.0, 0.0, 0.5, 1.0])
    for n in (7, 8, 33, 100):
        drawn = stats.resample_counts([n // 4, n // 4, n // 4, n - 3 * (n // 4)], rng, 200)
        expected = [np.median(np.repeat(distinct, row)) for row in drawn]
        assert resampling.counts_median(distinct, drawn, n).tolist() == expected


def test_the_pass_fail_bootstrap_does_not_grow_with_n() -> None:
    # 10,000 resamples of a million pass/fail pairs: the counts are drawn, not the items (a per-item
    # bootstrap would draw ten billion indices).
    base, cand = paired_flags(b=40_000, c=60_000, both=700_000, neither=200_000)
    ci = stats.paired_bootstrap(base, cand, np.random.default_rng(0))
    assert ci.low < 0.02 < ci.high and ci.n == 1_000_000


# Holm


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.01], [0.5], [0.001, 0.9, 0.04, 0.04, 0.3],
                               [0.6, 0.7, 0.8]])
def test_holm_matches_statsmodels(p: list[float]) -> None:
    assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_holm_is_monotone_and_capped() -> None:
    p = list(np.random.default_rng(4).uniform(size=30))
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert all(np.diff(np.asarray(adjusted)[order]) >= 0)
    assert max(adjusted) <= 1.0 and all(a >= q for a, q in zip(adjusted, p))


def test_holm_edges() -> None:
    assert stats.holm([]) == []
    with pytest.raises(ValueError):
        stats.holm([0.1, math.nan])
    with pytest.raises(ValueError):
        stats.holm([1.2])


# effect sizes


@pytest.mark.parametrize("p1,p2", [(0.6, 0.5), (0.1, 0.3), (1.0, 0.0), (0.42, 0.42)])
def test_cohens_h_matches_statsmodels(p1: float, p2: float) -> None:
    assert stats.cohens_h(p1, p2) == pytest.approx(proportion_effectsize(p1, p2))


def test_paired_cohens_d() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(size=100)
    cand = base + rng.normal(0.3, 1.0, size=100)
    diffs = cand - base
    assert stats.paired_cohens_d(base, cand) == pytest.approx(diffs.mean() / diffs.std(ddof=1))
    assert stats.paired_cohens_d([1, 2, 3], [2, 3, 4]) == math.inf
    assert stats.paired_cohens_d([1, 2, 3], [0, 1, 2]) == -math.inf
    assert math.isnan(stats.paired_cohens_d([1, 2, 3], [1, 2, 3]))
    assert math.isnan(stats.paired_cohens_d([1.0], [2.0]))
    with pytest.raises(ValueError):
        stats.cohens_h(1.2, 0.5)


# minimum detectable effects


def test_mde_solves_connors_equation() -> None:
    n, psi = 500, 0.3
    delta = stats.min_detectable_effect_paired_binary(n, psi)
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    assert delta * math.sqrt(n) == pytest.approx(za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2))


def test_mde_shrinks_like_one_over_root_n() -> None:
    mde = stats.min_detectable_effect_paired_binary
    assert mde(400_000, 0.2) / mde(100_000, 0.2) == pytest.approx(0.5, rel=1e-3)
    assert mde(1000) > mde(1000, 0.2)  # the unknown discordance is taken as the conservative 0.5
    win = stats.min_detectable_win_rate
    assert (win(400_000) - 0.5) / (win(100_000) - 0.5) == pytest.approx(0.5, rel=1e-3)


def test_mde_edges() -> None:
    assert stats.min_detectable_effect_paired_binary(0) == math.inf
    assert stats.min_detectable_effect_paired_binary(100, 0.0) == math.inf
    assert stats.min_detectable_effect_paired_binary(3) == math.inf  # nothing detectable at all
    assert stats.min_detectable_win_rate(0) == math.inf
    assert stats.min_detectable_win_rate(2) == math.inf
    with pytest.raises(ValueError):
        stats.min_detectable_effect_paired_binary(100, 1.5)


def test_mcnemar_rejects_at_the_mde_with_the_stated_power() -> None:
    rng = np.random.default_rng(77)
    n, psi, sims = 500, 0.3, 400
    delta = stats.min_detectable_effect_paired_binary(n, psi)
    probs = [(psi - delta) / 2, (psi + delta) / 2, 1 - psi]  # base only, candidate only, concordant
    rejected = 0
    for _ in range(sims):
        b, c, same = rng.multinomial(n, probs)
        rejected += stats.mcnemar_exact(*paired_flags(b, c, same // 2, same - same // 2)).p_value < 0.05
    assert 0.70 <= rejected / sims <= 0.90


def test_sign_test_rejects_at_the_minimum_win_rate() -> None:
    rng = np.random.default_rng(78)
    n, sims = 300, 400
    wins = rng.binomial(n, stats.min_detectable_win_rate(n), size=sims)
    rejected = sum(stats.sign_test(int(w), n - int(w)).p_value < 0.05 for w in wins)
    assert 0.70 <= rejected / sims <= 0.90


# length-controlled win rate


def simulate_verdicts(rng: np.random.Generator, n: int, intercept: float, slope: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    length_diff = rng.normal(40, 120, size=n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(intercept + slope * length_diff / length_diff.std())))
    return y.astype(float), length_diff


def test_length_controlled_matches_statsmodels_logit() -> None:
    y, d = simulate_verdicts(np.random.default_rng(12), 2000, 0.3, 0.8)
    got = stats.length_controlled_win_rate(y, d)
    fit = sm.Logit(y, sm.add_constant(d / d.std())).fit(disp=0)
    assert (got.intercept, got.length_coef) == pytest.approx(tuple(fit.params), abs=1e-4)
    assert got.win_rate == pytest.approx(1 / (1 + math.exp(-fit.params[0])), abs=1e-6)
    assert got.raw_win_rate == pytest.approx(y.mean())
    assert got.length_sd == pytest.approx(d.std())
    assert not got.separable and got.fallback is None


def test_length_controlled_ties_count_half_like_a_binomial_glm() -> None:
    rng = np.random.default_rng(13)
    y, d = simulate_verdicts(rng, 600, -0.2, 0.5)
    y[rng.uniform(size=600) < 0.2] = 0.5
    got = stats.length_controlled_win_rate(y, d)
    fit = sm.GLM(y, sm.add_constant(d / d.std()), family=sm.families.Binomial()).fit()
    assert (got.intercept, got.length_coef) == pytest.approx(tuple(fit.params), abs=1e-4)


def test_length_controlled_removes_a_length_preference() -> None:
    # The candidate is no better at equal length but writes longer, and the judge likes length.
    y, d = simulate_verdicts(np.random.default_rng(14), 4000, 0.0, 1.0)
    got = stats.length_controlled_win_rate(y, d)
    assert got.raw_win_rate > 0.55 and abs(got.win_rate - 0.5) < 0.03


def test_length_controlled_degenerate_cases() -> None:
    d = [10.0, -5.0, 30.0, 2.0]
    all_wins = stats.length_controlled_win_rate([1, 1, 1, 1], d)
    assert (all_wins.win_rate, all_wins.separable) == (1.0, True) and all_wins.fallback
    all_losses = stats.length_controlled_win_rate([0, 0, 0, 0], d)
    assert (all_losses.win_rate, all_losses.separable) == (0.0, True)
    flat = stats.length_controlled_win_rate([1, 0, 1, 1], [5.0] * 4)
    assert (flat.win_rate, flat.separable) == (0.75, False) and math.isnan(flat.length_coef) and flat.fallback
    longer_wins = stats.length_controlled_win_rate([1, 0, 1, 0], d)
    assert (longer_wins.win_rate, longer_wins.length_coef, longer_wins.separable) == (0.5, math.inf, True)
    shorter_wins = stats.length_controlled_win_rate([0, 1, 0, 0.5], [10.0, -5.0, 30.0, 2.0])
    assert (shorter_wins.length_coef, shorter_wins.separable) == (-math.inf, True)
    ties = stats.length_controlled_win_rate([0.5] * 4, d)
    assert ties.win_rate == pytest.approx(0.5) and ties.length_coef == pytest.approx(0.0, abs=1e-9)
    empty = stats.length_controlled_win_rate([], [])
    assert empty.n == 0 and math.isnan(empty.win_rate)


def test_length_controlled_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="paired"):
        stats.length_controlled_win_rate([1, 0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.length_controlled_win_rate([1, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.length_controlled_win_rate([2, 0], [1.0, 2.0])


def test_verbosity() -> None:
    got = stats.verbosity([100, 200], [150, 330])
    assert (got.n, got.base_mean, got.cand_mean, got.mean_diff, got.ratio) == (2, 150.0, 240.0, 90.0, 1.6)
    assert math.isnan(stats.verbosity([], []).base_mean)
    assert math.isnan(stats.verbosity([0, 0], [5, 5]).ratio)


if __name__ == "__main__":
    # A speed check, not a test: timing assertions are flaky on shared machines.
    rng = np.random.default_rng(0)
    base, cand = rng.normal(size=10_000), rng.normal(size=10_000)
    start = time.perf_counter()
    ci = stats.paired_bootstrap(base, cand, rng, resamples=10_000)
    print(f"10,000 resamples x 10,000 items: {time.perf_counter() - start:.2f} s -> {ci}")


def test_newcombe_paired_interval_by_hand_and_by_coverage() -> None:
    # All n items agree: the interval is +-(z^2 / (n + z^2)), Wilson's distance from a rate of 1.
    z = 1.959963984540054
    got = stats.newcombe_paired_interval([1] * 20, [1] * 20)
    assert got.estimate == 0 and got.high == pytest.approx(z * z / (20 + z * z)) and got.low == -got.high
    # Coverage of the true difference on simulated paired data (both / base only / candidate only / neither).
    rng = np.random.default_rng(11)
    probs, n, hits = [0.55, 0.12, 0.05, 0.28], 150, 0
    truth = probs[2] - probs[1]
    for _ in range(1000):
        cells = rng.choice(4, size=n, p=probs)
        base, cand = np.isin(cells, (0, 1)), np.isin(cells, (0, 2))
        ci = stats.newcombe_paired_interval(base, cand)
        hits += ci.low <= truth <= ci.high
    assert 0.93 <= hits / 1000 <= 0.98
    assert stats.newcombe_paired_interval([], []).low == -1.0
