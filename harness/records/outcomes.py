"""The outcome of an answer and the pairing of answers: one home for both rules.

An answer is one (role, suite, item, sample). It passes when every check on it passed; an
answer without checks has no outcome. Base and candidate are compared only on the answers
both sides have an outcome for (the same item and sample), so every rate the harness prints
is the paired rate its gates decide on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

AnswerKey = tuple[str, str, str, int]
"""(role, suite, item_id, sample_index)."""


class CheckResult(Protocol):
    """A check record, or any row with its fields (a DataFrame's itertuples())."""

    @property
    def role(self) -> str: ...
    @property
    def suite(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def sample_index(self) -> int: ...
    @property
    def check(self) -> str: ...
    @property
    def passed(self) -> bool: ...


def checks_by_answer(records: Iterable[CheckResult]) -> dict[AnswerKey, dict[str, bool]]:
    """Each answer's checks by name."""
    grouped: dict[AnswerKey, dict[str, bool]] = {}
    for r in records:
        grouped.setdefault((r.role, r.suite, r.item_id, int(r.sample_index)), {})[r.check] = bool(r.passed)
    return grouped


def answer_outcomes(records: Iterable[CheckResult]) -> dict[AnswerKey, bool]:
    """Pass (every check passed) or fail, per answer with at least one check."""
    return {key: all(checks.values()) for key, checks in checks_by_answer(records).items()}


@dataclass(frozen=True)
class Paired:
    keys: list[tuple[str, int]]
    """(item_id, sample_index), sorted."""
    base: list[bool]
    candidate: list[bool]

    @property
    def base_rate(self) -> float | None:
        return sum(self.base) / len(self.base) if self.base else None

    @property
    def candidate_rate(self) -> float | None:
        return sum(self.candidate) / len(self.candidate) if self.candidate else None


def paired_outcomes(outcomes: dict[AnswerKey, bool], suite: str) -> Paired:
    """One suite's outcomes on the answers both sides have one for, in item order."""
    keys = sorted({(item, sample) for role, name, item, sample in outcomes
                   if name == suite and ("base", suite, item, sample) in outcomes
                   and ("candidate", suite, item, sample) in outcomes})
    return Paired(keys, [outcomes[("base", suite, *k)] for k in keys],
                  [outcomes[("candidate", suite, *k)] for k in keys])
