"""Reading checkpoint and plan files into the models of harness/config/schema.py.

Every file is validated in full before any model loads. Relative paths are
resolved against the directory of the file that names them, so a config
means the same thing from any working directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config.files import HUB_ID as HUB_ID
from harness.config.files import check_checkpoint_files, check_plan_files
from harness.config.schema import DEMO_SCHEME, CheckpointConfig, PlanConfig
from harness.config.yamlio import read_mapping, read_yaml, validate
from harness.errors import ConfigError


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1


def _is_task_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".yaml", ".yml")) or value.startswith((".", "~"))


def _resolve_path(value: str, base: Path) -> Path:
    """`value` against `base`, symlinks resolved where they can be. Never raises: a path that cannot be
    resolved (a symlink loop, a name too long) stays as written, made absolute, and is reported on its
    field after the fields are validated (harness/config/files.py)."""
    path = base / os.path.expanduser(value)
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(path))


def _is_there(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return True  # something that cannot be looked at is a path (the check after validation says why)


def _resolve_model_field(raw: dict[str, Any], key: str, base: Path) -> None:
    """A directory (existing, or written like a path) becomes absolute; a hub id or demo name stays."""
    value = raw.get(key)
    if not isinstance(value, str) or not value or (key == "model" and value.startswith(DEMO_SCHEME)):
        return
    path = _resolve_path(value, base)
    if key in ("adapter", "chat_template") or _looks_like_path(value) or _is_there(path):
        raw[key] = str(path)


def resolve_plan_paths(plan: Any, base: Path) -> Any:
    if isinstance(plan, dict) and isinstance(plan.get("suites"), list):
        plan = dict(plan)
        plan["suites"] = [str(_resolve_path(s, base)) if isinstance(s, str) else s for s in plan["suites"]]
    forgetting = plan.get("forgetting") if isinstance(plan, dict) else None
    if isinstance(forgetting, dict) and isinstance(forgetting.get("tasks"), list):
        # lm-eval task names never hold a slash: an entry with one (or a YAML file name) is a path.
        tasks = [str(_resolve_path(t, base)) if isinstance(t, str) and _is_task_path(t) else t
                 for t in forgetting["tasks"]]
        plan = {**plan, "forgetting": {**forgetting, "tasks": tasks}}
    judge = plan.get("judge") if isinstance(plan, dict) else None
    if isinstance(judge, dict):
        judge = dict(judge)
        # A bare definition name (pairwise) is looked up in judges/; anything path-like is a file.
        if isinstance(judge.get("definition"), str) and _is_task_path(judge["definition"]):
            judge["definition"] = str(_resolve_path(judge["definition"], base))
        for key in ("checkpoint", "gold"):
            if isinstance(judge.get(key), str):
                judge[key] = str(_resolve_path(judge[key], base))
        plan = {**plan, "judge": judge}
    return plan


def load_checkpoint(path: Path, overrides: Sequence[tuple[str, Any]] = ()) -> CheckpointConfig:
    """A checkpoint file, with `--set` overrides (dotted field, value) applied before validation."""
    file = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(file, None, "expected a mapping of checkpoint settings (name, model, ...)")
    return checkpoint_from_raw(apply_overrides(dict(raw), overrides), path.resolve().parent, file)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted field (sampling.temperature) in a checkpoint's raw settings. A path given on the
    command line means what it says from the current directory, not from the file's."""
    for key, value in overrides:
        target = raw
        *parents, leaf = key.split(".")
        for part in parents:
            nested = target.get(part)
            target[part] = dict(nested) if isinstance(nested, dict) else {}
            target = target[part]
        if key in COMMAND_LINE_PATHS and isinstance(value, str) and (_looks_like_path(value) or _is_there(Path(value))):
            value = str(_resolve_path(value, Path.cwd()))  # never raises: the checks after validation say why
        target[leaf] = value
    return raw


COMMAND_LINE_PATHS = ("model", "tokenizer", "adapter", "chat_template", "train.base", "train.output_dir")


def checkpoint_from_raw(raw: dict[str, Any], base: Path, file: str) -> CheckpointConfig:
    """Validate a checkpoint's settings, resolving its relative paths against `base`: first every field
    (an unknown key, a bad value), then what the paths hold on disk."""
    if "model" not in raw and "train" not in raw and set(raw) <= set(CheckpointConfig.model_fields):
        raise ConfigError(file, "model", "required field is missing (or give a 'train' block that produces it)")
    for key in ("model", "tokenizer", "adapter", "chat_template"):
        if key != "model" or raw.get("backend") != "openai":  # an endpoint's model is the name it serves
            _resolve_model_field(raw, key, base)
    if "plan" in raw:
        raw["plan"] = resolve_plan_paths(raw["plan"], base)
    if isinstance(raw.get("train"), dict):
        raw["train"] = _resolve_train_paths(dict(raw["train"]), base)
    config = validate(CheckpointConfig, raw, file)
    check_checkpoint_files(config, file)
    return config


def _resolve_train_paths(train: dict[str, Any], base: Path) -> dict[str, Any]:
    holder = {"model": train.get("base")}
    _resolve_model_field(holder, "model", base)
    if isinstance(holder["model"], str):
        train["base"] = holder["model"]
    if isinstance(train.get("data"), list):
        train["data"] = [str(_resolve_path(e, base)) if isinstance(e, str) else e for e in train["data"]]
    if isinstance(train.get("output_dir"), str):
        train["output_dir"] = str(_resolve_path(train["output_dir"], base))
    return train


def load_plan(path: Path) -> PlanConfig:
    """A plan file: a mapping (an empty file is not a plan; `{}` is the defaults), fields first, then paths."""
    raw = read_mapping(path, "a mapping of plan settings (suites, seed, ...; {} for the defaults)")
    plan = validate(PlanConfig, resolve_plan_paths(raw, path.resolve().parent), str(path))
    check_plan_files(plan, str(path))
    return plan


def choose_plan(candidate: CheckpointConfig, base: CheckpointConfig, plan_file: Path | None,
                candidate_file: str, base_file: str) -> PlanConfig:
    """The plan comes from exactly one place: --plan, the candidate file, or the defaults."""
    if base.plan is not None:
        raise ConfigError(base_file, "plan", "the plan belongs in the candidate file or --plan, not the base")
    if plan_file is not None:
        if candidate.plan is not None:
            raise ConfigError(candidate_file, "plan", "a plan is given both here and with --plan; keep one")
        return load_plan(plan_file)
    return candidate.plan or PlanConfig()
