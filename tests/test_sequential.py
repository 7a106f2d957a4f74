"""The anytime-valid stopping rule (harness/verdict/sequential.py): its error under optional stopping and
its savings by seeded simulation, and its capital process and bounds against a plain loop written here.

Simulated outcomes are iid with P(win) = rate - ties / 2, P(tie) = ties and P(loss) = 1 - rate - ties / 2,
so the win rate (a tie counted half) is exactly `rate`.

Error margins. The rule guarantees that a true rate at or below the threshold ever settles "pass" with
probability at most alpha / 2 (and the mirror for "fail"). Over R runs the count of false settlements is
then at most Binomial(R, alpha / 2) in distribution, and each test allows up to that distribution's
1 - 1e-6 quantile: a rule that keeps its guarantee exceeds it on fewer than one seed in a million, so
the test cannot flake whatever the seed. With R = 2,000 the line is 86 runs (4.3%), below alpha = 5%:
passing also shows the brief's "at most alpha" directly, and a rule whose real error were alpha (twice
its guarantee) would still be caught 95% of the time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from harness.config.schema import GateConfig
from harness.records.stage_records import JudgmentRecord
from harness.verdict import stats
from harness.verdict.gate import Observation, judge_gate
from harness.verdict.judge_stats import summarize_judgments
from harness.verdict.sequential import (
    SequentialRule,
    judging_order,
    log_capital,
    outcome_scores,
    predictable_bets,
)

ALPHA = 0.05
RUNS = 2_000
ITEMS = 1_000
CHUNK = 500
"""Runs simulated at once: 500 x 1,000 outcomes keep the arrays near 50 MB."""


def draw(rng: np.random.Generator, runs: int, n: int, rate: float, ties: float) -> np.ndarray:
    wins = rate - ties / 2
    assert 0 <= wins and wins + ties <= 1
    u = rng.random((runs, n))
    return np.where(u < wins, 1.0, np.where(u < wins + ties, 0.5, 0.0))


def simulate(rule: SequentialRule, rate: float, ties: float, seed: int, runs: int = RUNS,
             n: int = ITEMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outcomes, where each run settled or 0, +1 pass / -1 fail / 0), in chunks of CHUNK runs."""
    rng = np.random.default_rng(seed)
    x = draw(rng, runs, n, rate, ties)
    parts = [rule.settle(x[i:i + CHUNK]) for i in range(0, runs, CHUNK)]
    return x, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def line(runs: int, p: float) -> float:
    """Largest share of runs a rule erring with probability p exceeds once in a million seeds."""
    return float(binom.ppf(1 - 1e-6, runs, p)) / runs


SUPERIORITY = GateConfig(name="judge-prefers-candidate", metric="judge.win_rate", test="superiority",
                         threshold=0.5, min_effect=0.1)
"""The default policy's win-rate gate."""


def bootstrap_ci(x: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean, resampling the n outcomes with replacement. Outcomes are of three
    kinds, so a resample is a multinomial draw of win, tie and loss counts: the harness's paired_bootstrap
    in distribution, fast enough for 2,000 runs."""
    n = len(x)
    wins, ties = int((x == 1.0).sum()), int((x == 0.5).sum())
    counts = rng.multinomial(n, [wins / n, ties / n, 1 - (wins + ties) / n], size=resamples)
    low, high = np.quantile((counts[:, 0] + 0.5 * counts[:, 1]) / n, [0.025, 0.975])
    return float(low), float(high)


def sign_test_p(x: np.ndarray) -> np.ndarray:
    """The gate's sign-test p-value (exact two-sided binomial test of wins against losses, ties dropped) for
    every run (row) at once: under p = 1/2 the distribution is symmetric, so the p-value is twice the
    smaller tail, capped at 1. Checked against stats.sign_test in the clear-comparison test."""
    wins, losses = (x == 1.0).sum(axis=-1), (x == 0.0).sum(axis=-1)
    tail = binom.cdf(np.minimum(wins, losses), wins + losses, 0.5)
    return np.where(wins + losses > 0, np.minimum(1.0, 2 * tail), 1.0)


def full_run_outcomes(x: np.ndarray, rng: np.random.Generator, resamples: int = 1_000) -> list[str]:
    """The default policy's win-rate gate on all outcomes of each run, as the run decides it today: the mean,
    a percentile bootstrap 95% CI over pairs, the sign-test p-value and the minimum detectable win rate,
    through gate.judge_gate."""
    n = x.shape[-1]
    mde = stats.min_detectable_win_rate(n) - 0.5
    return [judge_gate(SUPERIORITY, Observation(None, float(row.mean()), bootstrap_ci(row, rng, resamples), float(p),
                                                mde, n=n))[0] for row, p in zip(x, sign_test_p(x))]


# ---------------------------------------------------------------------------- 1. error under optional stopping
@pytest.mark.parametrize("threshold", [0.5, 0.7])
@pytest.mark.parametrize("offset", [-0.05, 0.0, 0.05])
@pytest.mark.parametrize("ties", [0.0, 0.3])
def test_a_wrong_side_is_rarely_settled_however_often_the_rule_is_checked(threshold: float, offset: float,
                                                                          ties: float) -> None:
    """Checked after every item from the first (min_items 1: the most chances to err), up to 1,000 items.
    A true rate at or below the threshold: false passes within the line; at or above: false fails."""
    rule = SequentialRule(threshold=threshold, alpha=ALPHA, min_items=1, check_every=1)
    _, _, side = simulate(rule, threshold + offset, ties, seed=int(1000 * threshold + 100 * offset + 10 * ties))
    false_pass, false_fail = float((side == 1).mean()), float((side == -1).mean())
    if offset <= 0:
        assert false_pass <= line(RUNS, ALPHA / 2) < ALPHA
    if offset >= 0:
        assert false_fail <= line(RUNS, ALPHA / 2) < ALPHA
    if offset == 0:  # both ways together: the CS misses the truth at some time with probability <= alpha
        assert false_pass + false_fail <= line(RUNS, ALPHA)


def test_random_order_is_what_makes_a_finite_suite_valid() -> None:
    """A suite of 1,000 items whose win rate is exactly 0.5, stored wins first (as a file grouped by topic
    may be). Judged in file order, the rule passes it after 20 items; judged in judging_order's seeded
    random orders, false passes stay within the line, both for the suite's own win rate (population=N)
    and for the population it stands for."""
    suite = np.array([1.0] * 350 + [0.5] * 300 + [0.0] * 350)
    for population in (None, len(suite)):
        rule = SequentialRule(population=population)
        in_file_order = rule.decide(list(suite))
        assert (in_file_order.outcome, in_file_order.n) == ("pass", 20)
        orders = np.stack([suite[judging_order(len(suite), seed)] for seed in range(RUNS)])
        side = np.concatenate([rule.settle(orders[i:i + CHUNK])[1] for i in range(0, RUNS, CHUNK)])
        assert float((side == 1).mean()) <= line(RUNS, ALPHA / 2)
        assert float((side == -1).mean()) <= line(RUNS, ALPHA / 2)


# ---------------------------------------------------------------------------- 2. and 3. savings
def test_a_clear_comparison_settles_pass_early_and_as_the_full_run_would() -> None:
    """True win rate 0.7 with 30% ties, threshold 0.5, 1,000 items, the default rule: at least 99% of runs
    settle "pass" where the full run's gate also passes, on at most half the items on average (measured:
    3.8%, 38 items; bench/sequential_sim.py has the grid)."""
    rule = SequentialRule()
    x, stop, side = simulate(rule, 0.7, 0.3, seed=7)
    rng = np.random.default_rng(8)
    full = full_run_outcomes(x, rng)
    agree = np.mean([(s == 1 and f == "pass" and row.mean() >= 0.5) for s, f, row in zip(side, full, x)])
    used = np.where(stop > 0, stop, ITEMS).mean() / ITEMS
    assert agree >= 0.99
    assert used <= 0.5
    # The shortcuts are the harness's own figures: the same p-values, the same interval to resampling noise.
    for row, p in zip(x[:50], sign_test_p(x[:50])):
        wins, losses = int((row == 1.0).sum()), int((row == 0.0).sum())
        assert p == pytest.approx(stats.sign_test(wins, losses, ITEMS - wins - losses).p_value, rel=1e-9, abs=1e-300)
    close = draw(np.random.default_rng(16), 50, 60, 0.55, 0.3)  # p-values far from 0 as well
    for row, p in zip(close, sign_test_p(close)):
        wins, losses = int((row == 1.0).sum()), int((row == 0.0).sum())
        assert p == pytest.approx(stats.sign_test(wins, losses, 60 - wins - losses).p_value, rel=1e-9)
    theirs = stats.paired_bootstrap(np.zeros(ITEMS), x[0], np.random.default_rng(9), resamples=10_000)
    assert bootstrap_ci(x[0], np.random.default_rng(10), 10_000) == pytest.approx((theirs.low, theirs.high), abs=0.003)


def test_a_close_comparison_mostly_runs_to_the_end() -> None:
    """True win rate 0.51 (threshold 0.5): the CS cannot tell 0.51 from 0.5 in 1,000 items, so most runs
    judge everything and leave the decision to the full-run test (measured: 3.9% settle early, and the
    mean run judges 969 items)."""
    _, stop, side = simulate(SequentialRule(), 0.51, 0.3, seed=11)
    assert float((stop > 0).mean()) <= 0.1
    assert np.where(stop > 0, stop, ITEMS).mean() / ITEMS >= 0.9
    assert float((side == -1).mean()) <= line(RUNS, ALPHA / 2)  # above the threshold: a fail is an error


# ---------------------------------------------------------------------------- 4. the capital and the bounds
def plain_capital(x: list[float], m: float, population: int | None = None) -> tuple[list[float], list[float]]:
    """log K+_t(m), log K-_t(m) step by step, straight from the paper's formulas (no numpy)."""
    c, level = 0.5, math.log(2 / ALPHA)
    total = squares = 0.0
    variance = 0.25  # sigma^2_0
    up = down = 0.0
    ups, downs = [], []
    for t, xt in enumerate(x, start=1):
        bet = math.sqrt(2 * level / (variance * t * math.log(1 + t)))  # uses x_1..x_{t-1} only
        mu = m if population is None else (population * m - total) / (population - t + 1)
        mu = min(max(mu, 0.0), 1.0)
        up += math.log(1 + min(bet, c / mu if mu > 0 else math.inf) * (xt - mu))
        down += math.log(1 - min(bet, c / (1 - mu) if mu < 1 else math.inf) * (xt - mu))
        total += xt
        if population is not None and population * m < total - 1e-9:
            up = math.inf
        if population is not None and population * m > total + population - t + 1e-9:
            down = math.inf
        mean = (0.5 + total) / (t + 1)
        squares += (xt - mean) ** 2
        variance = (0.25 + squares) / (t + 1)
        ups.append(up)
        downs.append(down)
    return ups, downs


@pytest.mark.parametrize("population", [None, 400])
@pytest.mark.parametrize("m", [0.0, 0.1, 0.35, 0.5, 0.62, 0.9, 1.0])
def test_capital_matches_a_plain_loop(m: float, population: int | None) -> None:
    x = list(draw(np.random.default_rng(3), 1, 300, 0.6, 0.3)[0])
    ups, downs = log_capital(x, m, ALPHA, population=population)
    want_up, want_down = plain_capital(x, m, population)
    assert ups.tolist() == pytest.approx(want_up, rel=1e-9, abs=1e-9)
    assert downs.tolist() == pytest.approx(want_down, rel=1e-9, abs=1e-9)


def test_bets_look_only_at_the_past() -> None:
    x = draw(np.random.default_rng(4), 1, 50, 0.6, 0.3)[0]
    changed = x.copy()
    changed[30:] = 1 - changed[30:]
    assert np.array_equal(predictable_bets(x)[:31], predictable_bets(changed)[:31])


@pytest.mark.parametrize("population", [None, 250])
def test_bounds_match_a_grid_search_over_the_plain_capital(population: int | None) -> None:
    """The CS is {m : max(K+, K-) / 2 < 1 / alpha}; on a grid of step 1/1000 its ends bracket the bisection's."""
    x = list(draw(np.random.default_rng(5), 1, 150, 0.62, 0.3)[0])
    step, level = 1 / 1000, math.log(2 / ALPHA)
    capitals = [(i * step, plain_capital(x, i * step, population)) for i in range(1001)]
    inside = [m for m, (ups, downs) in capitals if max(ups[-1], downs[-1]) < level]
    lower, upper = SequentialRule(population=population).bounds(x)
    assert inside[0] - step <= lower <= inside[0]
    assert inside[-1] <= upper <= inside[-1] + step


def test_the_running_mean_lies_within_the_bounds() -> None:
    """Not an identity (the CS centres on a bet-weighted mean, and an order that front-loads wins can leave
    the plain mean outside), but what a random order gives: checked at 12 times on 24 seeded sequences."""
    rule = SequentialRule()
    cases = [(rate, ties) for rate in (0.2, 0.35, 0.5, 0.6, 0.7, 0.85) for ties in (0.0, 0.1, 0.2, 0.4)]
    for seed, (rate, ties) in enumerate(cases):
        x = draw(np.random.default_rng(100 + seed), 1, 2000, rate, min(ties, 2 * rate, 2 - 2 * rate))[0]
        for n in (1, 2, 5, 10, 20, 50, 100, 200, 400, 800, 1500, 2000):
            lower, upper = rule.bounds(x[:n])
            assert lower <= x[:n].mean() <= upper


def test_bounds_shrink_like_sqrt_log_n_over_n() -> None:
    """Width / sqrt(log n / n) stays within a factor of 1.5 from 100 to 10,000 items (it grows slowly, by
    the log log n of the predictable bets), while width * sqrt(n) keeps growing: no faster than 1/sqrt(n)."""
    x = draw(np.random.default_rng(6), 1, 10_000, 0.6, 0.3)[0]
    sizes = [100, 300, 1000, 3000, 10_000]
    widths = [np.subtract(*SequentialRule().bounds(x[:n])[::-1]) for n in sizes]
    scaled = [w / math.sqrt(math.log(n) / n) for w, n in zip(widths, sizes)]
    assert all(a > b for a, b in zip(widths, widths[1:]))
    assert max(scaled) / min(scaled) <= 1.5
    assert all(a * math.sqrt(n) < b * math.sqrt(m) for a, b, n, m in zip(widths, widths[1:], sizes, sizes[1:]))


def test_the_upper_bound_mirrors_the_lower() -> None:
    x = draw(np.random.default_rng(12), 1, 400, 0.58, 0.3)[0]
    for population in (None, 500):
        rule = SequentialRule(population=population)
        lower, upper = rule.bounds(x)
        mirror_lower, mirror_upper = rule.bounds(1 - x)
        assert (mirror_lower, mirror_upper) == pytest.approx((1 - upper, 1 - lower), abs=1e-11)


def test_the_whole_suite_judged_pins_its_own_win_rate() -> None:
    """With population=N the CS is for these N items: after all N it is their mean, within rounding."""
    x = draw(np.random.default_rng(13), 1, 300, 0.6, 0.3)[0]
    lower, upper = SequentialRule(population=300).bounds(x)
    assert lower == pytest.approx(x.mean(), abs=1e-9) and upper == pytest.approx(x.mean(), abs=1e-9)
    # One item short, the last one can still move the mean by at most 1/N either way.
    lower, upper = SequentialRule(population=300).bounds(x[:-1])
    assert x[:-1].sum() / 300 - 1e-9 <= lower <= x.mean() <= upper <= (x[:-1].sum() + 1) / 300 + 1e-9


# ---------------------------------------------------------------------------- the API
def test_decide_settles_where_the_cs_first_clears_the_threshold_and_stays_there() -> None:
    rule = SequentialRule(check_every=5)
    x = list(draw(np.random.default_rng(14), 1, 1000, 0.7, 0.3)[0])
    first = rule.decide(x)
    assert first.settled and first.outcome == "pass" and first.n % 5 == 0 and first.n >= 20
    assert first.lower >= 0.5 and first.lower <= first.win_rate <= first.upper
    assert first.win_rate == pytest.approx(np.mean(x[:first.n]))
    assert (first.lower, first.upper) == pytest.approx(rule.bounds(x[:first.n]), abs=1e-11)
    assert rule.decide(x[:first.n + 37]) == first == rule.decide(x[:first.n])  # more outcomes: the same answer
    before = rule.decide(x[:first.n - 1])
    assert not before.settled and before.outcome is None and before.n == first.n - 1
    stop, side = rule.settle(np.array(x))
    assert (int(stop[0]), int(side[0])) == (first.n, 1)


def test_decide_settles_fail_below_the_threshold() -> None:
    x = list(draw(np.random.default_rng(15), 1, 1000, 0.3, 0.3)[0])
    d = SequentialRule().decide(x)
    assert d.settled and d.outcome == "fail" and d.upper <= 0.5 and d.lower <= d.win_rate <= d.upper


def test_min_items_holds_back_a_decision() -> None:
    wins = [1.0] * 60
    assert SequentialRule(min_items=1).decide(wins).n < 20
    assert SequentialRule(min_items=50).decide(wins).n == 50
    assert not SequentialRule(min_items=61).decide(wins).settled


def test_nothing_judged_decides_nothing() -> None:
    d = SequentialRule().decide([])
    assert (d.settled, d.outcome, d.lower, d.upper, d.n) == (False, None, 0.0, 1.0, 0) and math.isnan(d.win_rate)


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.0}, {"alpha": 0.0}, {"alpha": 1.0},
                                    {"min_items": 0}, {"check_every": 0}, {"population": 0},
                                    {"truncation": 1.0}])
def test_a_rule_that_cannot_work_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SequentialRule(**kwargs)  # type: ignore[arg-type]


def test_impossible_outcomes_are_refused() -> None:
    rule = SequentialRule(population=3)
    for bad in ([0.5, 1.5], [-0.1], [math.nan]):
        with pytest.raises(ValueError):
            rule.decide(bad)
    with pytest.raises(ValueError):
        rule.decide([1.0, 1.0, 1.0, 1.0])  # more outcomes than items


def test_outcomes_are_the_judge_summarys_scores() -> None:
    """The mean of outcome_scores is the win rate summarize_judgments reports (a tie counts half;
    unparsed and failed pairs are left out of both)."""
    prefs = ["candidate"] * 7 + ["base"] * 2 + ["tie"] * 3 + ["unparsed", "failed"]
    records = [JudgmentRecord(judge="pairwise", kind="llm", model="m", decided_by="pairwise", suite="s",
                              item_id=f"i{i}", sample_index=0, canary=None, preference=p,
                              consistent=None if p in ("unparsed", "failed") else True, latency_s=0.1,
                              prompt_tokens=1, completion_tokens=1, calls=2, cached=False, base_words=1,
                              candidate_words=1) for i, p in enumerate(prefs)]
    scores = outcome_scores(prefs)
    assert len(scores) == 12 and sorted(set(scores)) == [0.0, 0.5, 1.0]
    assert np.mean(scores) == pytest.approx(summarize_judgments(records, np.random.default_rng(0)).win_rate)


def test_judging_order_is_a_seeded_permutation() -> None:
    order = judging_order(500, 3)
    assert sorted(order) == list(range(500)) and order != list(range(500))
    assert judging_order(500, 3) == order and judging_order(500, 4) != order
    np.random.seed(0)  # the global state has no say
    assert judging_order(500, 3) == order
    assert judging_order(0, 3) == [] and judging_order(1, 3) == [0]
    with pytest.raises(ValueError):
        judging_order(-1, 0)
