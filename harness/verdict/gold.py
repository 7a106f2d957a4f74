"""The judge scored on a human-labelled gold set (judge.gold): how often its verdict is the people's.

Each gold pair is judged in both orders like a run's pair; the combined verdict (a side wins only when
both orders pick it, else a tie; stage.combine) is compared with the label. A pair the judge left
unparsed or failed on is a disagreement, so a judge cannot raise its agreement by not answering.
Cohen's kappa discounts the agreement chance alone gives (a judge that always says tie agrees with
every tie label); its categories are A, B, tie and, for the judge, "none" (unparsed or failed).

Where the labels are right, the gold set also shows the judge's biases: position bias (inconsistent
pairs whose two orders picked the same position, as judge_stats counts it on a run's pairs) and length
bias (how often the judge picks the longer answer beside how often the labels do).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from harness.records.run_results import GoldAgreement, GoldLengthBias
from harness.records.stage_records import JudgmentRecord

AS_LABEL = {"base": "A", "candidate": "B", "tie": "tie"}
"""A gold pair's preference as a label: answer_a sits in the base's seat."""


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """(p_observed - p_chance) / (1 - p_chance); None when chance agreement is already certain."""
    n = len(first)
    if n == 0 or n != len(second):
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    left, right = Counter(first), Counter(second)
    chance = sum(left[c] * right[c] for c in left) / (n * n)
    return None if chance == 1.0 else (observed - chance) / (1.0 - chance)


def gold_agreement(records: Sequence[JudgmentRecord], labels: Sequence[str], sha256: str) -> GoldAgreement:
    verdicts = [AS_LABEL.get(r.preference, "none") for r in records]
    agreed = sum(v == label for v, label in zip(verdicts, labels))
    decided = [r for r in records if r.consistent is not None]
    confusion = {label: dict(Counter(v for v, lab in zip(verdicts, labels) if lab == label))
                 for label in ("A", "B", "tie")}
    return GoldAgreement(items=len(records), agreed=agreed, agreement=agreed / len(records) if records else None,
                         kappa=cohen_kappa(verdicts, list(labels)),
                         swap_consistency=sum(bool(r.consistent) for r in decided) / len(decided) if decided else None,
                         unparsed=sum(r.preference == "unparsed" for r in records),
                         failed=sum(r.preference == "failed" for r in records), confusion=confusion, sha256=sha256,
                         position_bias=position_bias(records), length_bias=length_bias(records, labels))


def position_bias(records: Sequence[JudgmentRecord]) -> dict[str, int]:
    """Inconsistent pairs whose orders both picked A ("first") or both picked B ("second")."""
    flipped = [r.verdict_ab for r in records if r.consistent is False and r.verdict_ab == r.verdict_ba]
    return {"first": flipped.count("A"), "second": flipped.count("B")}


def length_bias(records: Sequence[JudgmentRecord], labels: Sequence[str]) -> GoldLengthBias | None:
    """Over pairs whose answers differ in words: the judge's and the labels' share for the longer answer."""
    judge_longer: list[bool] = []
    label_longer: list[bool] = []
    in_ties: list[bool] = []
    for record, label in zip(records, labels):
        if record.base_words == record.candidate_words:
            continue
        longer = "A" if record.base_words > record.candidate_words else "B"
        picked = AS_LABEL.get(record.preference) == longer
        judge_longer.append(picked)
        label_longer.append(label == longer)
        if label == "tie":
            in_ties.append(picked)
    if not judge_longer:
        return None
    return GoldLengthBias(pairs=len(judge_longer), judge_longer=sum(judge_longer) / len(judge_longer),
                          label_longer=sum(label_longer) / len(label_longer),
                          judge_longer_in_ties=sum(in_ties) / len(in_ties) if in_ties else None)
