"""Bootstrap resampling by counts: when n items fall into a few kinds (pass/fail differences, judge
scores, pairs of per-item rates), a resample is a multinomial draw of the kinds' counts, not n
indices, so its cost does not grow with n. stats.paired_bootstrap and clustered.py use it."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

COUNTS_FACTOR = 16
"""A bootstrap resamples the counts of the distinct values, not the items, when there are at least this
many items per distinct value: a multinomial draw costs about as much as 16 item draws (see resample_counts)."""


def resample_counts(counts: ArrayLike, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap resamples of n = sum(counts) items that fall into len(counts) kinds (distinct values,
    or distinct pairs of values), as the count of each kind per resample: shape (resamples, kinds).

    Drawing n items with replacement and counting each kind is a multinomial draw of n with the
    kinds' shares as probabilities, so any statistic that depends on the items only through these
    counts (a mean, a median, a rate) has exactly the per-item bootstrap's distribution; the draws
    cost resamples x kinds binomials instead of resamples x n indices."""
    tally = np.asarray(counts, dtype=np.int64)
    n = int(tally.sum())
    return rng.multinomial(n, tally / n, size=resamples)


def counts_median(distinct: np.ndarray, drawn: np.ndarray, n: int) -> np.ndarray:
    """Each resample's median from its counts of the sorted distinct values (np.median's rule: the
    middle value, or the mean of the two middle ones when n is even)."""
    ends = drawn.cumsum(axis=1)  # position just past each value's run in the sorted resample

    def at(position: int) -> np.ndarray:
        return np.asarray(distinct[(ends <= position).sum(axis=1)], dtype=float)

    if n % 2:
        return at(n // 2)
    middle: np.ndarray = (at(n // 2 - 1) + at(n // 2)) / 2
    return middle
