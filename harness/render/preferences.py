"""`harness export RUN_DIR --format preferences`: the judge's verdicts as a preference (DPO) dataset.

`preferences/preferences.jsonl` holds a row per judged pair in TRL's conversational preference form:
`prompt` (the item's conversation as messages), `chosen` and `rejected` (one assistant message each:
the answer the judge preferred, and the other), plus where it came from: suite, item, sample, which
checkpoint each answer is from, the judge (name, kind, model, definition hash) and the run. TRL's
DPOTrainer reads the file as it is (`load_dataset("json", ...)`; the extra columns are ignored).

A pair becomes a row only when the judge preferred one answer in both orders (records.stage_records:
`consistent`). Left out, and counted by reason in `preferences/excluded.json`: canaries (a planted
answer, not the checkpoint's), ties, pairs whose two orders disagreed (recorded as ties: inconsistent),
unparsed and failed judgments, and single-answer grades (each answer graded alone: there is no second
order to agree with).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness.records.run_dir import MANIFEST, RunDir
from harness.records.stage_records import GenerationRecord, JudgmentRecord

FILE, EXCLUDED = "preferences/preferences.jsonl", "preferences/excluded.json"
REASONS = ("canary", "tie", "inconsistent", "unparsed", "failed", "single_grade")


@dataclass
class Preferences:
    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)
    """Judged pairs left out, by reason (REASONS)."""

    def counts(self) -> dict[str, Any]:
        return {"kept": len(self.rows), "judged_pairs": len(self.rows) + sum(self.excluded.values()),
                "excluded": {reason: self.excluded.get(reason, 0) for reason in REASONS}}



def describe(counts: dict[str, Any]) -> str:
    """One line from excluded.json's counts: what was kept, and what was left out and why."""
    left = ", ".join(f"{reason} {n}" for reason, n in counts["excluded"].items() if n) or "none"
    return f"{counts['kept']} preference pairs kept; left out: {left}"


def exclusion(record: JudgmentRecord) -> str | None:
    """Why a judged pair is not a preference (None: it is one)."""
    if record.canary is not None:
        return "canary"
    if record.preference in ("failed", "unparsed"):
        return record.preference
    if record.consistent is None:  # a single-answer grader: one grade per answer, no second order
        return "single_grade"
    if not record.consistent:
        return "inconsistent"
    return "tie" if record.preference == "tie" else None


def preferences(run: RunDir) -> Preferences:
    from harness.report.item_data import load_prompts

    run.finished("judge", "its plan had no judge, so there are no preferences to export")
    run.finished("generations", "there are no answers to export")
    texts: dict[tuple[str, str, str, int], str] = {
        (g.role, g.suite, g.item_id, g.sample_index): g.text for g in run.read("generations", GenerationRecord)}
    prompts = load_prompts(run.path, run.manifest.suites)
    judge = run.manifest.judge
    names = {role: entry.name for role, entry in run.manifest.checkpoints.items()}
    result = Preferences()
    for record in run.read("judge", JudgmentRecord):
        reason = exclusion(record)
        if reason is not None:
            result.excluded[reason] += 1
            continue
        item = prompts.items.get((record.suite, record.item_id))
        if item is None:
            raise ConfigError(str(run.path / MANIFEST), "suites", f"suite {record.suite}: the run keeps no readable "
                              "copy of it (a run from before suite copies, or a damaged copy), so its prompts are "
                              "unknown; a preference row needs them")
        winner, loser = ("candidate", "base") if record.preference == "candidate" else ("base", "candidate")
        key = (record.suite, record.item_id, record.sample_index)
        result.rows.append({
            "prompt": [{"role": role, "content": content} for role, content in item["prompt"]],
            "chosen": [{"role": "assistant", "content": texts[(winner, *key)]}],
            "rejected": [{"role": "assistant", "content": texts[(loser, *key)]}],
            "suite": record.suite, "item_id": record.item_id, "sample_index": record.sample_index,
            "chosen_checkpoint": names.get(winner, winner), "rejected_checkpoint": names.get(loser, loser),
            "judge": record.judge, "judge_kind": record.kind, "judge_model": record.model,
            "judge_definition_sha256": judge.definition_sha256 if judge is not None else None,
            "run_id": run.manifest.run_id})
    return result


def preference_files(run: RunDir) -> dict[str, bytes]:
    found = preferences(run)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in found.rows)
    summary = {**found.counts(), "run_id": run.manifest.run_id, "rule": "both orders preferred the same answer; "
               "canaries, ties, inconsistent, unparsed, failed and single-grade judgments left out"}
    return {FILE: lines.encode("utf-8"), EXCLUDED: (json.dumps(summary, indent=2) + "\n").encode("utf-8")}
