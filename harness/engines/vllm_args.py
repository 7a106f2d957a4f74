"""vLLM's engine arguments from a checkpoint's `engine:` settings: the one translation that the
offline engine (vllm_backend.py), the OpenAI-compatible server (vllm_server.py) and lm-eval's
vllm model (stages/forgetting.py) all start from, so a setting reaches every engine or none."""

from __future__ import annotations

import json
from typing import Any

from harness.config.engine import EngineConfig


def engine_args(engine: EngineConfig, lora: bool = False) -> dict[str, Any]:
    """EngineArgs names and values (vllm.LLM(**args) takes them as they are)."""
    args: dict[str, Any] = {
        "dtype": engine.dtype, "gpu_memory_utilization": engine.gpu_memory_utilization,
        "tensor_parallel_size": engine.tensor_parallel_size, "data_parallel_size": engine.data_parallel_size,
        "enforce_eager": engine.enforce_eager, "trust_remote_code": engine.trust_remote_code}
    if engine.max_model_len is not None:
        args["max_model_len"] = engine.max_model_len
    if lora:
        args.update(enable_lora=True, max_lora_rank=engine.max_lora_rank)
    return {**args, **engine.extra}  # extra cannot name a key above (the schema refuses it)


def server_flags(args: dict[str, Any]) -> list[str]:
    """The same arguments as `vllm serve` flags: --name value, a true switch as --name alone."""
    flags: list[str] = []
    for name, value in args.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, (dict, list)):  # vLLM parses structured arguments as JSON
            flags += [flag, json.dumps(value)]
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags
