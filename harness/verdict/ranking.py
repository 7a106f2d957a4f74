"""A Bradley-Terry ranking of checkpoints from pairwise judge outcomes (Arena-Hard's practice).

Each judged pair of answers is a game between two checkpoints: 1 when the first won, 0 when it lost,
0.5 for a tie (a tie counts half, as the judge's win rate counts it). The model: checkpoint i beats j
with probability sigmoid(s_i - s_j). Strengths are fixed by s = 0 for the reference (the run's first
checkpoint), so each is a log-odds of beating the reference.

Fit: maximum likelihood by Newton's method on the weighted logistic likelihood (a tie is half a win
and half a loss). A checkpoint that won (or lost) every game has no finite maximum-likelihood
strength; a weak Gaussian prior (RIDGE, a standard deviation of about 30 log-odds) keeps it finite and
far out, and changes a fit with finite strengths by far less than its standard error.

Intervals: percentile bootstrap over games (resampled with replacement, refit), for each strength
and for each pair's win probability. Pure numpy; the statistics' own generator, as in stats.py.
A run of three or more checkpoints ranks them (ranking_stats, from each comparison's judge records); a
run of two has its win rate instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from harness.records.group_results import PairProbability, RankedCheckpoint, RankingStats
from harness.records.stage_records import JudgmentRecord

RIDGE = 1e-3
"""Precision of the Gaussian prior on each strength (its variance is 1 / RIDGE)."""
NEWTON_STEPS = 50
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Game:
    first: int
    """Index of one checkpoint."""
    second: int
    """Index of the other."""
    score: float
    """1: first won, 0: second won, 0.5: a tie."""


@dataclass(frozen=True)
class Ranking:
    names: list[str]
    strengths: list[float]
    """Log-odds of beating the reference (names[0], strength 0)."""
    strength_ci: list[tuple[float, float]]
    win_probability: list[list[float]]
    """[i][j]: probability that i beats j under the fitted model."""
    win_probability_ci: list[list[tuple[float, float]]]
    games: int
    resamples: int

    @property
    def order(self) -> list[str]:
        """Names from strongest to weakest."""
        return [self.names[i] for i in np.argsort(-np.asarray(self.strengths), kind="stable")]


def _arrays(games: Sequence[Game], players: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    first = np.array([g.first for g in games], dtype=np.int64)
    second = np.array([g.second for g in games], dtype=np.int64)
    score = np.array([g.score for g in games], dtype=np.float64)
    if len(games) and (first.min() < 0 or second.min() < 0 or max(first.max(), second.max()) >= players):
        raise ValueError(f"a game names a checkpoint outside 0..{players - 1}")
    if np.any(first == second):
        raise ValueError("a checkpoint cannot play itself")
    if np.any((score < 0) | (score > 1)):
        raise ValueError("a game's score must lie in [0, 1]")
    return first, second, score


def fit_strengths(first: NDArray[np.int64], second: NDArray[np.int64], score: NDArray[np.float64],
                  players: int) -> NDArray[np.float64]:
    """Strengths (reference 0) maximising sum(score log p + (1 - score) log (1 - p)) - RIDGE |s|^2 / 2,
    p = sigmoid(s_first - s_second), by Newton's method (the objective is strictly concave)."""
    s = np.zeros(players)
    free = np.arange(1, players)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(s[first] - s[second])))
        residual = score - p
        gradient = np.bincount(first, residual, players) - np.bincount(second, residual, players) - RIDGE * s
        weight = p * (1.0 - p)
        hessian = np.zeros((players, players))
        np.add.at(hessian, (first, first), weight)
        np.add.at(hessian, (second, second), weight)
        np.add.at(hessian, (first, second), -weight)
        np.add.at(hessian, (second, first), -weight)
        hessian += RIDGE * np.eye(players)
        step = np.linalg.solve(hessian[np.ix_(free, free)], gradient[free])
        s[free] += step
        if np.max(np.abs(step), initial=0.0) < TOLERANCE:
            break
    return s


def rank(names: Sequence[str], games: Sequence[Game], rng: np.random.Generator, resamples: int = 1000,
         confidence: float = 0.95) -> Ranking:
    """The fitted strengths and win probabilities with percentile bootstrap intervals over games."""
    players = len(names)
    if players < 2:
        raise ValueError("a ranking needs at least two checkpoints")
    first, second, score = _arrays(games, players)
    strengths = fit_strengths(first, second, score, players)
    draws = np.empty((resamples, players))
    n = len(games)
    for r in range(resamples):
        idx = rng.integers(0, n, size=n) if n else np.zeros(0, dtype=np.int64)
        draws[r] = fit_strengths(first[idx], second[idx], score[idx], players)
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    diff = strengths[:, None] - strengths[None, :]
    prob = 1.0 / (1.0 + np.exp(-diff))
    boot = 1.0 / (1.0 + np.exp(-(draws[:, :, None] - draws[:, None, :])))
    plow, phigh = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return Ranking(list(names), strengths.tolist(), list(zip(low.tolist(), high.tolist())), prob.tolist(),
                   [list(zip(plow[i].tolist(), phigh[i].tolist())) for i in range(players)], n, resamples)


SCORES = {"candidate": 1.0, "base": 0.0, "tie": 0.5}
"""A judged pair's score for the candidate's side: what the judge's win rate counts (a side wins only when
both orders agree; an order disagreement is a tie). Canaries, failed and unparsed judgments are no game."""


def judged_games(records: Sequence[JudgmentRecord], base: int, candidate: int) -> list[Game]:
    """The games of one comparison: `base` and `candidate` index the two checkpoints in the ranking."""
    return [Game(candidate, base, SCORES[r.preference]) for r in records
            if r.canary is None and r.preference in SCORES]


def ranking_stats(names: Sequence[str], games: Sequence[Game], rng: np.random.Generator,
                  resamples: int = 1000) -> RankingStats:
    """stats.json's ranking: each checkpoint's strength with its interval, strongest first, and every
    pair's win probability, with how many of its games were judged directly."""
    fitted = rank(names, games, rng, resamples)
    record: dict[int, list[int]] = {i: [0, 0, 0] for i in range(len(names))}  # wins, losses, ties
    judged: dict[tuple[int, int], int] = {}
    for g in games:
        for me, other, score in ((g.first, g.second, g.score), (g.second, g.first, 1.0 - g.score)):
            record[me][0 if score == 1.0 else 1 if score == 0.0 else 2] += 1
            judged[(me, other)] = judged.get((me, other), 0) + 1
    checkpoints = [RankedCheckpoint(name=names[i], strength=fitted.strengths[i], strength_ci=fitted.strength_ci[i],
                                    win_probability=fitted.win_probability[i][0], wins=record[i][0],
                                    losses=record[i][1], ties=record[i][2])
                   for i in np.argsort(-np.asarray(fitted.strengths), kind="stable").tolist()]
    pairs = [PairProbability(first=names[i], second=names[j], probability=fitted.win_probability[i][j],
                             ci=fitted.win_probability_ci[i][j], judged=judged.get((i, j), 0))
             for i in range(len(names)) for j in range(len(names)) if i < j]
    return RankingStats(games=fitted.games, resamples=fitted.resamples, checkpoints=checkpoints, pairs=pairs)
