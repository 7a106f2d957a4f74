"""`harness export RUN_DIR --format ...`: a finished run in the formats other tools read.

- `lm-eval`: lm-evaluation-harness's results file for each checkpoint (`lm-eval/<role>/results_<date>.json`,
  named as lm-eval names it, dated when lm-eval evaluated), laid out as lm-eval's CLI saves the result of
  `simple_evaluate` (`results`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, `configs`, `config`,
  `task_hashes`, ...), from the aggregates the forgetting stage kept (records/forgetting_results.py):
  lm-eval's own numbers, not recomputed.
- `alpaca-eval`: AlpacaEval's `model_outputs.json` for each checkpoint (`alpaca-eval/<role>/`): a list of
  {instruction, output, generator, dataset, item_id}, sample 0 of each suite item.
- `table`: one flat table (`table.parquet`, `table.csv`), a row per suite item x sample x checkpoint with
  the prompt, the answer, each check's pass (`check.<name>`), whether the answer passed, and the judge's
  outcome for the pair from the candidate's side with its reasons.
- `preferences`: the judge's consistent verdicts as a DPO dataset in TRL's conversational form
  (render/preferences.py).

Only joins of what the stages stored: the answers, checks and verdicts are joined by
harness.report.item_data (as the report's side-by-side page shows them), and whether an answer
passed is harness.records.outcomes' rule. Every file is built in memory before the first is
written, and each is written atomically (temp file + rename), so a failed export leaves nothing
half-written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.records.forgetting_results import ForgettingResults, read_forgetting_results, results_file
from harness.records.run_dir import MANIFEST, RunDir, atomic_write_bytes
from harness.records.stage_records import ROLES, CheckRecord, GenerationRecord, JudgmentRecord
from harness.render.preferences import preference_files

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("lm-eval", "alpaca-eval", "table", "preferences")
PER_TASK = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
            "task_hashes")
"""The keys of lm-eval's results file that map a task (or group) name to its entry."""
SORTED = ("configs", "versions", "n-shot", "higher_is_better")
"""The ones lm-eval writes sorted by task name (EvalAcc._to_eval_results)."""
Files = dict[str, bytes]
"""Relative path under the export folder -> content."""


def export_run(run_dir: Path, fmt: str, out: Path | None = None) -> list[Path]:
    """Write `fmt` of the run at `run_dir` under `out` (default RUN_DIR/export); the paths written."""
    builders: dict[str, Callable[[RunDir], Files]] = {
        "lm-eval": lm_eval_files, "alpaca-eval": alpaca_eval_files, "table": table_files,
        "preferences": preference_files}
    if fmt not in builders:
        raise ConfigError(None, "--format", f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    run = RunDir.open(run_dir)
    files = builders[fmt](run)
    target = out if out is not None else run_dir / "export"
    if target.exists() and not target.is_dir():
        raise ConfigError(str(target), "--out", "is a file; expected a directory to write the export into")
    written = []
    for name, data in files.items():
        path = target / name
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise ConfigError(str(path), None, f"cannot be written: {exc.strerror or exc}") from None
        written.append(path)
    return written


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------- lm-eval
def lm_eval_files(run: RunDir) -> Files:
    run.finished("forgetting", "its plan had no forgetting tasks, so there are no lm-eval results to export")
    tasks = [t.name for t in run.manifest.forgetting.tasks]
    files: Files = {}
    for role in ROLES:
        kept = read_forgetting_results(run.path, role)
        if not tasks or sorted(kept.tasks) != sorted(tasks):
            raise ConfigError(str(results_file(run.path, role)), "tasks", f"holds {', '.join(kept.tasks) or 'none'}; "
                              f"the run's forgetting tasks are {', '.join(tasks)}")
        results = lm_eval_results(kept)
        files[f"lm-eval/{role}/results_{_date_id(results.get('date'), run)}.json"] = _json(results)
    return files


def _date_id(date: Any, run: RunDir) -> str:
    """The date in lm-eval's file name (EvaluationTracker.date_id: an ISO time with '-' for ':'), here of
    when lm-eval evaluated (its `date`, in UTC; kept through cached reruns), else when the run started."""
    when = (datetime.fromtimestamp(date, timezone.utc) if isinstance(date, (int, float))
            else datetime.fromisoformat(run.manifest.created_at).astimezone(timezone.utc))
    return when.replace(tzinfo=None).isoformat().replace(":", "-")


def lm_eval_results(kept: ForgettingResults) -> dict[str, Any]:
    """One checkpoint's tasks in one results file of lm-eval's layout, as its CLI saves a run of these
    tasks together. The stage ran each task alone (one `simple_evaluate` call each, cached per task), so
    the per-task entries are merged, the run-level fields are the first task's run's, and the evaluation
    time is their sum. `config.model_args`, which lm-eval leaves null when handed a loaded model, gets
    the arguments the model was made from."""
    runs = list(kept.tasks.values())
    merged = dict(runs[0])  # lm-eval's key order
    for key in PER_TASK:
        parts = [r[key] for r in runs if isinstance(r.get(key), dict)]
        if parts:
            entries = {name: value for part in parts for name, value in part.items()}
            merged[key] = dict(sorted(entries.items())) if key in SORTED else entries
    config = dict(merged.get("config") or {})
    if config.get("model_args") is None:
        config["model_args"] = kept.model_args
    merged["config"] = config
    seconds = [float(r["total_evaluation_time_seconds"]) for r in runs if r.get("total_evaluation_time_seconds")]
    if seconds:
        merged["total_evaluation_time_seconds"] = str(sum(seconds))
    return merged


# ---------------------------------------------------------------------------- answers
def prompt_text(prompt: Sequence[tuple[str, str]] | None) -> str | None:
    """A suite item's conversation as one text: the user's message when it is all there is, else every
    turn in its own paragraph after its role ("system: ...", "user: ...")."""
    if not prompt:
        return None
    if len(prompt) == 1 and prompt[0][0] == "user":
        return prompt[0][1]
    return "\n\n".join(f"{role}: {content}" for role, content in prompt)


def _value(value: Any) -> Any:
    """The value, or None for a missing one as pandas gives it back from a join (NaN, NA)."""
    from pandas import isna

    return None if value is None or (not isinstance(value, (str, list, tuple)) and isna(value)) else value


def _items(run: RunDir) -> pd.DataFrame:
    """The run's answers side by side with their checks and verdicts: the report's own join."""
    import pandas as pd

    from harness.report.item_data import items_table, load_prompts, real_verdicts

    run.finished("generations", "there are no answers to export")
    frames: dict[str, pd.DataFrame | None] = {}
    for stage, model in (("generations", GenerationRecord), ("checks", CheckRecord), ("judge", JudgmentRecord)):
        records = run.read(stage, model) if run.finished(stage) else []
        frames[stage] = pd.DataFrame([r.model_dump() for r in records]) if records else None
    generations = frames["generations"]
    if generations is None:
        raise ConfigError(str(run.path / "records"), None, "the generations stage holds no answers")
    judge = frames["judge"]
    verdicts = real_verdicts(judge, None) if judge is not None else None
    return items_table(generations, frames["checks"], verdicts, load_prompts(run.path, run.manifest.suites))


def _names(run: RunDir) -> dict[str, str]:
    return {role: entry.name if (entry := run.manifest.checkpoints.get(role)) else role for role in ROLES}


def alpaca_eval_files(run: RunDir) -> Files:
    """Sample 0 of every item each checkpoint answered, in the same order for both."""
    items = _items(run)
    names = _names(run)
    files: Files = {}
    for role in ROLES:
        outputs = []
        for row in items[items["sample_index"] == 0].to_dict("records"):
            if _value(row[f"{role}_text"]) is None:
                continue
            instruction = prompt_text(row["prompt"])
            if instruction is None:
                raise ConfigError(str(run.path / MANIFEST), "suites", f"suite {row['suite']}: the run keeps no "
                                  "readable copy of it (a run from before suite copies, or a damaged copy), so "
                                  "its instructions are unknown; AlpacaEval needs them")
            outputs.append({"instruction": instruction, "output": row[f"{role}_text"], "generator": names[role],
                            "dataset": row["suite"], "item_id": row["item_id"]})
        files[f"alpaca-eval/{role}/model_outputs.json"] = _json(outputs)
    return files


# ---------------------------------------------------------------------------- table
def answers_table(run: RunDir) -> pd.DataFrame:
    """A row per suite item x sample x checkpoint (the answers it has): prompt, reference, answer,
    `check.<name>` per check (None where the answer has no such check), passed (records/outcomes.py),
    and the judge's outcome for the pair from the candidate's side (win, loss, tie, inconsistent,
    unparsed, failed; the same on both rows of the pair) with its reasons in both orders."""
    import pandas as pd

    items = _items(run)
    names = _names(run)
    judge = run.manifest.judge.name if run.manifest.judge is not None else None
    checks = sorted({name for role in ROLES for answer in items[f"{role}_checks"] for name, _, _ in answer})
    rows = []
    for row in items.to_dict("records"):
        for role in ROLES:
            if _value(row[f"{role}_text"]) is None:
                continue
            passed = {name: ok for name, ok, _ in row[f"{role}_checks"]}
            outcome = _value(row["verdict"])
            rows.append({
                "suite": row["suite"], "item_id": row["item_id"], "sample_index": int(row["sample_index"]),
                "role": role, "checkpoint": names[role], "prompt": prompt_text(row["prompt"]),
                "reference": _value(row["reference"]), "answer": row[f"{role}_text"],
                "finish_reason": row[f"{role}_finish_reason"],
                **{f"check.{name}": passed.get(name) for name in checks},
                "passed": _value(row[f"{role}_passed"]), "judge": judge if outcome is not None else None,
                "judge_outcome": outcome, "judge_reason_ab": _value(row["reason_ab"]),
                "judge_reason_ba": _value(row["reason_ba"])})
    columns = ["suite", "item_id", "sample_index", "role", "checkpoint", "prompt", "reference", "answer",
               "finish_reason", *(f"check.{name}" for name in checks), "passed", "judge", "judge_outcome",
               "judge_reason_ab", "judge_reason_ba"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in (*(f"check.{name}" for name in checks), "passed"):
        frame[column] = frame[column].astype("boolean")  # True, False or NA (no such check on this answer)
    frame["sample_index"] = frame["sample_index"].astype("int64")
    return frame


def table_files(run: RunDir) -> Files:
    frame = answers_table(run)
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    return {"table.parquet": parquet.getvalue(), "table.csv": frame.to_csv(index=False).encode("utf-8")}
