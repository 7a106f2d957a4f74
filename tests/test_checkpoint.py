"""A checkpoint's fingerprint covers what it generates from, and nothing a trainer leaves beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.engines.checkpoint import directory_fingerprint
from harness.errors import ConfigError
from harness.records.cache import Cache


def _model_dir(root: Path) -> Path:
    root.mkdir()
    (root / "config.json").write_text('{"hidden_size": 128}')
    (root / "tokenizer.json").write_text("{}")
    (root / "model.safetensors").write_bytes(b"weights")
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state_0.pth"):
        (root / name).write_bytes(b"run 1")
    (root / "train_log.jsonl").write_text("{}\n")
    return root


def test_trainer_files_and_logs_are_not_part_of_the_fingerprint(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    model = _model_dir(tmp_path / "m")
    first = directory_fingerprint(model, cache)
    assert set(first) == {"config.json", "tokenizer.json", "model.safetensors"}
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state_0.pth", "train_log.jsonl"):
        (model / name).write_bytes(b"run 2: another temp dir, another pid")
    assert directory_fingerprint(model, cache) == first


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json"])
def test_weights_config_and_tokenizer_are(tmp_path: Path, name: str) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    model = _model_dir(tmp_path / "m")
    first = directory_fingerprint(model, cache)
    (model / name).write_bytes((model / name).read_bytes() + b" ")
    assert directory_fingerprint(model, cache) != first


def test_a_dir_with_only_trainer_files_holds_no_weights(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "m")
    (model / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="holds no weight files"):
        directory_fingerprint(model, Cache(tmp_path / "c.sqlite"))
