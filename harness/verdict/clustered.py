"""Statistics when each item was answered several times (sampling.n > 1): the item is the unit.

Samples of one prompt share the item's difficulty, so they are correlated; counting n x items
pairs as independent makes p-values too small and intervals too narrow. Here every figure is
taken over items: each item's samples are first reduced to its rate (mean of 0/1 outcomes, or
mean judge score), and the estimate is the mean over items of those rates (each item weighs the
same, however many of its samples survived pairing).

- Intervals: a cluster bootstrap, resampling items with replacement together with all their
  samples. The statistic is a mean of item rates, so resampling items and recomputing it is the
  same as resampling the item rates themselves; that is what cluster_bootstrap does (resampling the
  counts of each distinct pair of item rates when there are few: with m samples per item the rates
  take m + 1 values, and a multinomial draw of the pairs' counts is the same bootstrap).
- Tests: an exact (or Monte Carlo) paired sign-flip permutation test on the per-item differences.
  Under "no difference" each item's two sides are exchangeable, so the sign of its difference is
  a fair coin; the statistic is the mean difference, the very estimand that is reported. When
  the differences take few distinct sizes, the coins of each size are drawn as one binomial.
  Wilcoxon's signed-rank test was not chosen: it tests a shift of the median, ranks away the
  size of each item's difference, and drops items whose difference is zero.

Pure numpy; randomness only through the caller's Generator. tests/test_clustered.py shows by
simulation that these intervals cover the truth at the nominal rate where per-sample ones do not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from harness.verdict.resampling import COUNTS_FACTOR, resample_counts
from harness.verdict.stats import BOOTSTRAP_BLOCK

EXACT_MAX = 16
"""Up to this many non-zero item differences the sign-flip test enumerates all 2^k sign patterns."""
PERMUTATIONS = 10_000
"""Random sign patterns of the Monte Carlo test beyond EXACT_MAX."""


@dataclass(frozen=True)
class ClusterBootstrap:
    n: int
    """Items."""
    resamples: int
    confidence: float
    delta: float
    """Mean over items of cand_rate - base_rate."""
    low: float
    high: float
    """Two-sided percentile interval of delta."""
    lower_one_sided: float
    upper_one_sided: float
    """One-sided bounds at the same confidence (the 1 - confidence and confidence percentiles)."""
    base_ci: tuple[float, float]
    cand_ci: tuple[float, float]
    """Two-sided percentile intervals of each side's mean item rate, from the same resamples."""


def item_means(groups: Sequence[Hashable], values: ArrayLike) -> tuple[list[Hashable], np.ndarray]:
    """Each group's mean value, groups in first-appearance order."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) != len(groups):
        raise ValueError(f"need one value per group label, got {len(groups)} labels and shape {arr.shape}")
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
    sums = np.bincount(codes, weights=arr, minlength=len(index)) if len(arr) else np.zeros(0)
    counts = np.bincount(codes, minlength=len(index)) if len(arr) else np.zeros(0)
    return list(index), sums / np.maximum(counts, 1)


def cluster_bootstrap(base_rates: ArrayLike, cand_rates: ArrayLike, rng: np.random.Generator,
                      resamples: int = 10_000, confidence: float = 0.95) -> ClusterBootstrap:
    """Percentile cluster bootstrap over items of both sides' mean rates and their difference. With few
    distinct (base, cand) pairs of rates their counts are resampled (stats.resample_counts); otherwise
    indices are drawn in blocks of BOOTSTRAP_BLOCK, so memory stays bounded. n == 0: nan."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    b, c = np.asarray(base_rates, dtype=float), np.asarray(cand_rates, dtype=float)
    if b.ndim != 1 or b.shape != c.shape:
        raise ValueError(f"base and cand rates must be paired item by item: shapes {b.shape} and {c.shape}")
    n, nan = len(b), math.nan
    if n == 0:
        return ClusterBootstrap(0, resamples, confidence, nan, nan, nan, nan, nan, (nan, nan), (nan, nan))
    diffs = c - b
    pairs, counts = np.unique(np.column_stack([b, c]), axis=0, return_counts=True)
    if len(pairs) * COUNTS_FACTOR <= n:  # few distinct (base, cand) rate pairs: resample their counts
        drawn = resample_counts(counts, rng, resamples)
        boot = np.stack([drawn @ (pairs[:, 1] - pairs[:, 0]), drawn @ pairs[:, 0], drawn @ pairs[:, 1]]) / n
    else:
        boot = np.empty((3, resamples))
        rows = max(1, BOOTSTRAP_BLOCK // n)
        for start in range(0, resamples, rows):
            stop = min(start + rows, resamples)
            idx = rng.integers(0, n, size=(stop - start, n))
            boot[0, start:stop] = np.take(diffs, idx).mean(axis=1)
            boot[1, start:stop] = np.take(b, idx).mean(axis=1)
            boot[2, start:stop] = np.take(c, idx).mean(axis=1)
    alpha = 1 - confidence
    low, high, one_low, one_high = np.quantile(boot[0], [alpha / 2, 1 - alpha / 2, alpha, 1 - alpha])
    b_low, b_high = np.quantile(boot[1], [alpha / 2, 1 - alpha / 2])
    c_low, c_high = np.quantile(boot[2], [alpha / 2, 1 - alpha / 2])
    return ClusterBootstrap(n, resamples, confidence, float(diffs.mean()), float(low), float(high),
                            float(one_low), float(one_high), (float(b_low), float(b_high)),
                            (float(c_low), float(c_high)))


def sign_flip_p(diffs: ArrayLike, rng: np.random.Generator, permutations: int = PERMUTATIONS) -> float:
    """Two-sided paired permutation test of mean(diffs) == 0: the share of sign patterns whose
    |sum| is at least the observed one. Zero differences cannot change sign and drop out of the
    count without changing the statistic. Up to EXACT_MAX non-zero differences every pattern is
    enumerated (exact p, no randomness used); beyond, `permutations` random patterns from the
    caller's Generator, with p = (1 + hits) / (1 + permutations), which is never 0. No item: 1.0."""
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    k = len(d)
    if k == 0:
        return 1.0
    observed = abs(float(d.sum()))
    tolerance = 1e-9 * max(1.0, observed)
    if k <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
        return float((np.abs(signs @ d) >= observed - tolerance).mean())
    if permutations < 1:
        raise ValueError(f"permutations must be positive, got {permutations}")
    sizes, tally = np.unique(np.abs(d), return_counts=True)
    if len(sizes) * COUNTS_FACTOR <= k:
        # The m differences of one size |v| flipped at random sum to |v| (2 B - m), B ~ Binomial(m, 1/2):
        # the same statistic in distribution, one draw per size instead of one per difference.
        heads = rng.binomial(tally, 0.5, size=(permutations, len(sizes)))
        hits = int((np.abs((2 * heads - tally) @ sizes) >= observed - tolerance).sum())
        return (1 + hits) / (1 + permutations)
    hits = 0
    rows = max(1, BOOTSTRAP_BLOCK // k)
    for start in range(0, permutations, rows):
        stop = min(start + rows, permutations)
        signs = rng.integers(0, 2, size=(stop - start, k)) * 2.0 - 1.0
        hits += int((np.abs(signs @ d) >= observed - tolerance).sum())
    return (1 + hits) / (1 + permutations)


def normal_mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean difference a two-sided test on n item differences of standard deviation sd
    detects with the given power, normal approximation: (z_{1-alpha/2} + z_power) sd / sqrt(n)."""
    from statistics import NormalDist

    if n < 1 or not math.isfinite(sd):
        return math.inf
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * sd / math.sqrt(n)
