"""The forgetting stage: task resolution and its one-line errors, and lm-eval run for real
(offline, `hf` on the CPU) on the demo models with the shipped tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.schema import DEFAULT_FORGETTING_DIR, CheckpointConfig, ForgettingConfig
from harness.engines.checkpoint import resolve_checkpoint
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.records.stage_records import ForgettingRecord
from harness.stages.forgetting import _sample_row, choose_engine, resolve_tasks, run_forgetting

TASKS = {"demo_arithmetic": 441, "demo_capitals": 200, "demo_cloze": 412}


def test_shipped_tasks_resolve_with_absolute_data_and_stable_hashes() -> None:
    specs = resolve_tasks(ForgettingConfig(), "plan.yaml")
    assert {s.name for s in specs} == set(TASKS)
    for spec in specs:
        assert spec.config is not None
        data = Path(spec.config["dataset_kwargs"]["data_files"]["test"])
        assert data.is_absolute() and data.parent == DEFAULT_FORGETTING_DIR
        assert sum(1 for _ in data.open()) == TASKS[spec.name] >= 200  # a 5-point drop must be detectable
    again = resolve_tasks(ForgettingConfig(), "plan.yaml")
    assert [s.sha256 for s in specs] == [s.sha256 for s in again]


def write_task(directory: Path, name: str = "t", data: str | None = "t.jsonl", extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = (DEFAULT_FORGETTING_DIR / "cloze.yaml").read_text().replace("demo_cloze", name)
    if data is not None:
        text = text.replace("test: cloze.jsonl", f"test: {data}")
    path = directory / f"{name}.yaml"
    path.write_text(text + extra)
    return path


@pytest.mark.parametrize("case, field, words", [
    ("unknown_name", "plan.forgetting.tasks[0]", "unknown lm-eval task 'hellaswagg' (did you mean hellaswag"),
    ("bad_yaml", "plan.forgetting.tasks[0]", "does not load"),
    ("missing_data", "plan.forgetting.tasks[0]", "data file"),
    ("missing_file", "plan.forgetting.tasks[0]", "does not exist"),
    ("group", "plan.forgetting.tasks[0]", "is not a single task"),
    ("twice", "plan.forgetting.tasks", "is named twice"),
    ("empty_dir", "plan.forgetting.tasks[0]", "holds no task YAML"),
])
def test_bad_tasks_fail_before_any_model_loads(tmp_path: Path, case: str, field: str, words: str) -> None:
    tasks: list[str]
    if case == "unknown_name":
        tasks = ["hellaswagg"]
    elif case == "bad_yaml":
        bad = tmp_path / "bad.yaml"
        bad.write_text("task: [unclosed\n")
        tasks = [str(bad)]
    elif case == "missing_data":
        tasks = [str(write_task(tmp_path, data="missing.jsonl"))]
    elif case == "missing_file":
        tasks = [str(tmp_path / "nope.yaml")]
    elif case == "group":
        group = tmp_path / "group.yaml"
        group.write_text("group: g\ntask: [a, b]\n")
        tasks = [str(group)]
    elif case == "twice":
        tasks = [str(DEFAULT_FORGETTING_DIR), str(DEFAULT_FORGETTING_DIR / "cloze.yaml")]
    else:
        (tmp_path / "empty").mkdir()
        tasks = [str(tmp_path / "empty")]
    with pytest.raises(ConfigError) as info:
        resolve_tasks(ForgettingConfig(tasks=tasks), "plan.yaml")
    assert info.value.file == "plan.yaml" and info.value.field == field
    assert words in info.value.message and "\n" not in str(info.value)


def test_a_multiple_choice_sample_becomes_a_record_row() -> None:
    sample = {"doc_id": 3, "target": 1, "acc": 0.0, "metrics": ["acc"],
              "arguments": [["Snow is", " black"], ["Snow is", " white"]],
              "filtered_resps": [[-1.0, False], [-2.5, False]]}
    row = _sample_row("demo_cloze", sample)
    assert row == {"task": "demo_cloze", "doc_id": 3, "correct": False, "target": "white", "prediction": "black",
                   "prompt": "Snow is"}


def test_engine_choice_follows_the_checkpoint(demo_models, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite")
    local = resolve_checkpoint(CheckpointConfig(name="b", model="demo:base", backend="transformers"), "b.yaml", cache)
    cache.close()
    assert choose_engine(ForgettingConfig(), local) == "hf"  # the CPU build of vLLM is not lm-eval's vllm
    assert choose_engine(ForgettingConfig(engine="vllm"), local) == "vllm"


@pytest.mark.slow
def test_lm_eval_runs_offline_and_a_rerun_is_served_from_cache(demo_models, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite")
    config = ForgettingConfig(limit=60)
    tasks = resolve_tasks(config, "plan.yaml")
    checkpoints = {role: resolve_checkpoint(CheckpointConfig(name=role, model=f"demo:{role}", backend="transformers"),
                                            f"{role}.yaml", cache) for role in ("base", "candidate")}
    emitted: list[ForgettingRecord] = []
    first, stats = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, emitted.extend)
    assert stats.evaluated == 6 and stats.cached == 0 and stats.engines == {"base": "hf", "candidate": "hf"}
    assert emitted == first and len(first) == 2 * 3 * 60
    assert not any(r.cached for r in first)
    base = {(r.task, r.doc_id): r for r in first if r.role == "base"}
    # The base learned every capital in pretraining: lm-eval must see it.
    assert sum(r.correct for k, r in base.items() if k[0] == "demo_capitals") >= 57
    assert all(r.prediction and r.target and r.prompt for r in first)

    second, stats = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None)
    assert stats.evaluated == 0 and stats.cached == 6 and stats.engine_seconds["base"] < 1.0
    strip = [r.model_dump(exclude={"cached"}) for r in second]
    assert strip == [r.model_dump(exclude={"cached"}) for r in first] and all(r.cached for r in second)
    cache.close()


@pytest.mark.slow
def test_tasks_finished_before_a_failure_are_kept(demo_models, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.stages.forgetting as forgetting
    from harness.errors import InfraError

    cache = Cache(tmp_path / "cache.sqlite")
    config = ForgettingConfig(limit=20)
    tasks = resolve_tasks(config, "plan.yaml")
    checkpoints = {role: resolve_checkpoint(CheckpointConfig(name=role, model=f"demo:{role}", backend="transformers"),
                                            f"{role}.yaml", cache) for role in ("base", "candidate")}
    real = forgetting._sample_row

    def dies_on_the_second_task(task: str, sample: dict) -> dict:
        if task == tasks[1].name:
            raise InfraError("killed")
        return real(task, sample)

    monkeypatch.setattr(forgetting, "_sample_row", dies_on_the_second_task)
    with pytest.raises(InfraError):
        run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None)
    monkeypatch.setattr(forgetting, "_sample_row", real)
    _, stats = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None)
    # The base's first task was finished and kept; nothing else had been.
    assert (stats.cached, stats.evaluated) == (1, 5)
    cache.close()


@pytest.mark.slow
def test_local_completions_scores_through_vllms_server(demo_models, vllm_server: str, tmp_path: Path) -> None:
    """A checkpoint behind an OpenAI-compatible server: lm-eval's local-completions engine (prompt
    log-probabilities from vLLM's completions API) agrees with hf on the same weights."""
    cache = Cache(tmp_path / "cache.sqlite")
    config = ForgettingConfig(tasks=[str(DEFAULT_FORGETTING_DIR / "capitals.yaml")], limit=12, batch_size=4)
    tasks = resolve_tasks(config, "plan.yaml")
    served = CheckpointConfig(name="demo-base", model="demo-base", backend="openai", tokenizer=str(demo_models.base),
                              endpoint={"base_url": vllm_server, "api": "completions"})
    local = CheckpointConfig(name="local", model="demo:base", backend="transformers", engine={"dtype": "float32"})
    checkpoints = {"base": resolve_checkpoint(local, "b.yaml", cache),
                   "candidate": resolve_checkpoint(served, "c.yaml", cache)}
    records, stats = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None)
    assert stats.engines == {"base": "hf", "candidate": "local-completions"}
    by_role = {role: {r.doc_id: r.prediction for r in records if r.role == role} for role in ("base", "candidate")}
    assert len(by_role["candidate"]) == 12 and by_role["candidate"] == by_role["base"]
    cache.close()


@pytest.mark.slow
def test_lm_evals_own_aggregates_are_kept_and_a_cached_rerun_keeps_the_same(demo_models, tmp_path: Path) -> None:
    """Beside the per-sample records, each checkpoint's lm-eval results (what its CLI would save) reach
    `keep`; a rerun served from the cache hands over the same ones, without lm-eval."""
    from harness.records.forgetting_results import ForgettingResults

    cache = Cache(tmp_path / "cache.sqlite")
    config = ForgettingConfig(tasks=[str(DEFAULT_FORGETTING_DIR / "cloze.yaml")], limit=8)
    tasks = resolve_tasks(config, "plan.yaml")
    checkpoints = {role: resolve_checkpoint(CheckpointConfig(name=role, model=f"demo:{role}", backend="transformers"),
                                            f"{role}.yaml", cache) for role in ("base", "candidate")}
    kept: list[ForgettingResults] = []
    records, _ = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None, kept.append)
    assert [k.role for k in kept] == ["base", "candidate"] and all(list(k.tasks) == ["demo_cloze"] for k in kept)
    for k in kept:
        saved = k.tasks["demo_cloze"]
        mine = [r.correct for r in records if r.role == k.role]
        assert saved["results"]["demo_cloze"]["acc,none"] == pytest.approx(sum(mine) / len(mine))
        assert saved["n-samples"]["demo_cloze"] == {"original": 412, "effective": 8}
        assert saved["versions"] and saved["configs"]["demo_cloze"]["task"] == "demo_cloze"
        assert saved["higher_is_better"] == {"demo_cloze": {"acc": True}} and saved["n-shot"] == {"demo_cloze": 0}
        assert saved["config"]["limit"] == 8 and len(saved["task_hashes"]["demo_cloze"]) == 64
        assert "samples" not in saved and k.engine == "hf" and k.model_args["pretrained"]
    again: list[ForgettingResults] = []
    _, stats = run_forgetting(config, tasks, checkpoints, cache, tmp_path, 0, lambda _: None, again.append)
    assert stats.evaluated == 0 and again == kept
    cache.close()
