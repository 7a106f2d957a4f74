"""The outcome of an answer and the pairing of answers: one home for both rules.

An answer is one (role, suite, item, sample). It passes when every check on it passed; an
answer without checks has no outcome. Base and candidate are compared only on the answers
both sides have an outcome for (the same item and sample), so every rate the harness prints
is the paired rate its gates decide on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
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


def answer_outcomes(records: Iterable[CheckResult] | CheckedAnswers) -> dict[AnswerKey, bool]:
    """Pass (every check passed) or fail, per answer with at least one check."""
    if isinstance(records, CheckedAnswers):
        return records.outcomes
    return {key: all(checks.values()) for key, checks in checks_by_answer(records).items()}


Side = tuple[str, str]
"""(suite, role): the answers of one checkpoint to one suite."""
SampleKey = tuple[str, int]
"""(item_id, sample_index): one answer of a side."""


@dataclass
class CheckedAnswers:
    """A run's check records as the statistics and the summary read them: each answer's checks by name
    (checks_by_answer) and whether it passed (answer_outcomes), by side, gathered in one pass (the checks
    stage gathers them while it checks), so that nothing after the checks stage walks every check record
    again, or needs them kept."""

    sides: dict[Side, dict[SampleKey, dict[str, bool]]] = field(default_factory=dict)
    """(suite, role) -> (item_id, sample_index) -> the answer's checks by name."""
    passed: dict[Side, dict[SampleKey, bool]] = field(default_factory=dict)
    """(suite, role) -> (item_id, sample_index) -> every check passed."""

    @classmethod
    def of(cls, records: Iterable[CheckResult] | CheckedAnswers) -> CheckedAnswers:
        if isinstance(records, CheckedAnswers):
            return records
        checked = cls()
        for (role, suite, item, sample), named in checks_by_answer(records).items():
            checked.add((suite, role), (item, sample), named)
        return checked

    _shared: dict[tuple[tuple[str, bool], ...], dict[str, bool]] = field(default_factory=dict, repr=False,
                                                                           compare=False)
    """Equal results share one dict (read-only): a suite's answers have few distinct ones, and a large run
    would otherwise hold a dict per answer."""

    def add(self, side: Side, key: SampleKey, named: dict[str, bool]) -> None:
        """One answer's checks by name (each answer once)."""
        named = self._shared.setdefault(tuple(named.items()), named)
        self.sides.setdefault(side, {})[key] = named
        self.passed.setdefault(side, {})[key] = all(named.values())

    def named(self, role: str, suite: str, item_id: str, sample_index: int) -> dict[str, bool] | None:
        """One answer's checks by name; None when it has none."""
        return self.sides.get((suite, role), {}).get((item_id, sample_index))

    @cached_property
    def outcomes(self) -> dict[AnswerKey, bool]:
        """answer_outcomes: pass or fail, per answer."""
        return {(role, suite, item, sample): ok for (suite, role), answers in self.passed.items()
                for (item, sample), ok in answers.items()}

    def paired(self) -> dict[str, Paired]:
        """paired_outcomes of every suite."""
        return pair_sides(self.passed)


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
    return paired_by_suite(outcomes).get(suite, Paired([], [], []))


def paired_by_suite(outcomes: dict[AnswerKey, bool]) -> dict[str, Paired]:
    """paired_outcomes of every suite, in one pass over the outcomes."""
    sides: dict[Side, dict[SampleKey, bool]] = {}
    for (role, suite, item, sample), passed in outcomes.items():
        sides.setdefault((suite, role), {})[(item, sample)] = passed
    return pair_sides(sides)


def pair_sides(sides: dict[Side, dict[SampleKey, bool]]) -> dict[str, Paired]:
    """Per suite, the outcomes of the answers both sides have one for, in item order."""
    result = {}
    for suite in dict.fromkeys(suite for suite, _ in sides):
        base, cand = sides.get((suite, "base"), {}), sides.get((suite, "candidate"), {})
        # In the order answered, which is usually item order already (sorting that is one pass), and
        # usually every answer has its pair.
        keys = sorted(base if base.keys() == cand.keys() else [k for k in base if k in cand])
        result[suite] = Paired(keys, list(map(base.__getitem__, keys)), list(map(cand.__getitem__, keys)))
    return result
