"""Checks stage: every rule check of every suite item on every answer -> CheckRecords.

The checks themselves (what `contains`, `regex`, ... mean) are part of the suite files' vocabulary:
harness/config/checks.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from harness.config.checks import Check
from harness.config.suites import Suite
from harness.records.answers import AnswerRow
from harness.records.outcomes import CheckedAnswers
from harness.records.stage_records import CheckRecord

CHUNK = 8192
"""Check records handed on at a time: the stage holds no more than these."""


def run_checks(suites: Sequence[Suite], generations: Iterable[AnswerRow]) -> list[CheckRecord]:
    """Every check of every item on every answer, in generation order."""
    records: list[CheckRecord] = []
    check_answers(suites, generations, records.extend)
    return records


def check_answers(suites: Sequence[Suite], generations: Iterable[AnswerRow],
                  emit: Callable[[list[CheckRecord]], None]) -> CheckedAnswers:
    """Every check of every item on every answer: the records go to `emit` a chunk at a time, in generation
    order; returns the same results by answer (records.outcomes.checks_by_answer of the records), for the
    statistics, the summary and the offline judges, gathered on the way."""
    items = {(s.name, item.id): (item, _check_names(s.checks_for(item))) for s in suites for item in s.items}
    records: list[CheckRecord] = []
    answers = CheckedAnswers()
    for gen in generations:
        item, checks = items[(gen.suite, gen.item_id)]
        named: dict[str, bool] = {}
        for name, check in checks:
            passed, detail = check.run(gen.text, item.reference)
            records.append(CheckRecord(role=gen.role, suite=gen.suite, item_id=gen.item_id,
                                       sample_index=gen.sample_index, check=name, passed=passed, detail=detail))
            named[name] = passed
        if named:  # (keyed by the suite item's own id: one string for every answer to the item)
            answers.add((gen.suite, gen.role), (item.id, gen.sample_index), named)
        if len(records) >= CHUNK:
            emit(records)
            records = []
    if records:
        emit(records)
    return answers


def _check_names(checks: Sequence[Check]) -> list[tuple[str, Check]]:
    """Each check with its record name: its type, with its position when an item has several of one type."""
    seen: dict[str, int] = {}
    named = []
    for check in checks:
        kind = check.type
        seen[kind] = seen.get(kind, 0) + 1
        named.append((kind if seen[kind] == 1 else f"{kind}#{seen[kind]}", check))
    return named
