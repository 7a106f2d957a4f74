"""Checkpoints named on the command line: a checkpoint file, a local model directory or a hub id,
with `--adapter`, `--backend` and `--set key=value` overrides, as lm-eval's `--model_args` and
`trl sft --model_name_or_path` take a model where it is typed."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config.loading import HUB_ID, apply_overrides, checkpoint_from_raw, load_checkpoint
from harness.config.schema import CheckpointConfig
from harness.config.yamlio import stat_path
from harness.errors import ConfigError

ROLES = ("base", "candidate")
CHECKPOINT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Overrides:
    """`--set` values by what they apply to: both checkpoints, one of them, or the plan."""

    both: list[tuple[str, Any]] = field(default_factory=list)
    base: list[tuple[str, Any]] = field(default_factory=list)
    candidate: list[tuple[str, Any]] = field(default_factory=list)
    plan: list[tuple[str, Any]] = field(default_factory=list)

    def of(self, role: str) -> list[tuple[str, Any]]:
        return self.both + (self.base if role == "base" else self.candidate)


def parse_overrides(items: list[str]) -> Overrides:
    """`[base.|candidate.|plan.]field.path=value`; the value is read as YAML (0.7, true, [a, b], text)."""
    parsed = Overrides()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*", key.strip()):
            raise ConfigError(None, "--set", f"expected field.path=value (e.g. sampling.temperature=0.7), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        scope, _, rest = key.strip().partition(".")
        if scope in (*ROLES, "plan") and rest:
            getattr(parsed, scope).append((rest, value))
        else:
            parsed.both.append((key.strip(), value))
    return parsed


def load_checkpoint_argument(value: str, role: str, overrides: Overrides, adapter: str | None = None,
                             backend: str | None = None) -> tuple[CheckpointConfig, str]:
    """The checkpoint `value` names, and the label its errors name (the file, or `BASE`/`CANDIDATE`)."""
    extra = list(overrides.of(role))
    if backend is not None:
        extra.append(("backend", backend))
    if adapter is not None and role == "candidate":
        extra.append(("adapter", adapter))
    path = Path(value).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES:
        return load_checkpoint(path, extra), str(path)
    label = role.upper()
    found = stat_path(path, label, None)  # a name too long or a symlink loop is one line, not a traceback
    is_dir = found is not None and stat.S_ISDIR(found.st_mode)
    if not is_dir and not HUB_ID.match(value):
        raise ConfigError(label, None, f"{value!r} is not a checkpoint file (.yaml), a model directory or a hub id "
                          "like 'org/name'")
    model = str(path.resolve()) if is_dir else value
    name = re.sub(r"[^\w.-]+", "_", Path(model).name if is_dir else value)
    raw = apply_overrides({"name": name, "model": model}, extra)
    if role == "candidate" and adapter is not None and raw.get("name") == name:
        raw["name"] = f"{name}+{Path(adapter).name}"  # the base is often the same model without it
    return checkpoint_from_raw(raw, Path.cwd(), label), label
