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
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.records.answers import Judgment, Judgments
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
    """What the summary reads of the judgments, gathered in one walk: the real pairs' fields as arrays,
    the canaries' records (a few per suite), the sums. Nothing per pair is kept as a Python object, so a
    run of 100,000 items is summarised without holding its judgments."""

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
    keys: np.ndarray
    """hash((suite, item_id)) of each pair: equal items hash equal, so distinct hashes prove one pair per
    item (the exact item codes are read again only when they do not; see _item_codes)."""
    base_words: np.ndarray
    candidate_words: np.ndarray
    decided_by: Counter[str]
    canaries: list[JudgmentRow]
    sums: dict[str, int]
    """calls, prompt_tokens, completion_tokens and cached over every record, canaries included."""
    first: JudgmentRow | None

    @classmethod
    def of(cls, records: Iterable[JudgmentRow]) -> _Pairs:
        index: dict[str, int] = {}
        # Typed arrays: a machine integer per pair, not a Python object.
        pref, cons, ab, ba = (array("b") for _ in range(4))
        suite, keys, base_words, cand_words = (array("q") for _ in range(4))
        decided_by: Counter[str] = Counter()
        canaries: list[JudgmentRow] = []
        calls = prompt_tokens = completion_tokens = cached = 0
        first: JudgmentRow | None = None
        for r in records:
            if first is None:
                first = r
            calls += r.calls
            prompt_tokens += r.prompt_tokens
            completion_tokens += r.completion_tokens
            cached += r.cached
            if r.canary is not None:
                canaries.append(r)
                continue
            pref.append(PREFERENCE_CODE[r.preference])
            cons.append(CONSISTENT_CODE[r.consistent])
            ab.append(VERDICT_CODE[r.verdict_ab])
            ba.append(VERDICT_CODE[r.verdict_ba])
            suite.append(index.setdefault(r.suite, len(index)))
            keys.append(hash((r.suite, r.item_id)))
            base_words.append(r.base_words)
            cand_words.append(r.candidate_words)
            decided_by[r.decided_by] += 1
        int8 = [np.array(c, dtype=np.int8) for c in (pref, cons, ab, ba)]
        return cls(int8[0], int8[1], int8[2], int8[3], np.array(suite, dtype=np.int64),
                   list(index), np.array(keys, dtype=np.int64), np.array(base_words, dtype=float),
                   np.array(cand_words, dtype=float), decided_by, canaries,
                   {"calls": calls, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                    "cached": cached}, first)

    @property
    def judged(self) -> np.ndarray:
        """A verdict to score: the candidate's, the base's or a tie."""
        return self.preference <= PREFERENCE_CODE["tie"]


def _item_codes(records: Iterable[JudgmentRow]) -> np.ndarray:
    """Each real pair's item as a number (items in first-appearance order): a second walk, made only when
    some item may have several pairs."""
    index: dict[tuple[str, str], int] = {}
    return np.array([index.setdefault((r.suite, r.item_id), len(index)) for r in records if r.canary is None],
                    dtype=np.int64)


def summarize_judgments(records: Sequence[JudgmentRow] | Judgments, rng: np.random.Generator,
                        sequential: SequentialSummary | None = None) -> JudgeSummary:
    """Counts, rates, tests and costs of a judge stage (JSON-serialisable; NaN becomes None). With
    `sequential` (judging stopped early), the figures cover the items judged and the summary carries it.
    `records` is walked once, twice when some item may have several judged pairs."""
    pairs = _Pairs.of(records)
    judged_mask = pairs.judged
    counts = _tally(pairs.preference)
    scores = SCORE_OF_CODE[pairs.preference[judged_mask]]
    boot = paired_bootstrap(np.zeros(len(scores)), scores, rng, resamples=RESAMPLES)
    sign = sign_test(counts["wins"], counts["losses"], counts["ties"])
    base_words, cand_words = pairs.base_words[judged_mask], pairs.candidate_words[judged_mask]
    length = length_controlled_win_rate(scores, cand_words - base_words)
    keys = pairs.keys[judged_mask]
    items = _item_codes(records) if len(np.unique(keys)) < len(keys) else None
    if items is not None and len(np.unique(items[judged_mask])) == len(keys):
        items = None  # a hash collision, not an item judged twice
    per_item = _per_item(items[judged_mask], pairs.preference[judged_mask], rng) if items is not None else {}
    orders = pairs.consistent >= 0
    answered = counts["n"] - counts["failed"]
    first = pairs.first
    summary = {
        "judge": first.judge if first else None, "kind": first.kind if first else None,
        "model": first.model if first else None,
        "decided_by": dict(sorted(pairs.decided_by.items())),
        **counts,
        "judged": len(scores),
        "inconsistent": int((pairs.consistent == 0).sum()),
        "win_rate": float(scores.mean()) if len(scores) else None,
        "win_rate_ci": [boot.low, boot.high],
        "win_rate_ci_method": f"percentile bootstrap over judged pairs, {RESAMPLES} resamples, 95%",
        # Each judged pair taken as one Bernoulli trial: conservative when there are ties (a tie's 0.5
        # varies less than a win or a loss). inf (-> None) when nothing was judged.
        "min_detectable_win_rate": min_detectable_win_rate(len(scores)),
        "decisive_win_rate": {"estimate": sign.win_rate.estimate, "low": sign.win_rate.low,
                              "high": sign.win_rate.high, "method": "Wilson, 95%, ties excluded"},
        "sign_test_p": sign.p_value,
        "sign_test_tie_split_p": sign.tie_split_p_value,
        "swap_consistency": _rate(int((pairs.consistent == 1).sum()), int(orders.sum())),
        **_decisive(pairs, orders),
        "tie_rate": _rate(counts["ties"], len(scores)),
        "parse_failure_rate": _rate(counts["unparsed"], answered),
        "failure_rate": _rate(counts["failed"], counts["n"]),
        "length_controlled_win_rate": length.win_rate if length.n else None,
        "length_control": asdict(length),
        "base_words_mean": float(base_words.mean()) if len(scores) else None,
        "candidate_words_mean": float(cand_words.mean()) if len(scores) else None,
        "canaries": _canaries(pairs.canaries),
        **pairs.sums,
        "by_suite": _suites(pairs, items),
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


def _suites(pairs: _Pairs, items: np.ndarray | None) -> dict[str, Any]:
    """Per suite, in order of first appearance: the counts and the win rate (ties half; per item when
    `items`, each real pair's item code, is given: several samples per item)."""
    result = {}
    for index, suite in enumerate(pairs.suite_names):
        mask = pairs.suites == index
        codes = pairs.preference[mask]
        judged = codes <= PREFERENCE_CODE["tie"]
        values = SCORE_OF_CODE[codes[judged]]
        score: float | None
        if items is not None and len(values):
            score = float(item_means(items[mask][judged].tolist(), values)[1].mean())
        else:
            # A sum of halves and ones is exact in any order: the same number as summing pair by pair.
            score = float(values.sum()) / len(values) if len(values) else None
        result[suite] = {**_tally(codes), "win_rate": score}
    return result


def _per_item(items: np.ndarray, preference: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """The figures that change when items were sampled several times, the item as the unit: win rate
    and its cluster bootstrap CI, the permutation p-value (replacing both sign-test p-values; a tie
    already counts half, so there is nothing to split), the decisive win rate (per item over its
    decisive pairs, items with one) and the MDE over items. The pair-level length control is kept.
    `items` and `preference`: each judged pair's item code and PREFERENCE_CODE."""
    scores = SCORE_OF_CODE[preference]
    groups, item_scores = item_means(items.tolist(), scores)
    boot = paired_bootstrap(np.zeros(len(item_scores)), item_scores, rng, resamples=RESAMPLES)
    p = sign_flip_p(item_scores - 0.5, rng)
    decisive = preference != PREFERENCE_CODE["tie"]
    _, decisive_rates = item_means(items[decisive].tolist(), scores[decisive])
    dboot = paired_bootstrap(np.zeros(len(decisive_rates)), decisive_rates, rng, resamples=RESAMPLES)
    return {
        "items": len(groups), "samples_per_item": len(items) / len(groups),
        "win_rate": float(item_scores.mean()), "win_rate_ci": [boot.low, boot.high],
        "win_rate_ci_method": (f"cluster bootstrap over items (each item's mean pair score), {RESAMPLES} "
                               "resamples, 95%"),
        "min_detectable_win_rate": min_detectable_win_rate(len(groups)),
        "decisive_win_rate": {"estimate": dboot.estimate, "low": dboot.low, "high": dboot.high,
                              "method": "per-item share of decisive pairs won, mean over items; "
                                        "cluster bootstrap, 95%"},
        "sign_test_p": p, "sign_test_tie_split_p": p,
        "significance_test": "sign-flip permutation test of per-item mean scores against 0.5",
    }
