"""The one protocol every engine implements: a batch of requests in, completions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.config.schema import SamplingConfig


@dataclass(frozen=True)
class ChatRequest:
    """One prompt, already rendered once with the checkpoint's own tokenizer.

    Local engines take `prompt_token_ids` so that every engine sees identical
    tokens; an OpenAI-compatible chat endpoint takes `messages` and renders
    them itself.
    """

    messages: tuple[tuple[str, str], ...]
    prompt_text: str | None
    prompt_token_ids: tuple[int, ...] | None
    seed: int


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float


class Backend(Protocol):
    name: str

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        """One completion per request, in request order. `adapter` selects a LoRA adapter
        that was named when the backend was opened."""
        ...

    def close(self) -> None:
        ...
