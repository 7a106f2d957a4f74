"""An anytime-valid stopping rule for judging: stop once the judge win-rate gate's outcome is settled.

The judge stage may check the running win rate after every item or batch and stop early. Checking
a fixed-sample test (the gate's bootstrap CI, the sign test) again and again inflates its error far
beyond alpha; a confidence sequence (CS) does not: with probability at least 1 - alpha it holds the
true win rate at every time at once, so it may be checked as often as wished and judging may stop
at any such check (optional stopping).

Method: the hedged capital process with predictable plug-in bets of Waudby-Smith & Ramdas,
"Estimating means of bounded random variables by betting", JRSS-B 2024 (arXiv:2010.09686; its
"hedged capital" confidence sequence). For a candidate mean m, two gamblers bet on the outcomes
x_i in [0, 1] (1 the candidate won, 0.5 a tie, 0 the base won: the same scores as judge_stats.SCORE,
so the mean is the gate's win rate):

    K+_t(m) = prod_{i<=t} (1 + l+_i(m) (x_i - m))      bets that the mean is above m
    K-_t(m) = prod_{i<=t} (1 - l-_i(m) (x_i - m))      bets that it is below m
    l+_i(m) = min(b_i, c / m),  l-_i(m) = min(b_i, c / (1 - m)),  c = 1/2
    b_i     = sqrt(2 log(2 / alpha) / (s2_{i-1} i log(1 + i)))
    s2_i    = (1/4 + sum_{j<=i} (x_j - u_j)^2) / (i + 1),   u_j = (1/2 + sum_{k<=j} x_k) / (j + 1)

b_i uses only x_1..x_{i-1} (predictable; any predictable bet keeps the guarantee, this choice only
sets how fast the CS shrinks), so at the true mean both products are nonnegative
martingales starting at 1, and so is (K+ + K-) / 2. Ville's inequality: it ever reaches 1/alpha
with probability at most alpha. The CS is {m : max(K+/2, K-/2) < 1/alpha} (theta = 1/2).

Both capitals are monotone in m (each factor is: d/dm of 1 + b (x - m) is -b, of 1 + c (x - m) / m
is -c x / m^2), so the CS is an interval (lower, upper) and the gate needs the capital at the
threshold p0 only: "pass" is settled when K+_t(p0) >= 2 / alpha, for then every m <= p0 is out of
the CS. A true rate at or below p0 gets there with probability at most alpha / 2, and a true rate at
or above p0 settles "fail" with at most alpha / 2: the two ends of a 95% CS, like the two ends of the
gate's 95% CI.

Finite population: the suite is N fixed items, not an endless stream. Judged in a uniformly random
order, the first t outcomes are a sample without replacement from the N, and (given the past) the
next one has mean (N m - S_{t-1}) / (N - t + 1) where m is the mean of all N. With `population=N`
the rule bets against that conditional mean instead of m (the same paper's sampling-without-
replacement section, after Waudby-Smith & Ramdas, "Confidence sequences for sampling without
replacement", NeurIPS 2020): the CS is then for the win rate of
exactly these N items, what the full run would report, and shrinks to it as t reaches N. Without
it, the CS is for the win rate of the population the items are drawn from, which the gate's bootstrap
CI estimates. Either way the order must be random: see judging_order.

Pure numpy; no I/O. The judge stage does not call it yet: `bench/sequential_sim.py` and the tests exercise it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from harness.verdict.judge_stats import SCORE

Floats = NDArray[np.float64]

THETA = 0.5
"""Weight of K+ in the hedge: an even split of alpha between "better than p0" and "worse than p0"."""
PRIOR_MEAN, PRIOR_VARIANCE = 0.5, 0.25
"""The paper's regularisers of the running mean and variance: one pseudo-observation at the centre
of [0, 1] with the largest variance, so the first bets are cautious whatever the data."""
BISECTION_STEPS = 40
"""Halvings of [0, 1] when a bound is reported: 1e-12 precision, always rounded outward."""
ORDER_STREAM = 0x5E9
"""Mixed into the plan seed so the judging order is its own random stream, unrelated to the
bootstrap's or the judge delimiters' draws from the same seed."""
LOGICAL_SLACK = 1e-9
"""Rounding room when a finite-population bound is decided by arithmetic rather than by betting."""


def judging_order(n: int, seed: int) -> list[int]:
    """The order in which to judge n items: a permutation of range(n), the same for the same seed.

    Why random order is required: the CS is valid when each outcome, given the ones before it, has
    the win rate being estimated as its mean. A suite file is not in random order (grouped by topic,
    source or difficulty), so judging it in file order would let the first hundred items (all about
    interest rates, say) settle a gate that the rest of the suite would have reversed: nothing in the
    betting argument protects against a drift the order itself creates. A uniformly random order
    makes every prefix a simple random sample of the suite, which is exactly the model the CS
    assumes (without replacement from the N items with `population=N`; as iid draws from the items'
    population otherwise, since a random permutation of an iid sample is again iid).

    The order must be fixed before any outcome is seen, and the stage must feed `decide` the outcomes
    in this order, not in the order concurrent calls happen to finish (a quick reply may be a
    systematically different answer): the longest prefix of this order whose items are all judged.
    Seeded, so a resumed or repeated run judges, and stops, at the same place.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng([ORDER_STREAM, seed])
    return [int(i) for i in rng.permutation(n)]


def outcome_scores(preferences: Sequence[str]) -> list[float]:
    """Judge preferences as outcomes, the way the judge summary scores them (judge_stats.SCORE: candidate
    1, tie 0.5, base 0). Unparsed and failed pairs are left out, as the win rate leaves them out."""
    return [SCORE[p] for p in preferences if p in SCORE]


def _outcomes(outcomes: ArrayLike) -> Floats:
    x = np.asarray(outcomes, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("outcomes must be a sequence")
    if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("outcomes must lie in [0, 1] (1 candidate wins, 0.5 tie, 0 base wins)")
    return x


def predictable_bets(outcomes: ArrayLike, alpha: float = 0.05) -> Floats:
    """The paper's predictable plug-in bet b_t for every t (along the last axis), before truncation.

    b_t uses x_1..x_{t-1} only: a bet may not look at the outcome it bets on, or the capital stops
    being a martingale. It shrinks like 1 / sqrt(t log t) and grows as the observed variance falls,
    which is what makes the CS adapt to ties (an outcome of 0.5 varies less than a win or a loss)."""
    x = _outcomes(outcomes)
    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    means = (PRIOR_MEAN + np.cumsum(x, axis=-1)) / (t + 1)
    variances = (PRIOR_VARIANCE + np.cumsum((x - means) ** 2, axis=-1)) / (t + 1)
    first = np.full(x.shape[:-1] + (1,), PRIOR_VARIANCE)
    previous = np.concatenate([first, variances[..., :-1]], axis=-1)
    bets: Floats = np.sqrt(2.0 * math.log(2.0 / alpha) / (previous * t * np.log1p(t)))
    return bets


def log_capital(outcomes: ArrayLike, m: float, alpha: float = 0.05, truncation: float = 0.5,
                population: int | None = None, bets: Floats | None = None) -> tuple[Floats, Floats]:
    """log K+_t(m) and log K-_t(m) for every t along the last axis (any leading axes are independent
    runs). With `population`, m is the mean of those N items and each bet is against the conditional
    mean of the next outcome; an m that the outcomes already rule out by arithmetic (the N items could
    not average m whatever the rest are) gets an infinite capital on the side it lies."""
    x = _outcomes(outcomes)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"m must lie in [0, 1], got {m}")
    b = predictable_bets(x, alpha) if bets is None else bets
    n = x.shape[-1]
    if population is None:
        mu: Floats = np.full(x.shape, m)
    else:
        if n > population:
            raise ValueError(f"{n} outcomes from a population of {population}")
        t = np.arange(1, n + 1, dtype=np.float64)
        before = np.cumsum(x, axis=-1) - x  # S_{t-1}
        # Clipped where m is already impossible (masked below): the factors stay positive and finite.
        mu = np.clip((population * m - before) / (population - t + 1), 0.0, 1.0)
    with np.errstate(divide="ignore"):  # c / 0 is inf: at m = 0 (or 1) only b limits the bet
        up = np.minimum(b, truncation / mu)
        down = np.minimum(b, truncation / (1.0 - mu))
    # Each factor is at least 1 - c > 0: a bet never stakes more than c of the capital.
    log_up: Floats = np.cumsum(np.log1p(up * (x - mu)), axis=-1)
    log_down: Floats = np.cumsum(np.log1p(-down * (x - mu)), axis=-1)
    if population is not None:
        t = np.arange(1, n + 1, dtype=np.float64)
        sums = np.cumsum(x, axis=-1)
        log_up[population * m < sums - LOGICAL_SLACK] = math.inf  # the judged items alone exceed m N
        log_down[population * m > sums + (population - t) + LOGICAL_SLACK] = math.inf  # even all wins fall short
    return log_up, log_down


@dataclass(frozen=True)
class StoppingDecision:
    """Whether the win-rate gate's outcome is settled, and the CS it rests on."""

    settled: bool
    outcome: Literal["pass", "fail"] | None
    """pass: the whole CS lies above the threshold; fail: below; None: keep judging."""
    lower: float
    """Every win rate below this is ruled out (rounded down; at the threshold or above when `pass`)."""
    upper: float
    """Every win rate above this is ruled out (rounded up; at the threshold or below when `fail`)."""
    n: int
    """Outcomes the decision rests on: the check point where it settled, else all given so far."""
    win_rate: float
    """Mean of those n outcomes (nan when n is 0)."""


@dataclass(frozen=True)
class SequentialRule:
    """Stop judging when a confidence sequence for the win rate clears `threshold` (pass) or falls below
    it (fail); otherwise keep judging, and when everything is judged the full-run test decides as today.

    A settled "pass" is the claim a passing win-rate gate makes, that the true win rate is above the
    threshold, and it is wrong with probability at most alpha / 2 however often the rule is checked
    (the same for "fail"). It is not a prediction of the full run's verdict: the superiority gate may
    still have ended inconclusive on a small suite (it also asks that the sample could detect
    min_effect), and with population=None the full run's own win rate may land either side of the
    threshold when the truth is near it. bench/sequential_sim.py measures how often they agree.

    Which population: None (the default) for the superiority gate, whose bootstrap CI is about the
    population the items are drawn from; N for a point gate (at_least / at_most on the win rate), which
    tests the N items' own win rate, and then near the end the rule settles whichever side it fell on.
    """

    threshold: float = 0.5
    alpha: float = 0.05
    """Two-sided level of the CS: alpha / 2 to each side, like the two ends of the gate's 95% CI."""
    min_items: int = 20
    """No decision before this many outcomes. Not needed for validity (the CS is valid from the first
    item, and cannot exclude 0.5 before 10 straight wins anyway); it keeps enough judged pairs for the
    judge's reliability gates (parse failures, consistency, canaries) to mean something."""
    check_every: int = 1
    """Settle only at multiples of this many outcomes. Validity does not depend on it; it makes where a
    run stops a function of the outcomes alone, whatever batch sizes the stage happens to call with."""
    population: int | None = None
    """N, the suite's item count: a CS for the win rate of these N items (sampling without replacement).
    None: a CS for the win rate of the population the items come from (iid draws)."""
    truncation: float = 0.5
    """c, the largest fraction of the capital staked on one outcome (the paper suggests 1/2 or 3/4)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if self.min_items < 1 or self.check_every < 1:
            raise ValueError(f"min_items and check_every must be positive, got {self.min_items}, {self.check_every}")
        if self.population is not None and self.population < 1:
            raise ValueError(f"population must be positive, got {self.population}")
        if not 0.0 < self.truncation < 1.0:
            raise ValueError(f"truncation must lie strictly between 0 and 1, got {self.truncation}")

    @property
    def level(self) -> float:
        """log(1 / (theta alpha)): the log capital that rules a mean out."""
        return math.log(1.0 / (THETA * self.alpha))

    def settle(self, outcomes: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Where each run (row; a 1-d sequence is one run) first settles, vectorised for simulation:
        (n at the first settling check point, or 0 when none; +1 pass, -1 fail, 0 not settled)."""
        x = np.atleast_2d(_outcomes(outcomes))
        n = x.shape[-1]
        if n == 0:
            return np.zeros(x.shape[0], dtype=np.int64), np.zeros(x.shape[0], dtype=np.int64)
        log_up, log_down = log_capital(x, self.threshold, self.alpha, self.truncation, self.population)
        t = np.arange(1, n + 1)
        mean = np.cumsum(x, axis=-1) / t
        up, down = log_up >= self.level, log_down >= self.level
        # Both sides rejecting the threshold means the CS is empty there (an event of probability at
        # most alpha): the outcomes contradict each other, and nothing is settled. Asking the running
        # mean to agree never makes the rule less valid (it only withholds a decision) and keeps it
        # from "passing" a run whose observed win rate is below the threshold, which an adversarial
        # order could otherwise produce.
        passed = up & ~down & (mean > self.threshold)
        failed = down & ~up & (mean < self.threshold)
        checks = (t % self.check_every == 0) & (t >= self.min_items)
        settled = (passed | failed) & checks
        first = np.argmax(settled, axis=-1)
        hit = settled.any(axis=-1)
        rows = np.arange(x.shape[0])
        stop = np.where(hit, first + 1, 0).astype(np.int64)
        side = np.where(hit, np.where(passed[rows, first], 1, -1), 0).astype(np.int64)
        return stop, side

    def bounds(self, outcomes: Sequence[float] | Floats) -> tuple[float, float]:
        """The CS after all the given outcomes: (lower, upper), each rounded outward. (0, 1) for none."""
        x = _outcomes(outcomes)
        if x.ndim != 1:
            raise ValueError("bounds takes one sequence of outcomes")
        if x.size == 0:
            return 0.0, 1.0
        lower = self._lower(x)
        # K-(m; x) is K+(1 - m; 1 - x) (the bets are symmetric), so the upper bound is a mirrored lower one.
        upper = 1.0 - self._lower(1.0 - x)
        return lower, upper

    def _lower(self, x: Floats) -> float:
        """sup {m : K+_t(m) >= 1 / (theta alpha)} by bisection (K+ is nonincreasing in m), rounded down."""
        bets = predictable_bets(x, self.alpha)

        def out(m: float) -> bool:
            return bool(log_capital(x, m, self.alpha, self.truncation, self.population, bets)[0][-1] >= self.level)

        if not out(0.0):
            return 0.0
        if out(1.0):
            return 1.0
        low, high = 0.0, 1.0
        for _ in range(BISECTION_STEPS):
            mid = (low + high) / 2
            low, high = (mid, high) if out(mid) else (low, mid)
        return low

    def decide(self, outcomes: Sequence[float]) -> StoppingDecision:
        """Decide on the outcomes judged so far, in judging order (see judging_order).

        Looks at every check point up to len(outcomes), so the answer does not depend on how often it
        is called: once settled, more outcomes leave the decision (and its n) as it was."""
        x = _outcomes(outcomes)
        if x.ndim != 1:
            raise ValueError("decide takes one sequence of outcomes")
        if self.population is not None and x.size > self.population:
            raise ValueError(f"{x.size} outcomes from a population of {self.population}")
        stop, side = self.settle(x)
        n = int(stop[0]) or x.size
        lower, upper = self.bounds(x[:n])
        settled = int(side[0])
        outcome: Literal["pass", "fail"] | None = "pass" if settled == 1 else "fail" if settled == -1 else None
        if outcome == "pass":  # the bisection is within 1e-12 of the threshold the capital cleared
            lower = max(lower, self.threshold)
        elif outcome == "fail":
            upper = min(upper, self.threshold)
        win_rate = float(x[:n].mean()) if n else math.nan
        return StoppingDecision(outcome is not None, outcome, lower, upper, n, win_rate)
