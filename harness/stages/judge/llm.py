"""LLM judge calls: one call per order (or per graded answer), re-asked once
when the reply is not in format, over an OpenAI-compatible endpoint or a
checkpoint served here with vLLM's server on 127.0.0.1.

A call that fails after its retries becomes a failed outcome for its pair,
never an answer, and is never cached; an unparsed reply is a real outcome
(the judge answered, out of format) and is cached with its raw text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from harness.config.engine import SamplingConfig
from harness.engines.base import Caller, CallFailure, ChatRequest, Completion
from harness.records.cache import content_key
from harness.stages.judge.prompt import LoadedDefinition, Parsed, delimiter_tag, parse_reply, render

NAMESPACE = "judge/v1"


@dataclass(frozen=True)
class Task:
    """One judge conversation: a pair in one order, or one answer to grade."""

    key: str
    messages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Outcome:
    raw: str | None
    reask_raw: str | None
    verdict: str | None
    score: int | None
    reason: str
    reasked: bool
    parsed: bool
    prompt_tokens: int
    completion_tokens: int
    calls: int
    latency_s: float
    error: str | None = None
    cached: bool = False

    def cache_value(self) -> dict[str, Any]:
        # Every field is a plain value: no deep copy (dataclasses.asdict) needed.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("error", "cached")}


def sampling_of(loaded: LoadedDefinition, seed: int) -> SamplingConfig:
    d = loaded.definition
    return SamplingConfig(temperature=d.temperature, top_p=d.top_p, max_tokens=d.max_tokens, seed=seed)


def make_task(identity: dict[str, Any], loaded: LoadedDefinition, question: str, reference: str | None,
              answers: dict[str, str], seed: int) -> Task:
    """Key = everything that decides the reply: judge model, definition file, question, reference
    (when the template shows it), the answers by position (so the order is in the key), sampling and
    the delimiter seed. Equal content gives one key, one call."""
    d = loaded.definition
    parts = {"judge": identity, "definition": loaded.sha256, "question": question,
             "reference": reference if loaded.uses_reference else None, "answers": answers,
             "sampling": {"temperature": d.temperature, "top_p": d.top_p, "max_tokens": d.max_tokens},
             "seed": seed}
    key = content_key(parts)
    return Task(key, render(loaded, question, reference, answers, delimiter_tag(seed, key)))


def from_cache(value: dict[str, Any]) -> Outcome:
    return Outcome(**value, cached=True)


async def _ask(call: Caller, messages: tuple[tuple[str, str], ...], sampling: SamplingConfig,
               seed: int) -> Completion | CallFailure:
    return await call(ChatRequest(messages, None, None, seed), sampling)


async def judge_task(call: Caller, task: Task, loaded: LoadedDefinition, sampling: SamplingConfig) -> Outcome:
    """Ask; on a reply out of format, ask once more in the same conversation; then take what came."""
    mode = loaded.definition.mode
    first = await _ask(call, task.messages, sampling, sampling.seed)
    if isinstance(first, CallFailure):
        return _failed(first, calls=1)
    parsed = parse_reply(first.text, mode)
    if parsed is not None:
        return _outcome(first.text, None, parsed, [first])
    follow = task.messages + (("assistant", first.text), ("user", loaded.definition.reask))
    second = await _ask(call, follow, sampling, sampling.seed)
    if isinstance(second, CallFailure):
        return _failed(second, calls=2, raw=first.text)
    return _outcome(first.text, second.text, parse_reply(second.text, mode), [first, second])


def _outcome(raw: str, reask_raw: str | None, parsed: Parsed | None, replies: Sequence[Completion]) -> Outcome:
    return Outcome(raw=raw, reask_raw=reask_raw, verdict=parsed.verdict if parsed else None,
                   score=parsed.score if parsed else None, reason=parsed.reason if parsed else "",
                   reasked=reask_raw is not None, parsed=parsed is not None,
                   prompt_tokens=sum(r.prompt_tokens for r in replies),
                   completion_tokens=sum(r.completion_tokens for r in replies),
                   calls=len(replies), latency_s=round(sum(r.latency_s for r in replies), 4))


def _failed(failure: CallFailure, calls: int, raw: str | None = None) -> Outcome:
    return Outcome(raw=raw, reask_raw=None, verdict=None, score=None, reason="", reasked=calls > 1, parsed=False,
                   prompt_tokens=0, completion_tokens=0, calls=calls, latency_s=0.0, error=failure.error)
