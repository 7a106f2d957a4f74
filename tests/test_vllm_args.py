"""One translation of `engine:` into vLLM's arguments: every setting reaches the offline engine,
the server and lm-eval's vllm model alike (the forgetting stage used to drop four of them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.config.schema import CheckpointConfig
from harness.engines.checkpoint import ResolvedCheckpoint
from harness.engines.vllm_args import engine_args, server_flags
from harness.engines.vllm_server import server_command
from harness.stages.forgetting import model_args

EXTRA = {"enable_prefix_caching": True, "pipeline_parallel_size": 2, "speculative_config": {"method": "ngram"}}
ENGINE = {"tensor_parallel_size": 2, "max_lora_rank": 64, "enforce_eager": True, "trust_remote_code": True,
          "max_model_len": 4096, "gpu_memory_utilization": 0.8, "dtype": "bfloat16", "extra": EXTRA}
EXPECTED = {"tensor_parallel_size": 2, "max_lora_rank": 64, "enforce_eager": True, "trust_remote_code": True,
            "max_model_len": 4096, "gpu_memory_utilization": 0.8, "dtype": "bfloat16", **EXTRA}


def checkpoint(tmp_path: Path, adapter: bool) -> CheckpointConfig:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "lora").mkdir(exist_ok=True)
    return CheckpointConfig.model_validate({
        "name": "sft", "model": str(tmp_path / "model"), "engine": ENGINE,
        **({"adapter": str(tmp_path / "lora")} if adapter else {})})


def test_engine_args_and_flags_carry_every_setting() -> None:
    args = engine_args(CheckpointConfig.model_validate({"name": "m", "model": "x", "engine": ENGINE}).engine, lora=True)
    assert {k: args[k] for k in EXPECTED} == EXPECTED and args["enable_lora"] is True
    flags = server_flags({"tensor_parallel_size": 2, "enforce_eager": True, "trust_remote_code": False,
                          "max_model_len": None})
    assert flags == ["--tensor-parallel-size", "2", "--enforce-eager"]


@pytest.mark.parametrize("adapter", [False, True])
def test_the_server_and_lm_eval_get_the_same_engine_arguments(tmp_path: Path, adapter: bool) -> None:
    config = checkpoint(tmp_path, adapter)
    cmd, _ = server_command(tmp_path / "sft.yaml", "127.0.0.1", 8000, config)
    expected = EXPECTED if adapter else {k: v for k, v in EXPECTED.items() if k != "max_lora_rank"}
    for name, value in expected.items():
        flag = "--" + name.replace("_", "-")
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        assert flag in cmd and (value is True or cmd[cmd.index(flag) + 1] == shown), (flag, cmd)
    assert ("--enable-lora" in cmd) == adapter
    resolved = ResolvedCheckpoint(config, "sft.yaml", str(tmp_path / "model"), None, "fp", None, "tokenizer")
    args: dict[str, Any] = model_args("vllm", resolved, None)  # type: ignore[arg-type]
    assert {k: args[k] for k in expected} == expected
    assert args.get("lora_local_path") == (str(tmp_path / "lora") if adapter else None)
    assert "enable_lora" not in args  # lm-eval derives it from lora_local_path


def test_the_offline_engine_gets_the_same_engine_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = pytest.importorskip("vllm")
    from harness.engines.vllm_backend import VLLMBackend

    seen: dict[str, Any] = {}

    class Captured(Exception):
        pass

    def fake_llm(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(vllm, "LLM", fake_llm)
    config = checkpoint(tmp_path, adapter=True)
    with pytest.raises(Exception, match="vllm engine failed to start"):
        VLLMBackend(str(tmp_path / "model"), str(tmp_path / "model"), config.engine, [str(tmp_path / "lora")])
    assert {k: seen[k] for k in EXPECTED} == EXPECTED
    assert (seen["enable_lora"], seen["max_loras"]) == (True, 1) and "data_parallel_size" not in seen


@pytest.mark.parametrize("name, words", [
    ("dtype", "set by the harness or by its own field"),
    ("max_loras", "set by the harness"),
    ("Enable-Prefix", "not an engine argument name"),
])
def test_extra_cannot_shadow_a_setting_or_misname_one(name: str, words: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=words):
        CheckpointConfig.model_validate({"name": "m", "model": "x", "engine": {"extra": {name: 1}}})


def test_extra_is_part_of_the_answers_cache_key(tmp_path: Path) -> None:
    from harness.engines.checkpoint import RenderedPrompt
    from harness.stages.generate import generation_key

    prompt = RenderedPrompt("p", (1, 2), "hash")
    keys = set()
    for extra in ({}, {"enable_prefix_caching": True}, {"enable_prefix_caching": False}):
        config = CheckpointConfig.model_validate({"name": "m", "model": str(tmp_path), "engine": {"extra": extra}})
        keys.add(generation_key(ResolvedCheckpoint(config, "m.yaml", str(tmp_path), None, "fp", "t", "tokenizer"),
                                prompt, 0))
    assert len(keys) == 3
