"""forgetting/<role>.results.json: lm-eval's own aggregate results for one checkpoint of a run.

The forgetting stage's records (records/forgetting.*) keep one row per scored document; this file
keeps what lm-eval itself computed from them, so a run can be handed to tools that read
lm-evaluation-harness's results files (`harness export --format lm-eval`). The stage calls
`simple_evaluate` once per task (each task is cached as it finishes), so the file holds, per task,
what lm-eval's own CLI saves for a run of that task alone (its `results_<date>.json`): `results`,
`versions`, `n-shot`, `higher_is_better`, `n-samples`, `configs`, `config`, ... without the
per-sample logs, plus `task_hashes` and the evaluation tracker's fields, made JSON-safe as lm-eval
writes them. A cached rerun writes the same numbers: they are cached with the samples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from harness.errors import ConfigError
from harness.records.run_dir import atomic_write_json
from harness.records.run_files import read_run_file
from harness.records.run_results import SCHEMA_VERSION, RunFile
from harness.records.stage_records import Role

FOLDER = "forgetting"


class ForgettingResults(RunFile):
    schema_version: int = SCHEMA_VERSION
    role: Role
    checkpoint: str
    """The checkpoint's name from its config."""
    lm_eval_version: str
    engine: str
    """lm-eval's model type (hf, vllm, local-completions)."""
    model_args: dict[str, Any]
    """The arguments lm-eval's model was made from (its saved `config.model_args` is null: the harness hands
    `simple_evaluate` a loaded model, once per checkpoint)."""
    tasks: dict[str, dict[str, Any]]
    """Per task, in the plan's order: lm-eval's saved result of a run of that task alone."""


def saved_results(result: Mapping[str, Any], samples: Mapping[str, Sequence[Mapping[str, Any]]],
                  tracker: Mapping[str, Any], default: Callable[[Any], Any]) -> dict[str, Any]:
    """What lm-eval's CLI saves of a `simple_evaluate` result (EvaluationTracker.save_results_aggregated):
    the result without its samples, `task_hashes` (a sha256 over each task's sample hashes, as lm-eval
    computes it) and the tracker's fields, made JSON-safe by lm-eval's own `default` (its
    handle_non_serializable), as lm-eval writes the file."""
    hashes = {name: hashlib.sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                                           for s in rows).encode("utf-8")).hexdigest()
              for name, rows in samples.items()}
    saved = {**{k: v for k, v in result.items() if k != "samples"}, "task_hashes": hashes, **tracker}
    return cast(dict[str, Any], json.loads(json.dumps(saved, default=default, ensure_ascii=False)))


def results_file(run_dir: Path, role: str) -> Path:
    return run_dir / FOLDER / f"{role}.results.json"


def write_forgetting_results(run_dir: Path, results: ForgettingResults) -> None:
    """Atomically, before the stage is marked done (a stage is done only when its files are whole)."""
    atomic_write_json(results_file(run_dir, results.role), results.model_dump(mode="json"))


def read_forgetting_results(run_dir: Path, role: str) -> ForgettingResults:
    """One checkpoint's aggregates; a missing file is one line naming it (runs from before they were kept)."""
    path = results_file(run_dir, role)
    if not path.is_file():
        raise ConfigError(str(path), None, "missing: this run is from before the forgetting stage kept lm-eval's "
                          f"aggregate results; rerun the same compare with --run-dir {run_dir} to write them")
    results = read_run_file(path, ForgettingResults)
    if results.role != role:
        raise ConfigError(str(path), "role", f"holds the results of {results.role!r}, expected {role!r}")
    return results
