"""What a checkpoint's paths must hold on disk, checked when the file is read (after its fields):
a model directory with weights, an adapter with its weights, a chat template that compiles, a
training output_dir that can be a directory. No model is loaded; template files are read.

Every path goes through harness.config.yamlio.stat_path, so a symlink loop, a name longer than 255
bytes or a denied directory is a one-line ConfigError on the field that names it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config.schema import DEMO_MODELS, DEMO_SCHEME, CheckpointConfig, PlanConfig
from harness.config.yamlio import os_problem, stat_path
from harness.errors import ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
# What trainers leave beside the weights: they do not change what the model generates, and some
# change every run (TRL's training_args.bin pickles the temp output path with the process id).
TRAINER_FILES = ("training_args.bin", "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TEMPLATE_FILE = "chat_template.jinja"


def trainer_file(name: str) -> bool:
    return name in TRAINER_FILES or name.startswith("rng_state")


def check_checkpoint_files(config: CheckpointConfig, file: str) -> None:
    """The checks of a validated checkpoint that look at the disk, in the order of its fields."""
    if config.backend != "openai" and config.model is not None:
        model_source(config.model, file, "model", saved_model=True)
    if config.tokenizer is not None:
        model_source(config.tokenizer, file, "tokenizer", saved_model=False)
    if config.adapter is not None:
        _adapter_dir(Path(config.adapter), file)
    if config.train is not None:
        model_source(config.train.base, file, "train.base", saved_model=True)
        for index, entry in enumerate(config.train.data):
            _data_file(Path(entry), file, f"train.data[{index}]")
        if config.train.output_dir is not None:
            _output_dir(Path(config.train.output_dir), file, "train.output_dir")
        _trackers(config.train.report_to, file)
    _chat_template(config, file)
    if config.plan is not None:
        check_plan_files(config.plan, file, "plan.")


# transformers' reporting integrations: the modules each one imports, and the package that gives them.
TRACKERS = {"azure_ml": (("azureml",), "azureml-core"), "clearml": (("clearml",), "clearml"),
            "codecarbon": (("codecarbon",), "codecarbon"), "comet_ml": (("comet_ml",), "comet-ml"),
            "dagshub": (("dagshub",), "dagshub"), "dvclive": (("dvclive",), "dvclive"),
            "flyte": (("flytekit",), "flytekit"), "mlflow": (("mlflow",), "mlflow"),
            "neptune": (("neptune",), "neptune"),
            "swanlab": (("swanlab",), "swanlab"), "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
            "trackio": (("trackio",), "trackio"), "wandb": (("wandb",), "wandb")}


def _trackers(names: Sequence[str], file: str) -> None:
    """Before any training: a tracker that is not installed would otherwise stop the trainer mid-setup."""
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(file, f"train.report_to[{index}]", f"{name!r} is named twice")
        modules, package = TRACKERS[name]
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            raise ConfigError(file, f"train.report_to[{index}]", f"{name} is not installed; pip install {package}")


def check_plan_files(plan: PlanConfig, file: str, prefix: str = "") -> None:
    """Only what would stop a loader with a traceback (a loop, a name too long, no permission): a
    missing suite, task or judge file is reported by the stage that reads it, as before."""
    for index, entry in enumerate(plan.suites):
        stat_path(Path(entry), file, f"{prefix}suites[{index}]")
    for index, entry in enumerate(plan.forgetting.tasks if plan.forgetting else []):
        if Path(entry).is_absolute():  # a path (a bare lm-eval task name is not one)
            stat_path(Path(entry), file, f"{prefix}forgetting.tasks[{index}]")
    if plan.judge is not None:
        for name in ("definition", "checkpoint"):
            value = getattr(plan.judge, name)
            if isinstance(value, str) and Path(value).is_absolute():
                stat_path(Path(value), file, f"{prefix}judge.{name}")


def model_source(value: str, file: str, field: str, saved_model: bool) -> None:
    """A demo name (a model only), a local directory (absolute once read) or a hub id."""
    if value.startswith(DEMO_SCHEME) and field != "tokenizer":
        if value[len(DEMO_SCHEME):] not in DEMO_MODELS:
            raise ConfigError(file, field, f"unknown demo model {value!r}; expected one of: "
                              + ", ".join(DEMO_SCHEME + m for m in DEMO_MODELS))
        return
    path = Path(value)
    if not path.is_absolute():
        if not HUB_ID.match(value):
            raise ConfigError(file, field, f"{value!r} is neither an existing directory nor a hub id like 'org/name'")
        return
    _directory(path, file, field)
    if saved_model:
        if not _is_file(path / "config.json"):
            raise ConfigError(file, field, f"{path} has no config.json; expected a saved model directory")
        _model_weights(path, file, field)


def _directory(path: Path, file: str, field: str) -> None:
    found = stat_path(path, file, field)
    if found is None:
        raise ConfigError(file, field, f"directory {path} does not exist")
    if not stat.S_ISDIR(found.st_mode):
        raise ConfigError(file, field, f"{path} is a file; expected a directory")


def _is_file(path: Path) -> bool:
    return path.is_file()  # inside a directory already looked at: a short name, no loop left to find


def _names(path: Path, file: str, field: str) -> set[str]:
    try:
        return {entry.name for entry in path.iterdir()}
    except OSError as exc:
        raise ConfigError(file, field, os_problem(path, exc)) from None


def _model_weights(path: Path, file: str, field: str) -> None:
    names = _names(path, file, field)
    for index in sorted(n for n in names if n.endswith(".index.json")):
        shards = _index_shards(path / index, file, field)
        missing = sorted(shards - names)
        if missing:
            raise ConfigError(file, field, f"{path}: {index} names {missing[0]}, which is missing "
                              f"({len(missing)} of {len(shards)} shards); copy the whole model directory")
        if shards:
            return
    if not any(n.endswith(WEIGHT_SUFFIXES) and not trainer_file(n) for n in names):
        raise ConfigError(file, field, f"{path} holds no weights (*.safetensors, *.bin, or a sharded index such as "
                          "model.safetensors.index.json); expected a saved model directory")


def _index_shards(index: Path, file: str, field: str) -> set[str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ConfigError(file, field, f"{index} is not a JSON weight index (with a weight_map)") from None
    return {str(v) for v in weight_map.values()} if isinstance(weight_map, dict) else set()


def _adapter_dir(path: Path, file: str) -> None:
    _directory(path, file, "adapter")
    if not _is_file(path / "adapter_config.json"):
        raise ConfigError(file, "adapter", f"{path} has no adapter_config.json; expected a saved model directory")
    if not any(_is_file(path / name) for name in ADAPTER_WEIGHTS):
        raise ConfigError(file, "adapter", f"{path} has adapter_config.json but no adapter weights "
                          f"({' or '.join(ADAPTER_WEIGHTS)}); expected a saved adapter directory")


def _data_file(path: Path, file: str, field: str) -> None:
    found = stat_path(path, file, field)
    if found is None:
        raise ConfigError(file, field, f"data file {path} does not exist")
    if not stat.S_ISREG(found.st_mode):
        raise ConfigError(file, field, f"{path} is a directory; expected a .jsonl or .json file")


def _output_dir(path: Path, file: str, field: str) -> None:
    """A directory, or a path where one can be made: no part of it may be an existing file."""
    for part in (path, *path.parents):
        found = stat_path(part, file, field)
        if found is None:
            continue
        if not stat.S_ISDIR(found.st_mode):
            what = f"{path} is an existing file" if part == path else f"{part} is a file, so {path} cannot be made"
            raise ConfigError(file, field, f"{what}; expected a directory for the trained checkpoint")
        return


def _chat_template(config: CheckpointConfig, file: str) -> None:
    """The template that will render every prompt must compile, as transformers compiles it."""
    if config.backend == "openai" and (config.endpoint is None or config.endpoint.api == "chat"):
        return  # the server applies its own
    if config.chat_template is not None:
        path = Path(config.chat_template)
        found = stat_path(path, file, "chat_template")
        if found is None or not stat.S_ISREG(found.st_mode):
            raise ConfigError(file, "chat_template", f"file {path} does not exist")
        compile_chat_template(_read_text(path, file, "chat_template"), file, "chat_template", str(path))
        return
    field, source = next(((f, v) for f, v in (("tokenizer", config.tokenizer), ("model", config.model),
                                              ("train.base", config.train.base if config.train else None))
                          if v is not None), ("model", None))
    if source is not None and Path(source).is_absolute():
        template = tokenizer_template(Path(source), file, field)
        if template is not None:
            compile_chat_template(template[1], file, field, template[0])


def tokenizer_template(directory: Path, file: str, field: str) -> tuple[str, str] | None:
    """(where, text) of the chat template a saved tokenizer applies, as transformers finds it:
    chat_template.jinja first, else tokenizer_config.json's chat_template (its 'default' entry)."""
    jinja = directory / TEMPLATE_FILE
    if _is_file(jinja):
        return str(jinja), _read_text(jinja, file, field)
    config_file = directory / "tokenizer_config.json"
    if not _is_file(config_file):
        return None
    try:
        template = json.loads(_read_text(config_file, file, field)).get("chat_template")
    except (json.JSONDecodeError, AttributeError):
        return None  # transformers reports a broken tokenizer when it loads it
    if isinstance(template, list):
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    return (f"{config_file} (chat_template)", template) if isinstance(template, str) else None


def _read_text(path: Path, file: str, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(file, field, f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(file, field, os_problem(path, exc)) from None


def compile_chat_template(text: str, file: str | None, field: str, where: str) -> None:
    """Compile a chat template the way transformers does (a sandboxed Jinja environment with its
    extensions), so a syntax error is a ConfigError naming the line, before any run dir exists."""
    import jinja2

    try:
        _template_environment().from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        message = " ".join(str(exc.message or "syntax error").split())
        raise ConfigError(file, field, f"the chat template {where} is not valid Jinja: line {exc.lineno}: "
                          f"{message}") from None


@functools.cache
def _template_environment() -> Any:
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """transformers' {% generation %}...{% endgeneration %} block (assistant-token masks): parsed
        here, never rendered."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                         extensions=[GenerationTag, loopcontrols])
