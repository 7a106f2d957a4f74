"""Reading checkpoint and plan files into the models of harness/config/schema.py.

Every file is validated in full before any model loads. Relative paths are
resolved against the directory of the file that names them, so a config
means the same thing from any working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from harness.config.schema import DEMO_MODELS, DEMO_SCHEME, CheckpointConfig, PlanConfig
from harness.config.yamlio import read_yaml, validate
from harness.errors import ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1


def _is_task_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".yaml", ".yml")) or value.startswith((".", "~"))


def _resolve_path(value: str, base: Path) -> Path:
    return (base / os.path.expanduser(value)).resolve()


def _resolve_model_field(raw: dict[str, Any], key: str, base: Path, file: str, must_have: str,
                         label: str | None = None) -> None:
    value = raw.get(key)
    label = label or key
    if not isinstance(value, str) or not value:
        return
    if key == "model" and value.startswith(DEMO_SCHEME):
        if value[len(DEMO_SCHEME):] not in DEMO_MODELS:
            raise ConfigError(file, label, f"unknown demo model {value!r}; expected one of: "
                              + ", ".join(DEMO_SCHEME + m for m in DEMO_MODELS))
        return
    path = _resolve_path(value, base)
    if path.exists() or _looks_like_path(value) or key == "adapter":
        if not path.is_dir():
            raise ConfigError(file, label, f"directory {path} does not exist")
        if must_have and not (path / must_have).is_file():
            raise ConfigError(file, label, f"{path} has no {must_have}; expected a saved model directory")
        raw[key] = str(path)
    elif not HUB_ID.match(value):
        raise ConfigError(file, label, f"{value!r} is neither an existing directory nor a hub id like 'org/name'")


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
        if isinstance(judge.get("checkpoint"), str):
            judge["checkpoint"] = str(_resolve_path(judge["checkpoint"], base))
        plan = {**plan, "judge": judge}
    return plan


def load_checkpoint(path: Path) -> CheckpointConfig:
    file = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(file, None, "expected a mapping of checkpoint settings (name, model, ...)")
    base = path.resolve().parent
    raw = dict(raw)
    if raw.get("backend") != "openai":
        _resolve_model_field(raw, "model", base, file, "config.json")
        _resolve_model_field(raw, "tokenizer", base, file, "")
    elif isinstance(raw.get("tokenizer"), str):
        _resolve_model_field(raw, "tokenizer", base, file, "")
    _resolve_model_field(raw, "adapter", base, file, "adapter_config.json")
    if isinstance(raw.get("chat_template"), str):
        template = _resolve_path(raw["chat_template"], base)
        if not template.is_file():
            raise ConfigError(file, "chat_template", f"file {template} does not exist")
        raw["chat_template"] = str(template)
    if "plan" in raw:
        raw["plan"] = resolve_plan_paths(raw["plan"], base)
    if "model" not in raw and "train" not in raw:
        raise ConfigError(file, "model", "required field is missing (or give a 'train' block that produces it)")
    if isinstance(raw.get("train"), dict):
        raw["train"] = _resolve_train_paths(dict(raw["train"]), base, file)
    return validate(CheckpointConfig, raw, file)


def _resolve_train_paths(train: dict[str, Any], base: Path, file: str) -> dict[str, Any]:
    if isinstance(train.get("base"), str):
        holder = {"model": train["base"]}
        _resolve_model_field(holder, "model", base, file, "config.json", label="train.base")
        train["base"] = holder["model"]
    if isinstance(train.get("data"), list):
        data = []
        for index, entry in enumerate(train["data"]):
            if isinstance(entry, str):
                path = _resolve_path(entry, base)
                if not path.is_file():
                    raise ConfigError(file, f"train.data[{index}]", f"data file {path} does not exist")
                entry = str(path)
            data.append(entry)
        train["data"] = data
    if isinstance(train.get("output_dir"), str):
        train["output_dir"] = str(_resolve_path(train["output_dir"], base))
    return train


def load_plan(path: Path) -> PlanConfig:
    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(str(path), None, "expected a mapping of plan settings (suites, seed, ...)")
    return validate(PlanConfig, resolve_plan_paths(raw or {}, path.resolve().parent), str(path))


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
