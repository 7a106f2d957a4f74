"""The one protocol every engine implements: a batch of requests in, completions out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from harness.config.engine import SamplingConfig


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


@dataclass(frozen=True)
class CallFailure:
    """A request that still failed after its retries (or a client error that is never retried)."""

    error: str
    attempts: int


Caller = Callable[[ChatRequest, SamplingConfig], Awaitable["Completion | CallFailure"]]
"""One request in, its completion or its failure out; many may be in flight at once."""


class CallingBackend(Backend, Protocol):
    """An engine behind an endpoint, called one request at a time with many in flight: the judge's
    engine, whose calls depend on earlier replies (a re-ask) and whose failures are per call."""

    retries_used: int

    def session(self) -> AbstractAsyncContextManager[Caller]:
        """One client and one concurrency bound shared by the calls made in one event loop."""
        ...
