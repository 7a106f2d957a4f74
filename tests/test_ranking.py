"""The Bradley-Terry ranking (harness/verdict/ranking.py) against independent fits of a hand-made
table of wins: statsmodels' logistic regression, scipy's general-purpose optimiser on the same
objective, and the two-checkpoint closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.optimize import minimize

from harness.verdict.ranking import RIDGE, Game, fit_strengths, rank

# base, sft, dpo: (first, second) -> (first's wins, second's wins, ties)
TABLE = {(0, 1): (30, 55, 15), (0, 2): (20, 65, 15), (1, 2): (40, 48, 12)}


def games(table: dict[tuple[int, int], tuple[int, int, int]]) -> list[Game]:
    out = []
    for (i, j), (wins, losses, ties) in table.items():
        out += [Game(i, j, 1.0)] * wins + [Game(i, j, 0.0)] * losses + [Game(i, j, 0.5)] * ties
    return out


def arrays(played: list[Game]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([g.first for g in played]), np.array([g.second for g in played]),
            np.array([g.score for g in played], dtype=float))


def test_strengths_match_statsmodels_logistic_regression() -> None:
    # Each game as a win (weight score) and a loss (weight 1 - score) of the design row +1 first, -1 second,
    # the reference's column dropped and no intercept: the Bradley-Terry likelihood, fitted unpenalised.
    played = games(TABLE)
    rows, ys, weights = [], [], []
    for g in played:
        x = np.zeros(3)
        x[g.first], x[g.second] = 1.0, -1.0
        for y, w in ((1.0, g.score), (0.0, 1.0 - g.score)):
            if w:
                rows.append(x[1:])
                ys.append(y)
                weights.append(w)
    fitted = sm.GLM(np.array(ys), np.array(rows), family=sm.families.Binomial(),
                    freq_weights=np.array(weights)).fit()
    ours = fit_strengths(*arrays(played), 3)
    assert ours[0] == 0.0
    np.testing.assert_allclose(ours[1:], fitted.params, atol=2e-3)  # the weak prior moves them by less


def test_strengths_match_a_general_optimiser_on_the_same_objective() -> None:
    first, second, score = arrays(games(TABLE))

    def negative(free: np.ndarray) -> float:
        s = np.concatenate([[0.0], free])
        d = s[first] - s[second]
        return float(-np.sum(score * -np.logaddexp(0, -d) + (1 - score) * -np.logaddexp(0, d))
                     + RIDGE * np.sum(s ** 2) / 2)

    best = minimize(negative, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(fit_strengths(first, second, score, 3)[1:], best, atol=1e-5)


def test_two_checkpoints_give_the_log_odds_of_the_win_rate() -> None:
    played = games({(0, 1): (30, 60, 10)})  # ties half: the second wins (60 + 5) / 100
    s = fit_strengths(*arrays(played), 2)
    assert s[1] == pytest.approx(math.log(0.65 / 0.35), abs=1e-3)


def test_the_ranking_orders_by_the_judges_wins_with_intervals_and_is_seeded() -> None:
    ranking = rank(["base", "sft", "dpo"], games(TABLE), np.random.default_rng(0), resamples=300)
    assert ranking.order == ["dpo", "sft", "base"] and ranking.games == 300
    for (low, high), s in zip(ranking.strength_ci, ranking.strengths):
        assert low <= s <= high
    assert ranking.strength_ci[0] == (0.0, 0.0)  # the reference is fixed
    p = np.array(ranking.win_probability)
    np.testing.assert_allclose(p + p.T, 1.0)
    assert p[2][0] > 0.5 and ranking.win_probability_ci[2][0][0] > 0.5  # dpo beats base, and the CI says so
    assert 0.5 < p[2][1] < p[2][0]  # dpo beat sft too, by less than it beat base
    again = rank(["base", "sft", "dpo"], games(TABLE), np.random.default_rng(0), resamples=300)
    assert again == ranking


def test_a_checkpoint_that_won_every_game_stays_finite_and_first() -> None:
    played = games({(0, 1): (0, 20, 0), (0, 2): (10, 10, 0), (1, 2): (20, 0, 0)})
    ranking = rank(["base", "best", "mid"], played, np.random.default_rng(1), resamples=100)
    assert ranking.order[0] == "best" and all(math.isfinite(s) for s in ranking.strengths)
    assert ranking.strengths[1] > 5


@pytest.mark.parametrize(("names", "played", "message"), [
    (["a"], [], "at least two"),
    (["a", "b"], [Game(0, 2, 1.0)], "outside"),
    (["a", "b"], [Game(1, 1, 1.0)], "itself"),
    (["a", "b"], [Game(0, 1, 1.5)], r"\[0, 1\]"),
])
def test_bad_games_are_refused(names: list[str], played: list[Game], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rank(names, played, np.random.default_rng(0), resamples=10)
