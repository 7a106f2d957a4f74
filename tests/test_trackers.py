"""Training logs to the experiment trackers a `train:` block names (transformers' integrations through
TRL), checked before any training, and without changing which result is reused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.config.files import TRACKERS
from harness.config.loading import load_checkpoint
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.stages.train.sft import ensure_trained, train_hash
from tests.test_train import small_candidate


def _write(tmp: Path, report_to: str) -> Path:
    data = tmp / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    file = tmp / "c.yaml"
    file.write_text(f"name: c\ntrain: {{base: demo:base, data: [d.jsonl], report_to: {report_to}}}\n")
    return file


def test_a_tracker_that_is_not_installed_is_refused_naming_the_field(tmp_path: Path) -> None:
    missing = next(n for n, (modules, _) in TRACKERS.items()
                   if all(importlib.util.find_spec(m) is None for m in modules))
    with pytest.raises(ConfigError) as caught:
        load_checkpoint(_write(tmp_path, f"[{missing}]"))
    assert caught.value.field == "train.report_to[0]" and f"pip install {TRACKERS[missing][1]}" in str(caught.value)
    with pytest.raises(ConfigError) as unknown:
        load_checkpoint(_write(tmp_path, "[tensorbord]"))
    assert "train.report_to" in str(unknown.value)


def test_where_a_run_is_logged_is_not_part_of_its_hash(demo_models, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    plain = small_candidate(tmp_path, demo_models.base).train
    logged = plain.model_copy(update={"report_to": ["tensorboard"]})
    assert train_hash(plain, demo_models.base, cache) == train_hash(logged, demo_models.base, cache)


@pytest.mark.slow
def test_training_logs_every_step_to_tensorboard(demo_models, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = small_candidate(tmp_path, demo_models.base, report_to=["tensorboard"], max_steps=12)
    outcome = ensure_trained(config, "small.yaml", Cache(tmp_path / "c.sqlite"))
    logs = tmp_path / "out" / "tensorboard"  # beside the checkpoint (the trainer's own dir is scratch)
    assert list(logs.glob("events.out.tfevents.*"))
    logged = EventAccumulator(str(logs)).Reload()
    losses = {e.step: e.value for e in logged.Scalars("train/loss")}
    assert sorted(losses) == [s.step for s in outcome.steps]
    for step in outcome.steps:
        assert losses[step.step] == pytest.approx(step.loss, rel=1e-5)
