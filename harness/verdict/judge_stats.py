"""Summary of a judge stage: a pure function of its records and a seeded RNG.

Counted over real pairs (canaries apart): a win is a pair both orders gave to
the candidate, a loss one both gave to the base, a tie everything else that
was judged (agreed ties and order disagreements). The win rate scores a tie
as half a win, over judged pairs only: unparsed and failed pairs are counted
and shown, never folded into the rate. Its 95% interval is a percentile
bootstrap over pairs (10,000 resamples, the caller's Generator); the sign
test and its Wilson interval over decisive pairs come from verdict/stats.py.

With several samples per item (some item has more than one judged pair) the item is the unit:
the win rate is each item's mean pair score (1 / 0.5 / 0) averaged over items, its interval a
cluster bootstrap over items, and the sign test becomes a sign-flip permutation test of the
per-item scores against 0.5 (harness/verdict/clustered.py). One pair per item: unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.records.answers import Judgment
from harness.records.run_results import JudgeSummary, SequentialSummary
from harness.records.stage_records import JudgmentRecord
from harness.verdict.clustered import item_means, sign_flip_p
from harness.verdict.stats import (
    binomial_p,
    length_controlled_win_rate,
    min_detectable_win_rate,
    paired_bootstrap,
    sign_test,
)

RESAMPLES = 10_000
SCORE = {"candidate": 1.0, "tie": 0.5, "base": 0.0}
"""A judged pair's value to the candidate."""
PREFERENCES = ("candidate", "base", "tie", "unparsed", "failed")
PREFERENCE_CODE = {p: i for i, p in enumerate(PREFERENCES)}
"""Preferences as small integers; the judged ones (those in SCORE) come first."""
COUNTED = {"candidate": "wins", "base": "losses", "tie": "ties", "unparsed": "unparsed", "failed": "failed"}
SCORE_OF_CODE = np.array([SCORE[p] for p in PREFERENCES[:3]])
VERDICT_CODE: dict[str | None, int] = {None: -1, "tie": 0, "A": 1, "B": 2}
CONSISTENT_CODE: dict[bool | None, int] = {None: -1, False: 0, True: 1}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


JudgmentRow = Judgment | JudgmentRecord
"""A judgment as the statistics read it: read back as columns (Judgments), or a record."""


def _counts(records: Sequence[JudgmentRow]) -> dict[str, int]:
    return _tally(np.array([PREFERENCE_CODE[r.preference] for r in records], dtype=np.int8))


def _tally(codes: np.ndarray) -> dict[str, int]:
    """The preferences' counts, from their codes (PREFERENCE_CODE)."""
    counted = np.bincount(codes, minlength=len(PREFERENCES)) if len(codes) else np.zeros(len(PREFERENCES), int)
    return {"n": len(codes), **{COUNTED[p]: int(counted[i]) for i, p in enumerate(PREFERENCES)}}


def _canaries(records: Sequence[JudgmentRow]) -> dict[str, Any]:
    won = [r for r in records if r.preference == "candidate"]
    kinds = sorted({r.canary for r in records if r.canary})
    return {
        "total": len(records), "wins": len(won), "won": sorted({r.canary for r in won if r.canary}),
        "won_items": [{"kind": r.canary, "suite": r.suite, "item_id": r.item_id} for r in won],
        "unparsed": sum(r.preference == "unparsed" for r in records),
        "failed": sum(r.preference == "failed" for r in records),
        "by_kind": {k: {"total": sum(r.canary == k for r in records), "wins": sum(r.canary == k for r in won)}
                    for k in kinds},
    }


@dataclass(frozen=True)
class _Pairs:
    """The real pairs' fields the summary reads, as arrays: one pass over the records per field, then numpy
    (a run of 100,000 items has 100,000 pairs)."""

    preference: np.ndarray
    """PREFERENCE_CODE of each pair's preference."""
    consistent: np.ndarray
    """1 consistent, 0 not, -1 unknown (None)."""
    verdict_ab: np.ndarray
    verdict_ba: np.ndarray
    """VERDICT_CODE of each order's verdict."""
    suites: np.ndarray
    """Each pair's suite, as its index in suite_names."""
    suite_names: list[str]
    """The suites in order of first appearance."""

    @classmethod
    def of(cls, records: Sequence[JudgmentRow]) -> _Pairs:
        index: dict[str, int] = {}
        return cls(np.array([PREFERENCE_CODE[r.preference] for r in records], dtype=np.int8),
                   np.array([CONSISTENT_CODE[r.consistent] for r in records], dtype=np.int8),
                   np.array([VERDICT_CODE[r.verdict_ab] for r in records], dtype=np.int8),
                   np.array([VERDICT_CODE[r.verdict_ba] for r in records], dtype=np.int8),
                   np.array([index.setdefault(r.suite, len(index)) for r in records], dtype=np.int64),
                   list(index))

    @property
    def judged(self) -> np.ndarray:
        """A verdict to score: the candidate's, the base's or a tie."""
        return self.preference <= PREFERENCE_CODE["tie"]


def summarize_judgments(records: Iterable[JudgmentRow], rng: np.random.Generator,
                        sequential: SequentialSummary | None = None) -> JudgeSummary:
    """Counts, rates, tests and costs of a judge stage (JSON-serialisable; NaN becomes None). With
    `sequential` (judging stopped early), the figures cover the items judged and the summary carries it."""
    real = [r for r in records if r.canary is None]
    pairs = _Pairs.of(real)
    judged_mask = pairs.judged
    judged = [r for r, kept in zip(real, judged_mask.tolist()) if kept]
    counts = _tally(pairs.preference)
    scores = SCORE_OF_CODE[pairs.preference[judged_mask]]
    boot = paired_bootstrap(np.zeros(len(scores)), scores, rng, resamples=RESAMPLES)
    sign = sign_test(counts["wins"], counts["losses"], counts["ties"])
    base_words = np.array([r.base_words for r in judged], dtype=float)
    cand_words = np.array([r.candidate_words for r in judged], dtype=float)
    length = length_controlled_win_rate(scores, cand_words - base_words)
    per_item = _per_item(judged, scores, rng) if _several_samples(judged, pairs.suites[judged_mask]) else {}
    orders = pairs.consistent >= 0
    answered = counts["n"] - counts["failed"]
    first = next(iter(records), None)
    summary = {
        "judge": first.judge if first else None, "kind": first.kind if first else None,
        "model": first.model if first else None,
        "decided_by": dict(sorted(Counter(r.decided_by for r in real).items())),
        **counts,
        "judged": len(judged),
        "inconsistent": int((pairs.consistent == 0).sum()),
        "win_rate": float(scores.mean()) if len(scores) else None,
        "win_rate_ci": [boot.low, boot.high],
        "win_rate_ci_method": f"percentile bootstrap over judged pairs, {RESAMPLES} resamples, 95%",
        # Each judged pair taken as one Bernoulli trial: conservative when there are ties (a tie's 0.5
        # varies less than a win or a loss). inf (-> None) when nothing was judged.
        "min_detectable_win_rate": min_detectable_win_rate(len(judged)),
        "decisive_win_rate": {"estimate": sign.win_rate.estimate, "low": sign.win_rate.low,
                              "high": sign.win_rate.high, "method": "Wilson, 95%, ties excluded"},
        "sign_test_p": sign.p_value,
        "sign_test_tie_split_p": sign.tie_split_p_value,
        "swap_consistency": _rate(int((pairs.consistent == 1).sum()), int(orders.sum())),
        **_decisive(pairs, orders),
        "tie_rate": _rate(counts["ties"], len(judged)),
        "parse_failure_rate": _rate(counts["unparsed"], answered),
        "failure_rate": _rate(counts["failed"], counts["n"]),
        "length_controlled_win_rate": length.win_rate if length.n else None,
        "length_control": asdict(length),
        "base_words_mean": float(base_words.mean()) if len(judged) else None,
        "candidate_words_mean": float(cand_words.mean()) if len(judged) else None,
        "canaries": _canaries([r for r in records if r.canary is not None]),
        "calls": sum(r.calls for r in records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "cached": sum(r.cached for r in records),
        "by_suite": _suites(pairs, real, bool(per_item)),
        **per_item,
    }
    return JudgeSummary.model_validate({**_clean(summary), "sequential": sequential})


def _decisive(pairs: _Pairs, orders: np.ndarray) -> dict[str, Any]:
    """Consistency where it means something, and the side an order-flipping judge leans to. A pair both
    orders called a tie is consistent but decided nothing: counting it lets an always-tie judge score 1.0.
    An inconsistent pair that both orders decided went to the same position twice: that is position bias.
    `orders`: the pairs whose consistency is known."""
    decided = orders & ((pairs.verdict_ab >= VERDICT_CODE["A"]) | (pairs.verdict_ba >= VERDICT_CODE["A"]))
    flipped = decided & (pairs.consistent == 0) & (pairs.verdict_ab == pairs.verdict_ba)
    first = int((flipped & (pairs.verdict_ab == VERDICT_CODE["A"])).sum())
    second = int((flipped & (pairs.verdict_ab == VERDICT_CODE["B"])).sum())
    p = binomial_p(first, first + second) if first + second else None
    return {"decisive_consistency": _rate(int((decided & (pairs.consistent == 1)).sum()), int(decided.sum())),
            "decisive_pairs": int(decided.sum()), "position_bias": {"first": first, "second": second, "p_value": p}}


def _suites(pairs: _Pairs, real: Sequence[JudgmentRow], by_item: bool) -> dict[str, Any]:
    """Per suite, in order of first appearance: the counts and the win rate (ties half; per item with
    several samples per item)."""
    result = {}
    for index, suite in enumerate(pairs.suite_names):
        mask = pairs.suites == index
        codes = pairs.preference[mask]
        if by_item:
            score = _mean_score([r for r, kept in zip(real, mask.tolist()) if kept], by_item)
        else:
            # A sum of halves and ones is exact in any order: the same number as summing pair by pair.
            values = SCORE_OF_CODE[codes[codes <= PREFERENCE_CODE["tie"]]]
            score = float(values.sum()) / len(values) if len(values) else None
        result[suite] = {**_tally(codes), "win_rate": score}
    return result


def _mean_score(records: Sequence[JudgmentRow], by_item: bool = False) -> float | None:
    judged = [r for r in records if r.preference in SCORE]
    if by_item and judged:
        _, means = item_means([(r.suite, r.item_id) for r in judged], [SCORE[r.preference] for r in judged])
        return float(means.mean())
    values = [SCORE[r.preference] for r in judged]
    return sum(values) / len(values) if values else None


def _several_samples(judged: Sequence[JudgmentRow], suites: np.ndarray) -> bool:
    """Some item has more than one judged pair. `suites`: each pair's suite as a number."""
    items = [r.item_id for r in judged]
    if len(suites) and suites.min() == suites.max():
        return len(set(items)) < len(items)
    return any(len(set(chosen)) < len(chosen)
               for chosen in ([items[i] for i in np.flatnonzero(suites == s)] for s in np.unique(suites)))


def _per_item(judged: Sequence[JudgmentRow], scores: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """The figures that change when items were sampled several times, the item as the unit: win rate
    and its cluster bootstrap CI, the permutation p-value (replacing both sign-test p-values; a tie
    already counts half, so there is nothing to split), the decisive win rate (per item over its
    decisive pairs, items with one) and the MDE over items. The pair-level length control is kept."""
    items, item_scores = item_means([(r.suite, r.item_id) for r in judged], scores)
    boot = paired_bootstrap(np.zeros(len(item_scores)), item_scores, rng, resamples=RESAMPLES)
    p = sign_flip_p(item_scores - 0.5, rng)
    decisive = [r for r in judged if r.preference != "tie"]
    _, decisive_rates = item_means([(r.suite, r.item_id) for r in decisive],
                                   [SCORE[r.preference] for r in decisive])
    dboot = paired_bootstrap(np.zeros(len(decisive_rates)), decisive_rates, rng, resamples=RESAMPLES)
    return {
        "items": len(items), "samples_per_item": len(judged) / len(items),
        "win_rate": float(item_scores.mean()), "win_rate_ci": [boot.low, boot.high],
        "win_rate_ci_method": (f"cluster bootstrap over items (each item's mean pair score), {RESAMPLES} "
                               "resamples, 95%"),
        "min_detectable_win_rate": min_detectable_win_rate(len(items)),
        "decisive_win_rate": {"estimate": dboot.estimate, "low": dboot.low, "high": dboot.high,
                              "method": "per-item share of decisive pairs won, mean over items; "
                                        "cluster bootstrap, 95%"},
        "sign_test_p": p, "sign_test_tie_split_p": p,
        "significance_test": "sign-flip permutation test of per-item mean scores against 0.5",
    }
