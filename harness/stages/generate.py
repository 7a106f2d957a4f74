"""Generate stage: every checkpoint x every suite item -> GenerationRecords.

The stage streams: it takes the suite items a chunk at a time (the engine's chunk_size
answers), renders the chunk's prompts, looks their answers up in the content-addressed
cache, sends only the missing ones to the engine, writes those to the cache, and hands the
chunk's records on (to the run's JSONL) in plan order before it takes the next chunk. What
it holds does not grow with the suites: a killed run loses at most one chunk, the rerun
redoes only what is missing, and no engine is opened while the cache has every answer.

Checkpoints that share weights and engine settings (a base and its LoRA
adapter) share one engine: one load, identical batching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
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


def suite_items(suites: Sequence[Suite]) -> Iterator[tuple[str, SuiteItem]]:
    """(suite name, item) of every suite, in order."""
    for suite in suites:
        for item in suite.items:
            yield suite.name, item


def plan_work(role: Role, checkpoint: ResolvedCheckpoint, items: Iterable[tuple[str, SuiteItem]],
              memo: Cache | None = None) -> list[WorkItem]:
    """Every (item, sample) of `items` with its cache key. Each prompt is rendered once (all in one batched
    tokenizer call) whatever the samples per item; with `memo`, a prompt rendered before is known by its hash
    alone (checkpoint.render_many), so an unchanged rerun loads no tokenizer, and `_rendered` renders what an
    engine still has to answer."""
    sampling = checkpoint.config.sampling
    items = list(items)
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


def run_generation(checkpoints: dict[Role, ResolvedCheckpoint], suites: Sequence[Suite], cache: Cache,
                   on_records: OnRecords, on_progress: OnProgress | None = None) -> GenerateStats:
    """Answer every item of `suites` for every checkpoint; the records go to `on_records` a chunk at a time,
    in plan order (checkpoint, suite, item, sample). Returns the counts."""
    stats = GenerateStats()
    groups: dict[tuple[Any, ...], list[Role]] = {}
    for role, checkpoint in checkpoints.items():
        groups.setdefault(engine_group(checkpoint), []).append(role)
    for group, roles in groups.items():
        with _Engine(group, [checkpoints[r] for r in roles], cache, stats) as engine:
            for role in roles:
                checkpoint = checkpoints[role]
                per_chunk = max(1, checkpoint.config.engine.chunk_size // checkpoint.config.sampling.n)
                for items in _chunks(suite_items(suites), per_chunk):
                    records = engine.answer(plan_work(role, checkpoint, items, cache), checkpoint)
                    on_records(records)
                    if on_progress:
                        on_progress(len(records))
    return stats


class _Engine:
    """The engine of one group of checkpoints that can share it (engine_group), opened at the first answer
    the cache lacks, under the group's work lock: another process generating the same answers meanwhile is
    waited for, and what it stored is served from the cache. Closed (and the lock released) on exit."""

    def __init__(self, group: tuple[Any, ...], checkpoints: Sequence[ResolvedCheckpoint], cache: Cache,
                 stats: GenerateStats) -> None:
        self.group, self.checkpoints, self.cache, self.stats = group, checkpoints, cache, stats
        self.backend: Backend | None = None
        self._open = ExitStack()

    def __enter__(self) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._open:
            if self.backend is not None:
                closing = time.perf_counter()
                try:
                    self.backend.close()
                finally:
                    self.stats.open_seconds += time.perf_counter() - closing

    def answer(self, work: Sequence[WorkItem], checkpoint: ResolvedCheckpoint) -> list[GenerationRecord]:
        """The records of `work`: from the cache, else from the engine (then cached), in the order given."""
        found = self.cache.get_many(NAMESPACE, (w.key for w in work))
        todo = [w for w in work if w.key not in found]
        if todo and self.backend is None:
            self._start()
            found.update(self.cache.get_many(NAMESPACE, (w.key for w in todo)))
            todo = [w for w in todo if w.key not in found]
        made: dict[str, dict[str, Any]] = {}
        if todo:
            assert self.backend is not None
            rendered = _rendered(todo, checkpoint)
            started = time.perf_counter()
            completions = _generate(self.backend, rendered, checkpoint)
            self.stats.engine_seconds += time.perf_counter() - started
            made = _store(rendered, completions, self.cache)
        self.stats.total += len(work)
        self.stats.generated += len(todo)
        self.stats.cached += len(work) - len(todo)
        return [_record(w, checkpoint, made[w.key], False) if w.key in made
                else _record(w, checkpoint, found[w.key], True) for w in work]

    def _start(self) -> None:
        self._open.enter_context(self.cache.work_lock("generate", repr(self.group)))
        first = self.checkpoints[0]
        adapters = sorted({a for c in self.checkpoints if (a := c.config.adapter)})
        opened = time.perf_counter()
        self.backend = open_backend(first, adapters)
        self.stats.open_seconds += time.perf_counter() - opened
        self.stats.engines_opened.append(f"{self.backend.name}:{first.model_path}")


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


def _store(chunk: Sequence[WorkItem], completions: Sequence[Completion], cache: Cache) -> dict[str, dict[str, Any]]:
    """The answers by cache key, stored (cache first: a record on disk always has its cache entry)."""
    if len(completions) != len(chunk):
        raise RuntimeError(f"backend returned {len(completions)} answers for {len(chunk)} prompts")
    values = {w.key: _completion_fields(c) for w, c in zip(chunk, completions)}
    cache.put_many(NAMESPACE, values)
    return values


def _completion_fields(completion: Completion) -> dict[str, Any]:
    return {"text": completion.text, "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "latency_s": completion.latency_s}


def _chunks(items: Iterable[tuple[str, SuiteItem]], size: int) -> Iterator[list[tuple[str, SuiteItem]]]:
    chunk: list[tuple[str, SuiteItem]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
