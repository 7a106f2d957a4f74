"""Per-item views of a run for the report: answers side by side, their checks
and judge verdicts, the forgetting flips, and the filters over them.

Only joins and filters of stored records; nothing here scores or tests (whether
an answer passed is harness.records.outcomes' rule). Prompts are not in the
records: they come from the run's own copy of each suite (suites/ in the run
dir), never from the file the suite was read from, which may have changed
since; an item without one is shown by its id alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from harness.errors import ConfigError
from harness.records.manifest import SuiteEntry
from harness.records.outcomes import answer_outcomes

if TYPE_CHECKING:
    import pandas as pd

KEY = ["suite", "item_id", "sample_index"]
VERDICTS = ("win", "loss", "tie", "inconsistent", "unparsed", "failed")
"""Judge outcomes per item, from the candidate's side."""
_PREFERENCE = {"candidate": "win", "base": "loss", "tie": "tie", "unparsed": "unparsed", "failed": "failed"}


@dataclass(frozen=True)
class SuitePrompts:
    """Prompts, references and tags of the run's suite items, read from the run's copies."""

    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Suites whose items are shown by id only (or whose copy was edited), one line each."""


def load_prompts(run_dir: Path, suites: Sequence[SuiteEntry]) -> SuitePrompts:
    """The items of each suite as the run asked them (the manifest's entries, copies relative to run_dir)."""
    from harness.config.suites import load_suite

    prompts = SuitePrompts()
    for entry in suites:
        if entry.run_copy is None:
            prompts.notes.append(f"suite {entry.name}: this run predates suite copies (schema 1); "
                                 "items are shown by id only")
            continue
        try:
            suite = load_suite(run_dir / entry.run_copy)
        except ConfigError as exc:
            prompts.notes.append(f"suite {entry.name}: the run's copy cannot be read ({exc}); "
                                 "items are shown by id only")
            continue
        if suite.content_hash != entry.sha256:  # the copy is written byte for byte: someone edited it
            prompts.notes.append(f"suite {entry.name}: the run's copy {entry.run_copy} was edited after the run; "
                                 "prompts may not match the answers")
        for item in suite.items:
            prompts.items[(entry.name, item.id)] = {
                "prompt": [(m.role, m.content) for m in item.conversation],
                "reference": item.reference, "tags": list(item.tags)}
    return prompts


def _answers(generations: pd.DataFrame) -> pd.DataFrame:
    """One row per suite item and sample, with the base's and the candidate's answer."""
    import pandas as pd

    cols = ["text", "finish_reason", "completion_tokens"]
    sides = []
    for role in ("base", "candidate"):
        part = generations[generations["role"] == role].drop_duplicates(KEY, keep="last")
        sides.append(part[KEY + cols].rename(columns={c: f"{role}_{c}" for c in cols}).set_index(KEY))
    return pd.concat(sides, axis=1, join="outer").reset_index()


class _CheckRow(NamedTuple):
    """A check record's fields, as harness.records.outcomes reads them."""

    role: str
    suite: str
    item_id: str
    sample_index: int
    check: str
    passed: bool
    detail: str


def _checks(checks: pd.DataFrame) -> pd.DataFrame:
    """Per answer: whether it passed, the failed check names, and every (check, passed, detail).

    Plain loops over the columns' lists: pandas' groupby with list aggregation is ~50x slower on 60,000
    check rows, and itertuples() 4x.
    """
    import pandas as pd

    rows = list(map(_CheckRow._make, zip(*(checks[c].tolist() for c in _CheckRow._fields))))
    per_answer: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        row = per_answer.setdefault((r.suite, r.item_id, int(r.sample_index)), {})
        row.setdefault(f"{r.role}_checks", []).append((r.check, bool(r.passed), r.detail))
        failed = row.setdefault(f"{r.role}_failed", [])
        if not r.passed:
            failed.append(r.check)
    for (role, suite, item_id, sample), passed in answer_outcomes(rows).items():
        per_answer[(suite, item_id, sample)][f"{role}_passed"] = passed
    return pd.DataFrame([{"suite": k[0], "item_id": k[1], "sample_index": k[2], **v} for k, v in per_answer.items()])


def judge_names(judge: pd.DataFrame | None) -> list[str]:
    if judge is None or judge.empty or "judge" not in judge:
        return []
    return sorted(str(j) for j in judge["judge"].dropna().unique())


def real_verdicts(judge: pd.DataFrame, name: str | None) -> pd.DataFrame:
    """One judge's verdicts on suite items (canaries are shown with the judge's reliability)."""
    rows = judge
    if name is not None and "judge" in rows:
        rows = rows[rows["judge"] == name]
    if "canary" in rows:
        rows = rows[rows["canary"].isna()]
    return rows


def canary_rows(judge: pd.DataFrame | None) -> pd.DataFrame | None:
    if judge is None or judge.empty or "canary" not in judge:
        return None
    rows = judge[judge["canary"].notna()]
    cols = [c for c in ("judge", "canary", "suite", "item_id", "preference", "verdict_ab", "verdict_ba")
            if c in rows]
    return rows[cols].reset_index(drop=True)


def verdict_label(preference: Any, consistent: Any) -> str | None:
    from pandas import isna

    label = _PREFERENCE.get(preference) if isinstance(preference, str) else None
    # consistent is unknown (None, NaN or NA: an order unparsed, or a single-answer grader), or a bool of some dtype
    disagreed = not isna(consistent) and not bool(consistent)
    return "inconsistent" if label == "tie" and disagreed else label


def _verdicts(judge: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("verdict_ab", "verdict_ba", "reason_ab", "reason_ba", "preference", "consistent",
                        "score_base", "score_candidate", "error") if c in judge]
    frame = judge.drop_duplicates(KEY, keep="last")[KEY + cols].copy()
    frame["verdict"] = [verdict_label(p, c) for p, c in zip(frame.get("preference", []),
                                                             frame.get("consistent", [None] * len(frame)))]
    return frame


def items_table(generations: pd.DataFrame, checks: pd.DataFrame | None, judge: pd.DataFrame | None,
                prompts: SuitePrompts) -> pd.DataFrame:
    """Everything the side-by-side page shows, one row per suite item and sample."""
    frame = _answers(generations)
    if checks is not None and not checks.empty:
        frame = frame.merge(_checks(checks), on=KEY, how="left")
    if judge is not None and not judge.empty:
        frame = frame.merge(_verdicts(judge), on=KEY, how="left")
    for column in ("base_passed", "candidate_passed", "verdict", "verdict_ab", "verdict_ba", "reason_ab",
                   "reason_ba", "score_base", "score_candidate", "error"):
        if column not in frame:
            frame[column] = None
    for column in ("base_failed", "candidate_failed", "base_checks", "candidate_checks"):
        frame[column] = [v if isinstance(v, list) else [] for v in frame.get(column, [None] * len(frame))]
    info = [prompts.items.get((s, i), {}) for s, i in zip(frame["suite"], frame["item_id"])]
    frame["prompt"] = [d.get("prompt") for d in info]
    frame["reference"] = [d.get("reference") for d in info]
    frame["tags"] = [d.get("tags", []) for d in info]
    frame["key"] = [f"{s}/{i}/{n}" for s, i, n in zip(frame["suite"], frame["item_id"], frame["sample_index"])]
    frame["haystack"] = [" ".join(str(x) for x in parts).casefold() for parts in zip(
        frame["key"], [" ".join(c for _, c in p) if p else "" for p in frame["prompt"]],
        frame["base_text"].fillna(""), frame["candidate_text"].fillna(""),
        frame["reason_ab"].fillna(""), frame["reason_ba"].fillna(""))]
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ItemFilter:
    suites: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    failed_checks: tuple[str, ...] = ()
    """"role: check" strings, e.g. "candidate: number_matches_reference"."""
    text: str = ""


def failed_check_options(items: pd.DataFrame) -> list[str]:
    return sorted({f"{role}: {check}" for role in ("base", "candidate")
                   for checks in items[f"{role}_failed"] for check in checks})


def filter_items(items: pd.DataFrame, how: ItemFilter) -> pd.DataFrame:
    """The rows that pass every filter given (an empty filter keeps everything)."""
    mask = items["suite"].notna()
    if how.suites:
        mask &= items["suite"].isin(how.suites)
    if how.tags:
        wanted = set(how.tags)
        mask &= items["tags"].map(lambda tags: bool(wanted.intersection(tags)))
    if how.verdicts:
        mask &= items["verdict"].isin(how.verdicts)
    if how.failed_checks:
        pairs = [tuple(part.strip() for part in f.split(":", 1)) for f in how.failed_checks]
        hit = items["suite"].isna()
        for role, check in pairs:
            hit |= items[f"{role}_failed"].map(lambda failed, c=check: c in failed)
        mask &= hit
    if how.text.strip():
        mask &= items["haystack"].str.contains(how.text.strip().casefold(), regex=False)
    return items[mask]


def forgetting_flips(records: pd.DataFrame, lost: bool = True) -> pd.DataFrame:
    """Documents the base got right and the candidate wrong (or, with lost=False, the reverse)."""
    import pandas as pd

    cols = ["task", "doc_id", "prompt", "target", "base prediction", "candidate prediction"]
    if records.empty:
        return pd.DataFrame(columns=cols)
    key = ["task", "doc_id"]
    base = records[records["role"] == "base"].drop_duplicates(key, keep="last").set_index(key)
    cand = records[records["role"] == "candidate"].drop_duplicates(key, keep="last").set_index(key)
    both = base.add_suffix("_base").join(cand.add_suffix("_cand"), how="inner")
    flipped = both[both["correct_base"].astype(bool) & ~both["correct_cand"].astype(bool)] if lost else \
        both[~both["correct_base"].astype(bool) & both["correct_cand"].astype(bool)]
    out = flipped.reset_index().rename(columns={"prompt_base": "prompt", "target_base": "target",
                                                "prediction_base": "base prediction",
                                                "prediction_cand": "candidate prediction"})
    return out[cols].sort_values(key, kind="stable").reset_index(drop=True)


def consistency_changes(checks: pd.DataFrame) -> pd.DataFrame:
    """Items answered several times where one side was right every time and the other only some
    times: "less consistent" when the candidate lost the base's reliability, "more consistent" for
    the reverse. Each side's count is its samples that passed every check (records/outcomes.py), out of
    its samples of the item (both whole numbers, so the table sorts by them)."""
    import pandas as pd

    from harness.records.outcomes import answer_outcomes

    columns = ["suite", "item_id", "base right", "base samples", "candidate right", "candidate samples", "change"]
    if checks.empty:
        return pd.DataFrame(columns=columns)
    counts: dict[tuple[str, str], dict[str, list[int]]] = {}
    for (role, suite, item, _), passed in answer_outcomes(checks.itertuples(index=False)).items():
        tally = counts.setdefault((suite, item), {}).setdefault(role, [0, 0])
        tally[0] += passed
        tally[1] += 1
    rows = []
    for (suite, item), sides in sorted(counts.items()):
        (b, bn), (c, cn) = sides.get("base", [0, 0]), sides.get("candidate", [0, 0])
        if min(bn, cn) < 2:
            continue
        change = ("less consistent" if b == bn and 0 < c < cn else
                  "more consistent" if c == cn and 0 < b < bn else None)
        if change:
            rows.append({"suite": suite, "item_id": item, "base right": b, "base samples": bn,
                         "candidate right": c, "candidate samples": cn, "change": change})
    return pd.DataFrame(rows, columns=columns)
