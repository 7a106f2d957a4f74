"""Statistics for comparing a candidate with its base: intervals, paired tests,
bootstrap, multiple-comparison correction, effect sizes, power and length control.

Pure functions: arrays in, frozen dataclasses out. Randomness only through a
numpy Generator the caller seeds, so every number can be reproduced. This is the
only module of the project that imports scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps
from scipy.special import expit

from harness.verdict.resampling import COUNTS_FACTOR, counts_median, resample_counts

BOOTSTRAP_BLOCK = 1_000_000
"""Resampled indices held at once (8 MB of int64): bounds memory whatever n and resamples are."""
SEPARATION_ETA = 30.0
"""A fitted logit beyond this puts a probability within 1e-13 of 0 or 1: the fit is diverging."""


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class SignTest:
    wins: int
    losses: int
    ties: int
    p_value: float
    """Exact two-sided binomial test of wins against losses; ties excluded."""
    win_rate: Interval
    """wins / (wins + losses), Wilson interval over the decisive comparisons."""
    tie_split_rate: Interval
    """(wins + ties / 2) / all comparisons; see sign_test for the interval's approximation."""
    tie_split_p_value: float
    """Exact binomial test with ties dealt out: ties // 2 to wins, the rest to losses."""


@dataclass(frozen=True)
class McNemar:
    n: int
    b: int
    """Base passed, candidate failed."""
    c: int
    """Base failed, candidate passed."""
    p_value: float
    mid_p_value: float
    base_rate: float
    cand_rate: float
    delta: float
    """cand_rate - base_rate."""


@dataclass(frozen=True)
class BootstrapCI:
    estimate: float
    low: float
    high: float
    n: int
    resamples: int
    confidence: float
    statistic: str


@dataclass(frozen=True)
class LengthControlled:
    n: int
    raw_win_rate: float
    win_rate: float
    """Predicted win rate at zero length difference (raw_win_rate when the fit falls back)."""
    intercept: float
    length_coef: float
    """Change in log-odds of a win per standard deviation of length difference."""
    length_sd: float
    """The standard deviation (ddof 0) the length difference was divided by."""
    separable: bool
    fallback: str | None
    """Why win_rate is the raw rate instead of the fitted one; None when the fit stands."""


@dataclass(frozen=True)
class Verbosity:
    n: int
    base_mean: float
    cand_mean: float
    mean_diff: float
    ratio: float
    """cand_mean / base_mean; nan when base_mean is 0."""


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval. n == 0: estimate nan, interval [0, 1] (nothing is known).
    A fractional count (a tie scored as half a success) is accepted and used as is."""
    z = _z(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def binomial_p(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n against one half."""
    return 1.0 if n == 0 else float(sps.binomtest(k, n, 0.5).pvalue)


def sign_test(wins: int, losses: int, ties: int = 0, confidence: float = 0.95) -> SignTest:
    """Pairwise judge verdicts. The sign test drops ties, which favours neither side.
    The tie-split rate scores a tie as half a win; its Wilson interval treats the
    n comparisons as Bernoulli trials, which overstates the variance (a tie's 0.5 varies
    less than a 0/1 outcome), so the interval is conservative. Its p-value rounds the
    half-wins against the candidate (an odd tie goes to losses) so it never flatters.
    No decisive comparison: p = 1.0 and a nan win rate."""
    if min(wins, losses, ties) < 0:
        raise ValueError(f"counts must be non-negative, got {wins}/{losses}/{ties}")
    decisive, total = wins + losses, wins + losses + ties
    return SignTest(wins, losses, ties, binomial_p(wins, decisive),
                    wilson_interval(wins, decisive, confidence),
                    wilson_interval(wins + ties / 2, total, confidence),
                    binomial_p(wins + ties // 2, total))


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    return arr


def _pair(base: ArrayLike, cand: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    b, c = _vector(base, "base"), _vector(cand, "cand")
    if b.shape != c.shape:
        raise ValueError(f"base and cand must be paired item by item: lengths {len(b)} and {len(c)}")
    return b, c


def mcnemar_exact(base_pass: ArrayLike, cand_pass: ArrayLike) -> McNemar:
    """Exact McNemar test: binomial test of c against b + c discordant pairs. The mid-p
    (Fagerland et al. 2013) subtracts the probability of the observed count once, which
    removes most of the exact test's conservatism. No discordant pair: both p-values 1.0."""
    b_arr, c_arr = _pair(base_pass, cand_pass)
    if not np.isin(b_arr, (0, 1)).all() or not np.isin(c_arr, (0, 1)).all():
        raise ValueError("pass/fail arrays must hold only booleans (or 0/1)")
    base, cand = b_arr.astype(bool), c_arr.astype(bool)
    b, c, n = int((base & ~cand).sum()), int((~base & cand).sum()), len(base)
    k, m = min(b, c), b + c
    mid = 1.0 if m == 0 else min(1.0, float(2 * sps.binom.cdf(k, m, 0.5) - sps.binom.pmf(k, m, 0.5)))
    base_rate = float(base.mean()) if n else math.nan
    cand_rate = float(cand.mean()) if n else math.nan
    return McNemar(n, b, c, binomial_p(c, m), mid, base_rate, cand_rate, cand_rate - base_rate)


def paired_bootstrap(base: ArrayLike, cand: ArrayLike, rng: np.random.Generator, resamples: int = 10_000,
                     confidence: float = 0.95, statistic: Literal["mean", "median"] = "mean") -> BootstrapCI:
    """Percentile interval of the statistic of cand - base, resampling items (so pairs stay
    together). When the differences take few distinct values (pass/fail: -1, 0, 1; judge scores: 0,
    0.5, 1), the counts of those values are resampled instead (resample_counts): the same bootstrap,
    in time that does not grow with n. Otherwise indices are drawn in blocks of BOOTSTRAP_BLOCK so
    memory stays bounded; 10,000 resamples of 10,000 distinct values take about half a second.
    n == 0: nan interval."""
    _z(confidence)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    b, c = _pair(base, cand)
    diffs, n = c - b, len(b)
    if n == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, 0, resamples, confidence, statistic)
    reduce = np.mean if statistic == "mean" else np.median
    distinct, counts = np.unique(diffs, return_counts=True)
    if len(distinct) * COUNTS_FACTOR <= n:
        drawn = resample_counts(counts, rng, resamples)
        values = drawn @ distinct / n if statistic == "mean" else counts_median(distinct, drawn, n)
    else:
        values = np.empty(resamples)
        rows = max(1, BOOTSTRAP_BLOCK // n)
        for start in range(0, resamples, rows):
            stop = min(start + rows, resamples)
            idx = rng.integers(0, n, size=(stop - start, n))
            values[start:stop] = reduce(np.take(diffs, idx), axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(float(reduce(diffs)), float(low), float(high), n, resamples, confidence, statistic)


def newcombe_paired_interval(base_pass: ArrayLike, cand_pass: ArrayLike,
                             confidence: float = 0.95) -> Interval:
    """Newcombe's (1998, method 10) hybrid score interval for the paired difference cand - base of two
    pass rates: Wilson intervals of each rate, combined through the phi correlation of the 2x2 table.
    Unlike a percentile bootstrap it does not collapse to a point when no item changed (20 items that
    all agree give [-0.16, 0.16], not [0, 0]), so a small sample cannot look certain. n == 0: nan, [-1, 1]."""
    b_arr, c_arr = _pair(base_pass, cand_pass)
    if not np.isin(b_arr, (0, 1)).all() or not np.isin(c_arr, (0, 1)).all():
        raise ValueError("pass/fail arrays must hold only booleans (or 0/1)")
    base, cand = b_arr.astype(bool), c_arr.astype(bool)
    n = len(base)
    if n == 0:
        return Interval(math.nan, -1.0, 1.0, 0)
    both, base_only = int((base & cand).sum()), int((base & ~cand).sum())
    cand_only, neither = int((~base & cand).sum()), int((~base & ~cand).sum())
    p1, p2 = (both + base_only) / n, (both + cand_only) / n
    w1, w2 = wilson_interval(both + base_only, n, confidence), wilson_interval(both + cand_only, n, confidence)
    denominator = (both + base_only) * (cand_only + neither) * (both + cand_only) * (base_only + neither)
    # phi is taken as 0 when a margin of the table is empty (Newcombe's convention).
    phi = 0.0 if denominator == 0 else (both * neither - base_only * cand_only) / math.sqrt(denominator)
    delta = p2 - p1
    low = delta - math.sqrt(max(0.0, (p2 - w2.low) ** 2 - 2 * phi * (p2 - w2.low) * (w1.high - p1)
                                + (w1.high - p1) ** 2))
    high = delta + math.sqrt(max(0.0, (w2.high - p2) ** 2 - 2 * phi * (w2.high - p2) * (p1 - w1.low)
                                 + (p1 - w1.low) ** 2))
    return Interval(delta, max(-1.0, low), min(1.0, high), n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values in the input's order: the i-th smallest is scaled
    by (m - i), then a running maximum keeps them monotone, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    adjusted = np.empty_like(p)
    adjusted[order] = scaled
    return [float(v) for v in adjusted]


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)); pass (candidate, base) so that a
    better candidate is positive. 0.2 / 0.5 / 0.8 read as small / medium / large."""
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"proportions must lie in [0, 1], got {p1} and {p2}")
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def paired_cohens_d(base: ArrayLike, cand: ArrayLike) -> float:
    """Mean of cand - base over their standard deviation (ddof 1), Cohen's d_z. Fewer than
    two items: nan. Zero spread: ±inf when every item moved by the same non-zero amount,
    nan when nothing moved (0/0 has no size)."""
    b, c = _pair(base, cand)
    if len(b) < 2:
        return math.nan
    diffs = c - b
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0:
        return math.nan if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


def _connor_delta(n: int, discordant: float, alpha: float, power: float) -> float:
    """Solve Connor's (1987) McNemar sample-size equation for the difference:
    delta * sqrt(n) = z_a * sqrt(psi) + z_b * sqrt(psi - delta^2). Squaring gives a quadratic
    in delta whose larger root is [A sqrt(n) + z_b sqrt(psi (n + z_b^2) - A^2)] / (n + z_b^2)
    with A = z_a sqrt(psi). A difference can never exceed psi; if it would, none is detectable."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    if n < 0 or not 0 <= discordant <= 1:
        raise ValueError(f"need n >= 0 and a discordant rate in [0, 1], got {n} and {discordant}")
    if n == 0 or discordant == 0:
        return math.inf
    za, zb = float(sps.norm.ppf(1 - alpha / 2)), float(sps.norm.ppf(power))
    a, m = za * math.sqrt(discordant), n + zb * zb
    disc = discordant * m - a * a
    delta = (a * math.sqrt(n) + zb * math.sqrt(max(disc, 0.0))) / m
    return delta if disc >= 0 and delta <= discordant else math.inf


def min_detectable_effect_paired_binary(n: int, discordant_rate: float | None = None,
                                        alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest pass-rate difference a two-sided McNemar test on n paired items detects
    with the given power (normal approximation, Connor 1987). discordant_rate is the
    expected share of items where exactly one side passes; unknown, it is taken as 0.5,
    the most two independent outcomes at equal pass rates produce (2p(1 - p) <= 0.5).
    A candidate tuned from its base agrees with it more, so 0.5 overstates the MDE.
    n == 0 (or nothing detectable): inf."""
    return _connor_delta(n, 0.5 if discordant_rate is None else discordant_rate, alpha, power)


def min_detectable_win_rate(n_decisive: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest win rate w > 0.5 a two-sided sign test on n_decisive non-tied verdicts
    detects with the given power (normal approximation):
    (w - 0.5) sqrt(n) = z_a / 2 + z_b sqrt(w (1 - w)). That is McNemar's equation with
    every pair discordant and delta = 2w - 1, so it shares its solver. n == 0: inf."""
    return 0.5 + _connor_delta(n_decisive, 1.0, alpha, power) / 2


def _separated(y: np.ndarray, z: np.ndarray) -> int:
    """+1 / -1 when wins lie only at longer / shorter length differences than losses (a tie
    counts as both), where the maximum-likelihood fit does not exist; 0 otherwise."""
    win, loss = z[y > 0], z[y < 1]
    if loss.max() <= win.min():
        return 1
    return -1 if win.max() <= loss.min() else 0


def _logistic(y: np.ndarray, z: np.ndarray, max_iter: int = 100) -> np.ndarray | None:
    """Newton-Raphson for intercept and slope; None if it does not converge to finite logits."""
    x = np.column_stack([np.ones_like(z), z])
    beta = np.zeros(2)
    for _ in range(max_iter):
        p = expit(x @ beta)
        hessian = x.T @ (x * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(hessian, x.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            return beta if np.abs(x @ beta).max() < SEPARATION_ETA else None
    return None


def length_controlled_win_rate(verdicts: ArrayLike, length_diff: ArrayLike) -> LengthControlled:
    """Win rate with the judge's length preference regressed out. verdicts: 1 candidate
    wins, 0 base wins, 0.5 tie (half a win and half a loss in the likelihood, as ties count
    in the raw rate). length_diff: candidate length minus base length, divided by its
    standard deviation, so the coefficient is per SD; it is not centred, because the
    question is the win rate at zero length difference: expit(intercept).
    Fallbacks to the raw rate: no item (all nan); only wins or only losses; no variance
    in length difference; wins and losses separated by length (separable=True, the
    coefficient ±inf in the direction of the separation)."""
    y, d = _vector(verdicts, "verdicts"), _vector(length_diff, "length_diff")
    if y.shape != d.shape:
        raise ValueError(f"verdicts and length_diff must be paired: lengths {len(y)} and {len(d)}")
    if ((y < 0) | (y > 1)).any():
        raise ValueError("verdicts must lie in [0, 1] (1 candidate wins, 0 base wins, 0.5 tie)")
    n = len(y)
    nan = math.nan
    if n == 0:
        return LengthControlled(0, nan, nan, nan, nan, nan, False, "no verdicts")
    raw, sd = float(y.mean()), float(d.std())

    def fallback(reason: str, coef: float = nan, separable: bool = False) -> LengthControlled:
        return LengthControlled(n, raw, raw, nan, coef, sd, separable, reason)

    if not (y > 0).any() or not (y < 1).any():
        return fallback("only wins or only losses: the logistic fit does not exist", separable=True)
    if sd == 0:
        return fallback("no variance in length difference: its effect cannot be estimated")
    z = d / sd
    direction = _separated(y, z)
    beta = None if direction else _logistic(y, z)
    if beta is None:
        return fallback("wins and losses separated by length: the logistic fit does not exist",
                        math.copysign(math.inf, direction) if direction else nan, True)
    return LengthControlled(n, raw, float(expit(beta[0])), float(beta[0]), float(beta[1]), sd, False, None)


def verbosity(base_lengths: ArrayLike, cand_lengths: ArrayLike) -> Verbosity:
    """Mean answer length of each side over paired items; n == 0 gives nan means."""
    b, c = _pair(base_lengths, cand_lengths)
    if len(b) == 0:
        return Verbosity(0, math.nan, math.nan, math.nan, math.nan)
    base_mean, cand_mean = float(b.mean()), float(c.mean())
    return Verbosity(len(b), base_mean, cand_mean, cand_mean - base_mean,
                     cand_mean / base_mean if base_mean else math.nan)
