"""summarize_judgments against numbers computed here independently (hand counts, scipy, statsmodels)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from harness.records.stage_records import JudgmentRecord
from harness.verdict.judge_stats import summarize_judgments

_IDS = itertools.count()


def record(preference: str, consistent: bool | None = True, canary: str | None = None, suite: str = "s",
           base_words: int = 10, candidate_words: int = 10, calls: int = 2, cached: bool = False) -> JudgmentRecord:
    return JudgmentRecord(judge="pairwise", kind="llm", model="m", decided_by="pairwise", suite=suite,
                          item_id=f"i{next(_IDS)}", sample_index=0, canary=canary, preference=preference,
                          consistent=consistent, latency_s=0.1, prompt_tokens=100, completion_tokens=7, calls=calls,
                          cached=cached, base_words=base_words, candidate_words=candidate_words)



@pytest.fixture()
def records() -> list[JudgmentRecord]:
    rs = ([record("candidate", candidate_words=20) for _ in range(7)]
          + [record("base", suite="t") for _ in range(2)]
          + [record("tie"), record("tie", consistent=False), record("tie", consistent=False, suite="t")]
          + [record("unparsed", consistent=None, calls=4), record("failed", consistent=None, calls=1)]
          + [record("candidate", canary="padded"), record("base", canary="empty"), record("tie", canary="question"),
             record("unparsed", canary="injection", consistent=None)])
    return rs


def test_counts_rates_and_tests_match_an_independent_computation(records: list[JudgmentRecord]) -> None:
    s = summarize_judgments(records, np.random.default_rng(0))
    assert (s.judge, s.kind, s.model) == ("pairwise", "llm", "m")
    counts = (s.n, s.wins, s.losses, s.ties, s.unparsed, s.failed, s.judged)
    assert counts == (14, 7, 2, 3, 1, 1, 12)
    assert s.inconsistent == 2
    assert s.win_rate == pytest.approx((7 + 3 / 2) / 12)
    assert s.sign_test_p == pytest.approx(binomtest(7, 9, 0.5).pvalue)
    assert s.sign_test_tie_split_p == pytest.approx(binomtest(7 + 1, 12, 0.5).pvalue)  # odd tie to the base
    low, high = proportion_confint(7, 9, alpha=0.05, method="wilson")
    assert (s.decisive_win_rate.low, s.decisive_win_rate.high) == (pytest.approx(low), pytest.approx(high))
    assert 0.5 < s.min_detectable_win_rate < 1.0
    assert s.swap_consistency == pytest.approx(10 / 12)  # unparsed and failed pairs have no consistency
    assert s.tie_rate == pytest.approx(3 / 12)
    assert s.parse_failure_rate == pytest.approx(1 / 13)  # over pairs the judge answered
    assert s.failure_rate == pytest.approx(1 / 14)
    assert s.base_words_mean == 10 and s.candidate_words_mean == pytest.approx((7 * 20 + 5 * 10) / 12)
    assert s.canaries.model_dump() == {"total": 4, "wins": 1, "won": ["padded"], "unparsed": 1, "failed": 0,
                             "won_items": [{"kind": "padded", "suite": "s", "item_id": records[14].item_id}],
                             "by_kind": {"empty": {"total": 1, "wins": 0}, "injection": {"total": 1, "wins": 0},
                                         "padded": {"total": 1, "wins": 1}, "question": {"total": 1, "wins": 0}}}
    assert s.calls == 7 * 2 + 2 * 2 + 3 * 2 + 4 + 1 + 4 * 2  # canaries cost calls too
    assert (s.prompt_tokens, s.completion_tokens) == (18 * 100, 18 * 7)
    assert s.by_suite["t"].model_dump() == {"n": 3, "wins": 0, "losses": 2, "ties": 1, "unparsed": 0, "failed": 0,
                                  "win_rate": pytest.approx(0.5 / 3)}
    json.dumps(s.model_dump(), allow_nan=False)  # strict JSON: no NaN anywhere


def test_bootstrap_interval_is_seeded_and_sensible(records: list[JudgmentRecord]) -> None:
    first = summarize_judgments(records, np.random.default_rng(7)).win_rate_ci
    assert summarize_judgments(records, np.random.default_rng(7)).win_rate_ci == first
    scores = np.array([1.0] * 7 + [0.0] * 2 + [0.5] * 3)
    half = 1.96 * scores.std(ddof=0) / math.sqrt(len(scores))  # the normal approximation, for scale
    assert first[0] == pytest.approx(scores.mean() - half, abs=0.05)
    assert first[1] == pytest.approx(min(1.0, scores.mean() + half), abs=0.05)


def test_length_controlled_win_rate_matches_a_logistic_fit_done_here() -> None:
    import statsmodels.api as sm
    from scipy.special import expit

    wins, losses = [12, 9, 6, 3, -2, 5, 10], [4, -3, -7, 8, 1]  # candidate words minus base words
    rs = ([record("candidate", base_words=20, candidate_words=20 + d) for d in wins]
          + [record("base", base_words=20, candidate_words=20 + d) for d in losses])
    s = summarize_judgments(rs, np.random.default_rng(0))
    diffs = np.array(wins + losses, dtype=float)
    fit = sm.Logit(np.array([1] * len(wins) + [0] * len(losses)), sm.add_constant(diffs / diffs.std())).fit(disp=0)
    assert s.length_controlled_win_rate == pytest.approx(float(expit(fit.params[0])), abs=1e-6)
    assert s.length_controlled_win_rate < s.win_rate == pytest.approx(7 / 12)  # longer answers won more


def test_nothing_judged_gives_nones_not_nans() -> None:
    s = summarize_judgments([record("failed", consistent=None)], np.random.default_rng(0))
    assert (s.win_rate, s.win_rate_ci, s.tie_rate, s.parse_failure_rate, s.failure_rate) == (
        None, (None, None), None, None, 1.0)
    assert s.length_controlled_win_rate is None and s.swap_consistency is None
    assert s.min_detectable_win_rate is None  # nothing judged: nothing detectable
    assert summarize_judgments([], np.random.default_rng(0)).judge is None
    json.dumps(s.model_dump(), allow_nan=False)


def test_an_always_a_judge_is_named_as_position_biased_and_an_always_tie_one_decides_nothing() -> None:
    """Counted here by hand: every pair of an always-"A" judge is inconsistent, each won by the first
    position in both orders; an always-"tie" judge is consistent everywhere and decides nothing."""
    from scipy.stats import binomtest

    def pair(ab: str, ba: str) -> JudgmentRecord:
        consistent = {"A": "base", "B": "candidate", "tie": "tie"}[ab] == {"A": "candidate", "B": "base",
                                                                              "tie": "tie"}[ba]
        return record("tie" if not consistent else {"A": "base", "B": "candidate", "tie": "tie"}[ab],
                      consistent=consistent).model_copy(update={"verdict_ab": ab, "verdict_ba": ba})

    always_a = summarize_judgments([pair("A", "A")] * 20 + [pair("A", "B")] * 2, np.random.default_rng(0))
    assert (always_a.decisive_pairs, always_a.decisive_consistency) == (22, pytest.approx(2 / 22))
    bias = always_a.position_bias
    assert (bias.first, bias.second) == (20, 0) and bias.p_value == pytest.approx(binomtest(20, 20).pvalue)
    always_tie = summarize_judgments([pair("tie", "tie")] * 20, np.random.default_rng(0))
    assert always_tie.swap_consistency == 1.0 and always_tie.decisive_consistency is None
    assert always_tie.decisive_pairs == 0 and always_tie.position_bias.p_value is None
