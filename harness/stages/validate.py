"""`harness validate FILE`: check one file as `harness compare` would before it loads any model, and
everything the file names (suites, forgetting tasks, the judge, a checkpoint's training data).

Reading templates and data is fine here; loading a model is not. Bad input is a ConfigError.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from harness.config.loading import load_checkpoint, load_plan
from harness.config.schema import CheckpointConfig
from harness.config.suites import load_suite, load_suites
from harness.config.yamlio import check_unique_keys, read_yaml, stat_path
from harness.errors import ConfigError

KINDS = ("checkpoint", "plan", "policy", "suite", "judge", "task", "gold")


def validate_file(file: Path, kind: str = "auto") -> str:
    """What the file is (for the `ok:` line); a ConfigError when it, or anything it names, is bad."""
    from harness.stages.forgetting import load_task_file, resolve_tasks
    from harness.stages.judge.prompt import load_definition
    from harness.stages.judge.stage import load_judge
    from harness.verdict.gate import load_policy

    if kind not in (*KINDS, "auto"):
        raise ConfigError(None, "--kind", f"unknown kind {kind!r}; expected {', '.join(KINDS)} or auto")
    found = stat_path(file, str(file), None)
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise ConfigError(str(file), None, "is a directory; give one file (a suite directory is checked through "
                          "the plan that names it)")
    if kind == "auto":
        kind = guess_kind(file)
    if kind == "checkpoint":
        config = load_checkpoint(file)
        if config.plan is not None:
            load_suites(config.plan.suites, str(file))
            if config.plan.forgetting:
                _unique_task_keys(resolve_tasks(config.plan.forgetting, str(file)))
            if config.plan.judge:
                load_judge(config.plan.judge, str(file))
        source = config.model or f"trained from {config.train.base if config.train else '?'}"
        return f"checkpoint {config.name!r} ({source}, backend {config.backend}){training_data(config)}"
    if kind == "plan":
        plan = load_plan(file)
        tasks = resolve_tasks(plan.forgetting, str(file), "forgetting") if plan.forgetting else []
        _unique_task_keys(tasks)
        if plan.judge:
            load_judge(plan.judge, str(file))
        return f"plan with {len(load_suites(plan.suites, str(file)))} suite(s), {len(tasks)} forgetting task(s)"
    if kind == "judge":
        loaded = load_definition(str(file.resolve()), str(file))
        return f"judge {loaded.definition.name!r} ({loaded.definition.mode})"
    if kind == "task":
        check_unique_keys(file)  # lm-eval's loader (include:, !function) keeps the last of two
        return f"lm-eval task {load_task_file(file).name!r}"
    if kind == "policy":
        return f"policy with {len(load_policy(file))} gate(s)"
    if kind == "gold":
        from harness.stages.judge.gold import load_gold

        labels = load_gold(str(file), str(file)).labels
        counts = ", ".join(f"{label} {labels.count(label)}" for label in ("A", "B", "tie"))
        return f"judge gold set with {len(labels)} labelled pair(s) ({counts})"
    suite = load_suite(file)
    return f"suite {suite.name!r} with {len(suite.items)} items"


def _unique_task_keys(tasks: list[Any]) -> None:
    for task in tasks:
        if task.source != "lm-eval":  # a task YAML file (lm-eval's loader keeps the last of two keys)
            check_unique_keys(Path(task.source))


def training_data(config: CheckpointConfig) -> str:
    """A train: block's data, read and parsed as training reads it (the same max_bad_share rule)."""
    if config.train is None:
        return ""
    from harness.stages.train.data import load_conversations
    from harness.stages.train.preference_data import load_preferences

    train = config.train
    paths = [Path(p) for p in train.data]
    if train.method == "dpo":
        pairs = load_preferences(paths, train.max_bad_share)
        bad = f", {len(pairs.bad_rows)} bad row(s) skipped" if pairs.bad_rows else ""
        return f"; training data: {len(pairs.pairs)} preference pair(s){bad}"
    # method sft: the validator refused format preference
    loaded = load_conversations(paths, "auto" if train.format == "preference" else train.format, train.max_bad_share)
    bad = f", {len(loaded.bad_rows)} bad row(s) skipped" if loaded.bad_rows else ""
    return f"; training data: {len(loaded.conversations)} conversation(s){bad}"


def _first_row_keys(file: Path) -> set[str]:
    """The keys of a JSONL file's first row ({} when it is not a JSON object): a gold set's rows hold two answers."""
    import json

    try:
        with file.open(encoding="utf-8") as lines:
            first = next((line for line in lines if line.strip()), "")
        row = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return set()  # the suite reader names what is wrong
    return set(row) if isinstance(row, dict) else set()


def guess_kind(file: Path) -> str:
    """The kind of file by its keys; an empty file is a mistake, not a plan of defaults."""
    if file.suffix == ".jsonl":
        return "gold" if _first_row_keys(file) >= {"answer_a", "answer_b"} else "suite"
    data: Any = read_yaml(file)
    if data is None:
        raise ConfigError(str(file), None, "the file is empty; expected a checkpoint, plan, policy, suite, judge or "
                          "task (a plan of defaults is written {})")
    if isinstance(data, dict) and "items" in data:
        return "suite"
    if isinstance(data, dict) and set(data) == {"gates"}:
        return "policy"
    if isinstance(data, dict) and {"mode", "user"} <= set(data):
        return "judge"
    if isinstance(data, dict) and "task" in data and ({"dataset_path", "output_type", "include"} & set(data)):
        return "task"
    if isinstance(data, dict) and {"model", "train", "name", "backend"} & set(data):
        return "checkpoint"
    return "plan"
