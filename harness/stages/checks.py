"""Checks stage: every rule check of every suite item on every answer -> CheckRecords.

The checks themselves (what `contains`, `regex`, ... mean) are part of the suite files' vocabulary:
harness/config/checks.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.config.suites import Suite
from harness.records.stage_records import CheckRecord, GenerationRecord


def run_checks(suites: Sequence[Suite], generations: Iterable[GenerationRecord]) -> list[CheckRecord]:
    """Every check of every item on every answer, in generation order."""
    items = {(s.name, item.id): (s, item) for s in suites for item in s.items}
    records = []
    for gen in generations:
        suite, item = items[(gen.suite, gen.item_id)]
        seen: dict[str, int] = {}
        for check in suite.checks_for(item):
            kind = check.type
            seen[kind] = seen.get(kind, 0) + 1
            name = kind if seen[kind] == 1 else f"{kind}#{seen[kind]}"
            passed, detail = check.run(gen.text, item.reference)
            records.append(CheckRecord(role=gen.role, suite=gen.suite, item_id=gen.item_id,
                                       sample_index=gen.sample_index, check=name, passed=passed, detail=detail))
    return records
