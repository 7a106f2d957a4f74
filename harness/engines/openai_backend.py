"""OpenAI-compatible endpoint backend (vLLM's server, OpenAI, others).

Async with bounded concurrency; each request has a timeout and is retried
with exponential backoff and jitter on 429, 5xx, timeouts and connection
errors. A request that still fails raises InfraError: a failure is never
turned into an answer (and so never cached). `session()` serves callers that
must keep going past one failed request (the judge): each call returns a
Completion or a CallFailure instead of raising for the whole batch.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from harness.config.engine import EndpointConfig, SamplingConfig
from harness.engines.base import Caller, CallFailure, ChatRequest, Completion
from harness.errors import InfraError, MissingDependency

RETRYABLE_STATUS = {408, 409, 425, 429}  # and every 5xx


class EndpointError(InfraError):
    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class OpenAIBackend:
    name = "openai"

    def __init__(self, endpoint: EndpointConfig, model: str, file: str = "") -> None:
        try:
            import openai
        except ImportError:
            raise MissingDependency("openai", "pip install openai") from None
        self._openai = openai
        self.endpoint = endpoint
        self.model = endpoint.model or model
        self._key = endpoint.api_key(file, "endpoint.api_key_env")
        self.retries_used = 0

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        return asyncio.run(self._generate_all(requests, sampling))

    def _client(self) -> Any:
        # The client's own retries are off: ours count attempts and back off with jitter.
        return self._openai.AsyncOpenAI(base_url=self.endpoint.base_url, api_key=self._key,
                                        timeout=self.endpoint.timeout_s, max_retries=0)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Caller]:
        """One client and one concurrency bound shared by many calls made in this event loop."""
        client = self._client()
        gate = asyncio.Semaphore(self.endpoint.max_concurrency)

        async def call(request: ChatRequest, sampling: SamplingConfig) -> Completion | CallFailure:
            async with gate:
                try:
                    return await self._with_retries(client, request, sampling)
                except EndpointError as exc:
                    return CallFailure(str(exc), exc.attempts)
        try:
            yield call
        finally:
            await client.close()

    async def _generate_all(self, requests: Sequence[ChatRequest], sampling: SamplingConfig) -> list[Completion]:
        client = self._client()
        gate = asyncio.Semaphore(self.endpoint.max_concurrency)
        try:
            async def one(request: ChatRequest) -> Completion:
                async with gate:
                    return await self._with_retries(client, request, sampling)
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await client.close()

    async def _with_retries(self, client: Any, request: ChatRequest, sampling: SamplingConfig) -> Completion:
        openai = self._openai
        for attempt in range(self.endpoint.max_retries + 1):
            asked: float | None = None
            try:
                return await self._call(client, request, sampling)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                error: Exception = exc
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in RETRYABLE_STATUS:
                    raise EndpointError(f"{self.endpoint.base_url}: HTTP {exc.status_code}: {_short(exc)}",
                                        attempt + 1) from None
                error, asked = exc, retry_after_s(exc.response.headers, self.endpoint.max_retry_after_s)
            except (_BadResponse, openai.APIResponseValidationError, ValueError) as exc:
                # A 200 whose body is not a completion (truncated JSON, an HTML error page): the
                # server or a proxy misbehaved, which may pass; the openai client lets
                # json.JSONDecodeError (a ValueError) escape for a malformed body.
                error = exc
            if attempt == self.endpoint.max_retries:
                raise EndpointError(f"{self.endpoint.base_url}: gave up after {attempt + 1} attempts: "
                                    f"{_short(error)}", attempt + 1) from None
            self.retries_used += 1
            delay = self.endpoint.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)  # jitter spreads storms
            await asyncio.sleep(max(delay, asked or 0.0))  # a server that says when to come back is believed
        raise AssertionError("unreachable")

    async def _call(self, client: Any, request: ChatRequest, sampling: SamplingConfig) -> Completion:
        common = self._settings(request, sampling)
        started = time.perf_counter()
        if self.endpoint.api == "chat":
            response = await client.chat.completions.create(
                messages=[{"role": r, "content": c} for r, c in request.messages], **common)
        else:
            response = await client.completions.create(prompt=request.prompt_text, **common)
        latency = time.perf_counter() - started
        # A body of the wrong shape comes back unvalidated (or as a plain str): read it defensively.
        choices = getattr(response, "choices", None)
        first = choices[0] if isinstance(choices, list) and choices else None
        source = getattr(first, "message", None) if self.endpoint.api == "chat" else first
        text = getattr(source, "content" if self.endpoint.api == "chat" else "text", None)
        if not isinstance(text, str):
            raise _BadResponse("response had no text")
        usage = getattr(response, "usage", None)
        return Completion(text=text, prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
                          completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
                          finish_reason=str(getattr(first, "finish_reason", None) or "stop"), latency_s=latency)

    def _settings(self, request: ChatRequest, sampling: SamplingConfig) -> dict[str, Any]:
        """What a request says besides its messages: the reply limit under the name the API takes, and
        the sampling settings this endpoint's model accepts (EndpointConfig.sampling_sent)."""
        length = self.endpoint.length_field if self.endpoint.api == "chat" else "max_tokens"
        values = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": request.seed}
        return {"model": self.model, length: sampling.max_tokens,
                **{name: values[name] for name in self.endpoint.sampling_sent(self.model)}}

    def close(self) -> None:
        return None


class _BadResponse(Exception):
    pass


def retry_after_s(headers: Any, cap: float) -> float | None:
    """Seconds a 429 or 503 asks the client to wait (Retry-After: seconds or an HTTP date; OpenAI's
    retry-after-ms), at most `cap`; None when it does not say."""
    from email.utils import parsedate_to_datetime

    raw_ms, raw = headers.get("retry-after-ms"), headers.get("retry-after")
    seconds: float | None = None
    try:
        if raw_ms is not None:
            seconds = float(raw_ms) / 1000
        elif raw is not None:
            seconds = float(raw)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return None if seconds is None else min(max(seconds, 0.0), cap)


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:200] + ("..." if len(text) > 200 else "")
