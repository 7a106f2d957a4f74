"""Generate stage: every checkpoint x every suite item -> GenerationRecords.

Answers are looked up in the content-addressed cache first; only missing ones
go to an engine, in chunks, and each chunk is written to the cache and the
run's JSONL as soon as it returns. A killed run therefore loses at most one
chunk, and the rerun redoes only what is missing.

Checkpoints that share weights and engine settings (a base and its LoRA
adapter) share one engine: one load, identical batching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.config.suites import Suite, SuiteItem
from harness.engines import choose_backend, open_backend
from harness.engines.base import Backend, ChatRequest, Completion
from harness.engines.checkpoint import RenderedPrompt, ResolvedCheckpoint, unrendered
from harness.errors import HarnessError, InfraError
from harness.records.cache import Cache, content_key
from harness.records.stage_records import GenerationRecord, Role

NAMESPACE = "generation/v1"
OnRecords = Callable[[Sequence[GenerationRecord]], None]
OnProgress = Callable[[int], None]


@dataclass(frozen=True)
class WorkItem:
    role: Role
    suite: str
    item: SuiteItem
    sample_index: int
    request: ChatRequest
    rendered: RenderedPrompt
    key: str


@dataclass
class GenerateStats:
    total: int = 0
    cached: int = 0
    generated: int = 0
    engines_opened: list[str] = field(default_factory=list)
    engine_seconds: float = 0.0
    """Time inside engine generate calls."""
    open_seconds: float = 0.0
    """Time spent starting and stopping engines (loading weights, vLLM start-up and shutdown)."""


def generation_key(checkpoint: ResolvedCheckpoint, rendered: RenderedPrompt, seed: int) -> str:
    sampling = checkpoint.config.sampling
    parts: dict[str, Any] = {
        "model": checkpoint.fingerprint, "template": checkpoint.template_hash, "prompt": rendered.hash,
        # Engines and precisions can differ in greedy text; never serve one's answers as another's.
        "backend": choose_backend(checkpoint.config.backend), "dtype": checkpoint.config.engine.dtype,
        "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
    }
    if sampling.temperature > 0:  # greedy answers do not depend on the seed
        parts["seed"] = seed
    if checkpoint.config.engine.extra:  # (absent otherwise, so that earlier answers keep their key)
        parts["engine_extra"] = checkpoint.config.engine.extra
    return content_key(parts)


def plan_work(role: Role, checkpoint: ResolvedCheckpoint, suites: Sequence[Suite],
              memo: Cache | None = None) -> list[WorkItem]:
    """Every (item, sample) with its cache key. Each prompt is rendered once (all in one batched tokenizer
    call) whatever the samples per item; with `memo`, a prompt rendered before is known by its hash alone
    (checkpoint.render_many), so an unchanged rerun loads no tokenizer, and `_rendered` renders what an
    engine still has to answer."""
    sampling = checkpoint.config.sampling
    items = [(suite.name, item) for suite in suites for item in suite.items]
    prompts = checkpoint.render_many([item.conversation for _, item in items], sampling.seed, memo)
    work = []
    for (suite, item), (request, rendered) in zip(items, prompts):
        for sample in range(sampling.n):
            seed = sampling.seed + sample
            sampled = request if sample == 0 else replace(request, seed=seed)
            work.append(WorkItem(role, suite, item, sample, sampled, rendered,
                                 generation_key(checkpoint, rendered, seed)))
    return work


def _record(work: WorkItem, checkpoint: ResolvedCheckpoint, completion: dict[str, Any],
            cached: bool) -> GenerationRecord:
    return GenerationRecord(role=work.role, checkpoint=checkpoint.name, suite=work.suite, item_id=work.item.id,
                            sample_index=work.sample_index, prompt_hash=work.rendered.hash, cache_key=work.key,
                            cached=cached, **completion)


def engine_group(checkpoint: ResolvedCheckpoint) -> tuple[Any, ...]:
    """Checkpoints with equal groups can share one engine (adapters differ only)."""
    config = checkpoint.config
    kind = choose_backend(config.backend)
    if kind == "openai":
        assert config.endpoint is not None
        return (kind, config.endpoint.base_url, checkpoint.model_path, config.endpoint.api)
    return (kind, checkpoint.model_path, checkpoint.tokenizer_path, checkpoint.template_hash,
            config.engine.model_dump_json())


class _Collector:
    """Keeps one record per (role, suite, item, sample), counts them, and passes them on."""

    def __init__(self, on_records: OnRecords, on_progress: OnProgress | None) -> None:
        self.done: dict[tuple[str, str, str, int], GenerationRecord] = {}
        self.stats = GenerateStats()
        self.on_records, self.on_progress = on_records, on_progress

    def add(self, records: list[GenerationRecord], cached: bool) -> None:
        if not records:
            return
        for r in records:
            self.done[(r.role, r.suite, r.item_id, r.sample_index)] = r
        if cached:
            self.stats.cached += len(records)
        else:
            self.stats.generated += len(records)
        self.on_records(records)
        if self.on_progress:
            self.on_progress(len(records))

    def from_cache(self, work: Sequence[WorkItem], checkpoint: ResolvedCheckpoint, cache: Cache) -> list[WorkItem]:
        """Record what the cache holds; return the work still to do."""
        hits = cache.get_many(NAMESPACE, (w.key for w in work))
        self.add([_record(w, checkpoint, hits[w.key], True) for w in work if w.key in hits], cached=True)
        return [w for w in work if w.key not in hits]


def run_generation(checkpoints: dict[Role, ResolvedCheckpoint], suites: Sequence[Suite], cache: Cache,
                   on_records: OnRecords, on_progress: OnProgress | None = None) -> tuple[list[GenerationRecord],
                                                                                          GenerateStats]:
    collector = _Collector(on_records, on_progress)
    pending: dict[Role, list[WorkItem]] = {}
    order: list[tuple[str, str, str, int]] = []
    for role, checkpoint in checkpoints.items():
        work = plan_work(role, checkpoint, suites, cache)
        order.extend((role, w.suite, w.item.id, w.sample_index) for w in work)
        collector.stats.total += len(work)
        pending[role] = collector.from_cache(work, checkpoint, cache)

    groups: dict[tuple[Any, ...], list[Role]] = {}
    for role, checkpoint in checkpoints.items():
        if pending[role]:
            groups.setdefault(engine_group(checkpoint), []).append(role)
    for group, roles in groups.items():
        with cache.work_lock("generate", repr(group)):
            _generate_group(roles, checkpoints, pending, cache, collector)
    return [collector.done[k] for k in order], collector.stats


def _generate_group(roles: list[Role], checkpoints: dict[Role, ResolvedCheckpoint],
                    pending: dict[Role, list[WorkItem]], cache: Cache, collector: _Collector) -> None:
    """One engine for the roles that can share it, opened only if the cache still lacks answers: another
    process may have generated them while this one waited for the group's lock."""
    for role in roles:
        pending[role] = collector.from_cache(pending[role], checkpoints[role], cache)
    roles = [r for r in roles if pending[r]]
    if not roles:
        return
    first = checkpoints[roles[0]]
    adapters = sorted({a for r in roles if (a := checkpoints[r].config.adapter)})
    opened = time.perf_counter()
    backend = open_backend(first, adapters)
    collector.stats.open_seconds += time.perf_counter() - opened
    collector.stats.engines_opened.append(f"{backend.name}:{first.model_path}")
    try:
        for role in roles:
            checkpoint = checkpoints[role]
            # An earlier role may have just produced the same keys (identical weights).
            todo = collector.from_cache(pending[role], checkpoint, cache)
            for chunk in _chunks(todo, checkpoint.config.engine.chunk_size):
                chunk = _rendered(chunk, checkpoint)
                started = time.perf_counter()
                completions = _generate(backend, chunk, checkpoint)
                collector.stats.engine_seconds += time.perf_counter() - started
                collector.add(_store(chunk, completions, checkpoint, cache), cached=False)
    finally:
        closing = time.perf_counter()
        backend.close()
        collector.stats.open_seconds += time.perf_counter() - closing


def _rendered(chunk: Sequence[WorkItem], checkpoint: ResolvedCheckpoint) -> Sequence[WorkItem]:
    """The chunk with every prompt rendered (text and token ids) for a local engine: plan_work knew some by
    their hash alone. Rendering them again must give that hash, which their cache keys were made from."""
    todo = [i for i, w in enumerate(chunk) if checkpoint.has_tokenizer and unrendered(w.request)]
    if not todo:
        return chunk
    fresh = checkpoint.render_many([chunk[i].item.conversation for i in todo], 0)
    out = list(chunk)
    for i, (request, rendered) in zip(todo, fresh):
        if rendered.hash != chunk[i].rendered.hash:
            raise InfraError(f"{checkpoint.name}: item {chunk[i].item.id} renders differently from the cached "
                             "rendering of the same tokenizer files; delete the cache and rerun")
        out[i] = replace(chunk[i], request=replace(request, seed=chunk[i].request.seed), rendered=rendered)
    return out


def _generate(backend: Backend, chunk: Sequence[WorkItem], checkpoint: ResolvedCheckpoint) -> list[Completion]:
    try:
        return backend.generate([w.request for w in chunk], checkpoint.config.sampling,
                                adapter=checkpoint.config.adapter)
    except HarnessError:
        raise
    except Exception as exc:  # the engine broke mid-run (out of memory, a dead worker): not the input's fault
        raise InfraError(f"the {backend.name} engine failed generating for {checkpoint.name}: "
                         f"{type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "(no message)"


def _store(chunk: Sequence[WorkItem], completions: Sequence[Completion], checkpoint: ResolvedCheckpoint,
           cache: Cache) -> list[GenerationRecord]:
    if len(completions) != len(chunk):
        raise RuntimeError(f"backend returned {len(completions)} answers for {len(chunk)} prompts")
    values = {w.key: _completion_fields(c) for w, c in zip(chunk, completions)}
    cache.put_many(NAMESPACE, values)  # cache first: a record on disk always has its cache entry
    return [_record(w, checkpoint, values[w.key], False) for w in chunk]


def _completion_fields(completion: Completion) -> dict[str, Any]:
    return {"text": completion.text, "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "latency_s": completion.latency_s}


def _chunks(items: Sequence[WorkItem], size: int) -> Iterable[Sequence[WorkItem]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
