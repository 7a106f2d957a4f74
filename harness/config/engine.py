"""Engine-facing settings of a checkpoint: how to sample, how to run the engine, and how to reach
an endpoint (its key, its API's rules, its retries). Part of the configuration models; the rest
is harness/config/schema.py."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class SamplingConfig(Strict):
    """One value object for sampling, shared by every backend."""

    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.0
    """0 means greedy decoding."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    """Upper bound on generated tokens per answer."""
    seed: int = 0
    """Seed for sampling; sample i of an item uses seed + i."""
    n: Annotated[int, Field(ge=1, le=1000)] = 1
    """Answers per prompt. More than one needs temperature > 0."""

    @model_validator(mode="after")
    def _n_needs_sampling(self) -> SamplingConfig:
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 needs temperature > 0 (greedy answers would be identical)")
        return self


class EngineConfig(Strict):
    """Engine settings passed to vLLM or transformers and recorded in the run."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_model_len: Annotated[int, Field(ge=16)] | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """vLLM: share of accelerator memory (on the CPU build: of RAM) to reserve."""
    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    data_parallel_size: Annotated[int, Field(ge=1)] = 1
    enforce_eager: bool = False
    max_lora_rank: Annotated[int, Field(ge=1)] = 64
    batch_size: Annotated[int, Field(ge=1)] = 16
    """transformers: prompts per generate() call (sorted by length first)."""
    chunk_size: Annotated[int, Field(ge=1)] = 256
    """Prompts handed to the engine between cache flushes: a killed run loses at most one chunk."""
    trust_remote_code: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)
    """vLLM: any other engine argument, by its EngineArgs name (enable_prefix_caching: true,
    pipeline_parallel_size: 2, distributed_executor_backend: ray, ...). The offline engine, `harness serve`
    and lm-eval's vllm model all get it, and it is part of the cache key."""

    @field_validator("extra")
    @classmethod
    def _extra_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an engine argument name (snake_case, as vllm.EngineArgs spells it)")
            if name in cls.model_fields or name in ("model", "tokenizer", "seed", "enable_lora", "max_loras"):
                raise ValueError(f"{name!r} is set by the harness or by its own field; set it there, not in extra")
        return value


REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
"""OpenAI's reasoning models, which take no temperature or top_p."""


class EndpointConfig(Strict):
    """An OpenAI-compatible server (vLLM's, OpenAI, or any other)."""

    base_url: str
    """For example http://127.0.0.1:8000/v1."""
    model: str | None = None
    """Model name the server knows; defaults to the checkpoint's `model`."""
    api: Literal["chat", "completions"] = "chat"
    """chat: the server applies its chat template. completions: the prompt is rendered here with `tokenizer`."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the key (never the key itself)."""
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] = 16
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    backoff_s: Annotated[float, Field(ge=0)] = 1.0
    """First retry delay; doubles each retry, with jitter. A 429 or 503 with Retry-After waits as long as it says."""
    max_retry_after_s: Annotated[float, Field(ge=0)] = 120.0
    """The longest Retry-After honoured; a server asking for more is waited on this long."""
    send_sampling: list[Literal["temperature", "top_p", "seed"]] | None = None
    """Sampling settings sent with each request. Left out: all three, except to OpenAI's reasoning models
    (o1, o3, o4-mini, gpt-5, ...), which reject temperature and top_p: those get seed only."""
    length_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    """chat API: the name of the reply-length limit. OpenAI's current models and vLLM take
    max_completion_tokens (OpenAI's reasoning models reject max_tokens); the completions API always sends
    max_tokens."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value

    def sampling_sent(self, model: str) -> list[str]:
        if self.send_sampling is not None:
            return list(self.send_sampling)
        return ["seed"] if REASONING_MODEL.match(model.rsplit("/", 1)[-1]) else ["temperature", "top_p", "seed"]

    def api_key(self, file: str, field: str) -> str:
        """The key, read from api_key_env when it is named (local servers accept any key): the one
        place a key is looked up, both to check it before any model loads and to call with it."""
        if self.api_key_env is None:
            return "EMPTY"
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(file, field, f"environment variable {self.api_key_env} is not set")
        return key
