"""A human-labelled gold set for the judge (judge.gold): pairs of answers whose better one people chose.

One JSON object per line: `question`, `answer_a`, `answer_b`, `label` ("A", "B" or "tie": which answer
people judged better), an optional `reference` (shown to a reference-guided judge) and an optional `id`
(else gold-<line>). Before the judge sees the run's pairs, the stage puts every gold pair to it exactly
as it puts a run's pair (both orders, the same prompt, parsing, re-asks and cache), answer_a in the
base's seat, and verdict/gold.py scores the verdicts against the labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.config.suites import ID_PATTERN, Suite, SuiteItem
from harness.config.yamlio import stat_path, validate
from harness.engines.checkpoint import sha256_file
from harness.errors import ConfigError
from harness.stages.judge.pairs import Pair

Label = Literal["A", "B", "tie"]
GOLD_SUITE = "gold"


class GoldRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, pattern=ID_PATTERN)] | None = None
    question: Annotated[str, Field(min_length=1)]
    reference: str | None = None
    answer_a: str
    answer_b: str
    label: Label


@dataclass(frozen=True)
class GoldSet:
    path: Path
    sha256: str
    pairs: list[Pair]
    """answer_a in the base's seat, answer_b in the candidate's."""
    labels: list[Label]


def load_gold(path_text: str, file: str) -> GoldSet:
    """Every row validated before any model loads; a bad one is a ConfigError naming the file, line and field."""
    path = Path(path_text)
    found = stat_path(path, file, "judge.gold")
    if found is None or not path.is_file():
        raise ConfigError(file, "judge.gold", f"gold set {path} does not exist")
    rows: list[tuple[int, GoldRow]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(str(path), f"line {number}", f"invalid JSON ({exc.msg})") from None
        rows.append((number, validate(GoldRow, data, str(path), f"line {number}")))
    if not rows:
        raise ConfigError(str(path), None, "the gold set has no rows")
    ids = [row.id or f"gold-{number}" for number, row in rows]
    for (number, _), item_id in zip(rows, ids):
        if ids.count(item_id) > 1:
            raise ConfigError(str(path), f"line {number}.id", f"{item_id!r} is used by more than one row")
    items = [SuiteItem(id=item_id, prompt=row.question, reference=row.reference)
             for (_, row), item_id in zip(rows, ids)]
    digest = sha256_file(path)
    suite = Suite(GOLD_SUITE, path, "the judge's gold set", tuple(items), (), digest)
    pairs = [Pair(suite, item, 0, row.answer_a, row.answer_b) for item, (_, row) in zip(items, rows)]
    return GoldSet(path, digest, pairs, [row.label for _, row in rows])
