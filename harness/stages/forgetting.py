"""Forgetting: lm-evaluation-harness tasks on both checkpoints, compared item by item.

The one module that imports lm_eval, wrapped at this boundary: tasks are
resolved and validated before any model loads, `simple_evaluate` is called
with explicit arguments, and its per-sample logs become ForgettingRecords.

Caching: lm-eval's own request cache keys on the request only, not the model
(lm-eval #4063), so results are cached here per (checkpoint fingerprint,
engine, task config hash, limit, few-shot, seed) in the project's SQLite
cache; a rerun loads no model at all. lm-eval's request cache is also passed,
one file per checkpoint fingerprint, so a killed run resumes mid-task. lm-eval's own
aggregates are cached with each task's samples (records/forgetting_results.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from harness.config.schema import CheckpointConfig, ForgettingConfig
from harness.engines import gpu_vllm
from harness.engines.checkpoint import ResolvedCheckpoint
from harness.engines.vllm_args import engine_args
from harness.errors import ConfigError, HarnessError, InfraError, MissingDependency, install_hint
from harness.records.cache import Cache, content_key
from harness.records.forgetting_results import ForgettingResults, saved_results
from harness.records.stage_records import ROLES, ForgettingRecord, Role

RECIPE_VERSION = 2
"""Part of every cache key: bump when what is cached per task changes (2: lm-eval's aggregates too)."""
BINARY_METRICS = ("acc", "exact_match", "acc_norm")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: str
    """The task YAML's path, or `lm-eval` for a task of lm-eval's own registry."""
    config: dict[str, Any] | None
    """The loaded YAML with data file paths made absolute; None for registry tasks."""
    sha256: str
    """Hash of the YAML text and its data files (registry tasks: of the name and lm-eval's version)."""


def lm_eval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        raise MissingDependency("lm-eval", install_hint("forgetting")) from None


# ---------------------------------------------------------------------------- resolving tasks
def resolve_tasks(config: ForgettingConfig, file: str, prefix: str = "plan.forgetting") -> list[TaskSpec]:
    """Every task the plan names, validated: no model is loaded here. `prefix` is where the block sits in
    `file` (plan.forgetting in a checkpoint file, forgetting in a plan file), for error messages."""
    version = lm_eval_version()
    specs: list[TaskSpec] = []
    names: list[tuple[int, str]] = []
    for index, entry in enumerate(config.tasks):
        field = f"{prefix}.tasks[{index}]"
        path = Path(entry).expanduser()
        if path.is_dir():
            yamls = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
            if not yamls:
                raise ConfigError(file, field, f"directory {path} holds no task YAML")
            specs.extend(_local_task(y, file, field) for y in yamls)
        elif path.suffix in (".yaml", ".yml") or "/" in entry:
            if not path.is_file():
                raise ConfigError(file, field, f"task file {path} does not exist")
            specs.append(_local_task(path, file, field))
        else:
            names.append((index, entry))
    if names:
        known = _registry()
        for index, name in names:
            if name not in known:
                close = sorted(k for k in known if k.startswith(name[:4]))[:5]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(file, f"{prefix}.tasks[{index}]", f"unknown lm-eval task {name!r}{hint}")
            specs.append(TaskSpec(name, "lm-eval", None, content_key({"task": name, "lm_eval": version})))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(file, f"{prefix}.tasks", f"task {spec.name!r} is named twice "
                              f"({seen[spec.name]} and {spec.source})")
        seen[spec.name] = spec.source
    return specs


def load_task_file(path: Path) -> TaskSpec:
    """One task YAML, checked the way a plan's task entry is (`harness validate`)."""
    return _local_task(path, str(path), None)


def _registry() -> set[str]:
    from lm_eval.tasks import TaskManager  # indexing lm-eval's ~15k tasks takes seconds: only when needed

    return set(TaskManager().all_tasks)


def _local_task(path: Path, file: str, field: str | None) -> TaskSpec:
    try:
        from lm_eval.tasks._yaml_loader import load_yaml  # resolves include: and !function like lm-eval does
    except ImportError:
        raise MissingDependency("lm-eval", install_hint("forgetting")) from None
    try:
        config = load_yaml(path)
    except Exception as exc:  # yaml errors, include cycles, missing !function modules
        raise ConfigError(file, field, f"task YAML {path} does not load: {' '.join(str(exc).split())[:200]}") from None
    if "group" in config or "task" not in config:
        raise ConfigError(file, field, f"{path} is not a single task (expected a 'task:' name; "
                          "list the task YAMLs of a group instead)")
    if not isinstance(config["task"], str):
        raise ConfigError(file, field, f"{path}: task: expected a task name, got {config['task']!r}")
    digest = hashlib.sha256(path.read_bytes())
    kwargs = config.get("dataset_kwargs") or {}
    if isinstance(kwargs.get("data_files"), (str, list, dict)):
        files = _absolute_data_files(kwargs["data_files"], path.parent, file, field)
        config["dataset_kwargs"] = {**kwargs, "data_files": files}
        for data in _flatten(files):
            digest.update(hashlib.sha256(Path(data).read_bytes()).digest())
    return TaskSpec(config["task"], str(path), config, digest.hexdigest())


def _absolute_data_files(value: Any, base: Path, file: str, field: str | None) -> Any:
    """lm-eval reads data_files relative to the working directory; here they are relative to the YAML."""
    if isinstance(value, dict):
        return {k: _absolute_data_files(v, base, file, field) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute_data_files(v, base, file, field) for v in value]
    path = (base / str(value)).resolve()
    if not path.is_file():
        raise ConfigError(file, field, f"data file {path} (named in {base}) does not exist")
    return str(path)


def _flatten(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _flatten(v)
    elif isinstance(value, list):
        for v in value:
            yield from _flatten(v)
    else:
        yield str(value)


# ---------------------------------------------------------------------------- engines
def choose_engine(config: ForgettingConfig, checkpoint: ResolvedCheckpoint) -> str:
    if config.engine != "auto":
        return config.engine
    if checkpoint.config.backend == "openai":
        return "local-completions"
    if gpu_vllm():
        return "vllm"
    return "hf"


def check_engine(config: ForgettingConfig, checkpoint: CheckpointConfig, file: str, where: str) -> None:
    """Before any model loads: the plan's engine must be able to reach this checkpoint's weights."""
    remote = checkpoint.backend == "openai"
    if config.engine == "local-completions" and not remote:
        raise ConfigError(file, f"{where}.engine", f"local-completions scores through a server, but "
                          f"{checkpoint.name!r} is a local model (backend {checkpoint.backend}); use hf or vllm")
    if config.engine in ("hf", "vllm") and remote:
        raise ConfigError(file, f"{where}.engine", f"engine {config.engine} loads weights locally; "
                          f"{checkpoint.name!r} is behind an endpoint: use local-completions")


def model_args(engine: str, checkpoint: ResolvedCheckpoint, config: ForgettingConfig) -> dict[str, Any]:
    cfg = checkpoint.config
    if engine == "local-completions":
        if cfg.endpoint is None:
            raise ConfigError(checkpoint.file, "plan.forgetting.engine",
                              "local-completions needs a checkpoint with backend openai and an endpoint")
        return {"model": checkpoint.model_path, "base_url": cfg.endpoint.base_url.rstrip("/") + "/completions",
                "tokenizer": checkpoint.tokenizer_path or checkpoint.model_path, "tokenizer_backend": "huggingface",
                "num_concurrent": cfg.endpoint.max_concurrency, "max_retries": cfg.endpoint.max_retries,
                "timeout": int(cfg.endpoint.timeout_s), "tokenized_requests": False}
    if cfg.backend == "openai":
        raise ConfigError(checkpoint.file, "plan.forgetting.engine",
                          f"engine {engine} loads weights locally; a checkpoint behind an endpoint needs "
                          "local-completions")
    args: dict[str, Any] = {"pretrained": checkpoint.model_path}
    if checkpoint.tokenizer_path and checkpoint.tokenizer_path != checkpoint.model_path:
        args["tokenizer"] = checkpoint.tokenizer_path
    if cfg.revision and not cfg.is_local and not cfg.is_demo:
        args["revision"] = cfg.revision
    if engine == "hf":
        args["dtype"] = cfg.engine.dtype
        if cfg.engine.trust_remote_code:
            args["trust_remote_code"] = True
        if cfg.adapter:
            args["peft"] = cfg.adapter
        return args
    # lm-eval's vllm model takes vLLM's engine arguments and hands those it does not name to vllm.LLM.
    args.update(engine_args(cfg.engine, lora=cfg.adapter is not None))
    if cfg.adapter:
        del args["enable_lora"]  # lm-eval turns LoRA on from lora_local_path
        args["lora_local_path"] = cfg.adapter
    return args


# ---------------------------------------------------------------------------- running
Emit = Callable[[list[ForgettingRecord]], None]
Keep = Callable[[ForgettingResults], None]


@dataclass(frozen=True)
class ForgettingStats:
    tasks: int
    cached: int
    """(checkpoint, task) results served from the cache."""
    evaluated: int
    engines: dict[str, str]
    engine_seconds: dict[str, float]
    """Per role: wall time of lm-eval (model load included; 0 when served from the cache)."""


def _evaluate_missing(tasks: Sequence[TaskSpec], keys: dict[str, str], checkpoint: ResolvedCheckpoint, engine: str,
                      args: dict[str, Any], config: ForgettingConfig, seed: int, cache: Cache,
                      cache_dir: Path) -> tuple[dict[str, Any], list[TaskSpec], float]:
    """(cached rows by key, the tasks that were missing, seconds): evaluate what the cache lacks."""
    found = cache.get_many("forgetting", keys.values())
    missing = [t for t in tasks if keys[t.name] not in found]
    started = time.perf_counter()
    if missing:
        lm_cache = cache_dir / "lm-eval" / content_key({"fingerprint": checkpoint.fingerprint, "args": args})

        def keep(task: TaskSpec, samples: list[dict[str, Any]], results: dict[str, Any]) -> None:
            rows = [_sample_row(task.name, s) for s in samples]
            if not rows:
                raise InfraError(f"lm-eval returned no samples for task {task.name} on {checkpoint.name}")
            found[keys[task.name]] = entry = {"samples": rows, "results": results}
            cache.put_many("forgetting", {keys[task.name]: entry})

        _evaluate(engine, args, missing, config, seed, lm_cache, keep)
    return found, missing, round(time.perf_counter() - started, 3)


def run_forgetting(config: ForgettingConfig, tasks: Sequence[TaskSpec], checkpoints: dict[Role, ResolvedCheckpoint],
                   cache: Cache, cache_dir: Path, seed: int, emit: Emit,
                   keep: Keep | None = None) -> tuple[list[ForgettingRecord], ForgettingStats]:
    """Both checkpoints on every task: records go to `emit` task by task, each role's lm-eval aggregates to `keep`."""
    version = lm_eval_version()
    records: list[ForgettingRecord] = []
    cached = evaluated = 0
    engines: dict[str, str] = {}
    engine_seconds: dict[str, float] = {}
    for role in ROLES:
        checkpoint = checkpoints[role]
        engine = engines[role] = choose_engine(config, checkpoint)
        args = model_args(engine, checkpoint, config)
        keys = {t.name: content_key({"recipe": RECIPE_VERSION, "fingerprint": checkpoint.fingerprint,
                                     "engine": engine, "args": args, "task": t.sha256, "limit": config.limit,
                                     "fewshot": config.num_fewshot, "seed": seed, "lm_eval": version})
                for t in tasks}
        # One process evaluates a checkpoint's tasks; another asking for them waits, then reads the cache.
        with cache.work_lock("forgetting", {"fingerprint": checkpoint.fingerprint, "engine": engine, "args": args}):
            found, missing, seconds = _evaluate_missing(tasks, keys, checkpoint, engine, args, config, seed,
                                                        cache, cache_dir)
        evaluated += len(missing)
        engine_seconds[role] = seconds
        cached += len(tasks) - len(missing)
        for task in tasks:
            fresh = task in missing
            batch = [ForgettingRecord(role=role, checkpoint=checkpoint.name, cached=not fresh, **row)
                     for row in found[keys[task.name]]["samples"]]
            emit(batch)
            records.extend(batch)
        if keep is not None:
            keep(ForgettingResults(role=role, checkpoint=checkpoint.name, lm_eval_version=version, engine=engine,
                                   model_args=args, tasks={t.name: found[keys[t.name]]["results"] for t in tasks}))
    return records, ForgettingStats(len(tasks), cached, evaluated, engines, engine_seconds)


@contextlib.contextmanager
def _quiet(log: io.StringIO) -> Iterator[None]:
    """lm-eval logs at INFO and draws tqdm bars per request batch (to sys.stderr, looked up when each
    bar starts); the CLI has its own progress. What lm-eval writes is kept for the error message.
    Restores everything it changes, however the block ends."""
    import datasets

    loggers = [logging.getLogger(n) for n in ("lm-eval", "lm_eval")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)  # its warnings are notes like "Overwriting default num_fewshot"
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    # Each simple_evaluate call collects torch's environment report (pip list and more in subprocesses,
    # about 0.9 s) and the git hash of the working directory; the manifest records packages, hardware and
    # git already, and per-task calls would pay it per task.
    import lm_eval.evaluator as evaluator

    saved = evaluator.add_env_info, evaluator.get_git_commit_hash
    evaluator.add_env_info, evaluator.get_git_commit_hash = (lambda results: None), (lambda: None)
    try:
        with contextlib.redirect_stderr(log):
            yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = saved
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def _evaluate(engine: str, args: dict[str, Any], tasks: Sequence[TaskSpec], config: ForgettingConfig, seed: int,
              lm_cache: Path, on_task: Callable[[TaskSpec, list[dict[str, Any]], dict[str, Any]], None]) -> None:
    """Load the model once, then one simple_evaluate per task, handing each task's samples and lm-eval's
    saved results to `on_task` as it finishes: a run killed mid-stage keeps every finished task."""
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    # Local tasks go in as dicts (data paths already absolute); the registry is indexed only when used.
    manager = TaskManager(include_defaults=any(t.config is None for t in tasks))
    log = io.StringIO()
    with _quiet(log):
        try:
            lm = get_model(engine).create_from_arg_obj(
                args, {"batch_size": config.batch_size, "device": _device(engine, args)})
            if config.request_cache:
                lm_cache.parent.mkdir(parents=True, exist_ok=True)
            for task in tasks:
                tracker = GeneralConfigTracker()  # what lm-eval's CLI records of a run; it starts the clock
                tracker.log_experiment_args(engine, args, None, None, fewshot_as_multiturn=True)  # as simple_evaluate
                result = lm_eval.simple_evaluate(
                    model=lm, tasks=[task.config if task.config is not None else task.name], task_manager=manager,
                    num_fewshot=config.num_fewshot, limit=config.limit, log_samples=True, bootstrap_iters=0,
                    use_cache=str(lm_cache) if config.request_cache else None, random_seed=seed,
                    numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
                if result is None:
                    raise InfraError(f"lm-eval returned no result for task {task.name}")
                samples = result.pop("samples", {})
                tracker.log_end_time()
                saved = saved_results(result, samples, asdict(tracker), handle_non_serializable)
                on_task(task, list(samples.get(task.name, [])), saved)
        except ImportError as exc:  # an engine's optional packages (lm-eval[api], vllm) are missing
            extra = {"local-completions": "api", "vllm": "vllm"}.get(engine, engine)
            raise MissingDependency(f"lm-eval[{extra}]", " ".join(str(exc).split())[:300]) from None
        except HarnessError:
            raise
        except Exception as exc:  # anything lm-eval or its engine raises: could not evaluate, not worse
            said = [line for line in log.getvalue().splitlines() if line.strip()][-1:]
            detail = " ".join(f"{exc} {' '.join(said)}".split())[:300]
            raise InfraError(f"lm-eval ({engine}) failed: {detail}") from None


def _device(engine: str, args: dict[str, Any]) -> str | None:
    if engine != "hf":
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sample_row(task: str, sample: dict[str, Any]) -> dict[str, Any]:
    """One lm-eval per-sample log as the fields of a ForgettingRecord."""
    metric = next((m for m in BINARY_METRICS if m in sample), None)
    if metric is None:
        names = [m for m in sample.get("metrics", [])]
        raise InfraError(f"task {task}: no per-item 0/1 metric ({', '.join(BINARY_METRICS)}) in lm-eval's "
                         f"samples (it has {names}); forgetting compares items right/wrong")
    arguments = sample.get("arguments") or [[""]]
    prompt = str(arguments[0][0]) if isinstance(arguments[0], (list, tuple)) else str(arguments[0])
    target, prediction = _target_and_prediction(sample, arguments)
    return {"task": task, "doc_id": int(sample["doc_id"]), "correct": float(sample[metric]) >= 0.5,
            "target": target, "prediction": prediction, "prompt": prompt}


def _target_and_prediction(sample: dict[str, Any], arguments: Sequence[Any]) -> tuple[str, str]:
    target = sample.get("target")
    responses = sample.get("filtered_resps") or []
    continuations = [a[1] for a in arguments if isinstance(a, (list, tuple)) and len(a) > 1]
    lls = [r[0] if isinstance(r, (list, tuple)) else r for r in responses]
    if continuations and len(lls) == len(continuations) and all(isinstance(x, (int, float)) for x in lls):
        best = max(range(len(lls)), key=lambda i: lls[i])  # multiple choice: the highest log-likelihood
        gold = continuations[int(cast(int, target))].strip() if _is_index(target, continuations) else str(target)
        return gold, str(continuations[best]).strip()
    prediction = responses[0] if responses else ""
    return str(target), json.dumps(prediction) if not isinstance(prediction, str) else prediction


def _is_index(value: Any, options: Sequence[Any]) -> bool:
    try:
        return 0 <= int(value) < len(options)
    except (TypeError, ValueError):
        return False
