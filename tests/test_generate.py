"""Generate stage with a fake engine: caching, resume, engine sharing, ordering.

The real engines are exercised in test_backends_* and test_compare."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import harness.stages.generate as generate
from harness.config.engine import SamplingConfig
from harness.config.schema import CheckpointConfig
from harness.config.suites import Suite, SuiteItem
from harness.engines.base import ChatRequest, Completion
from harness.engines.checkpoint import ResolvedCheckpoint
from harness.errors import InfraError
from harness.records.cache import Cache


class FakeEngine:
    name = "fake"
    opened: list[tuple[str, tuple[str, ...]]] = []
    calls: list[int] = []
    fail_after: int | None = None

    def __init__(self, checkpoint: ResolvedCheckpoint, adapters: Sequence[str]) -> None:
        FakeEngine.opened.append((checkpoint.model_path, tuple(adapters)))

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        if FakeEngine.fail_after is not None and len(FakeEngine.calls) >= FakeEngine.fail_after:
            raise RuntimeError("engine died")
        FakeEngine.calls.append(len(requests))
        tag = adapter or "base"
        return [Completion(f"{tag}:{r.messages[-1][1]}", 3, 2, "stop", 0.01) for r in requests]

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeEngine.opened, FakeEngine.calls, FakeEngine.fail_after = [], [], None
    monkeypatch.setattr(generate, "open_backend", FakeEngine)


def checkpoint(name: str, fingerprint: str, adapter: str | None = None, chunk: int = 2) -> ResolvedCheckpoint:
    config = CheckpointConfig(name=name, model="/m", adapter=adapter, backend="transformers",
                              engine={"chunk_size": chunk})
    return ResolvedCheckpoint(config, f"{name}.yaml", "/m", None, fingerprint, None, "server", None)


SUITE = Suite("s", Path("s.yaml"), "", tuple(SuiteItem(id=f"q{i}", prompt=f"question {i}") for i in range(5)), (), "h")


def run(cache: Cache, **checkpoints: ResolvedCheckpoint) -> tuple[list, generate.GenerateStats]:
    written: list = []
    stats = generate.run_generation(checkpoints, [SUITE], cache, written.extend)  # type: ignore[arg-type]
    assert stats.total == len(written) == stats.cached + stats.generated
    return written, stats


def test_generates_in_chunks_then_serves_everything_from_cache(cache_path: Path) -> None:
    cache = Cache(cache_path)
    records, stats = run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp2"))
    assert [(r.role, r.item_id) for r in records] == [(role, f"q{i}") for role in ("base", "candidate")
                                                      for i in range(5)]
    assert FakeEngine.calls == [2, 2, 1, 2, 2, 1]
    assert (stats.generated, stats.cached) == (10, 0)
    FakeEngine.opened.clear()
    again, stats = run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp2"))
    assert (stats.generated, stats.cached, FakeEngine.opened) == (0, 10, [])
    assert [r.text for r in again] == [r.text for r in records]
    assert all(r.cached for r in again)


def test_a_changed_fingerprint_misses_the_cache(cache_path: Path) -> None:
    cache = Cache(cache_path)
    run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp1"))  # same weights: shared keys
    assert sum(FakeEngine.calls) == 5
    _, stats = run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp-new"))
    assert (stats.cached, stats.generated) == (5, 5)


def test_a_failed_run_resumes_without_redoing_finished_chunks(cache_path: Path) -> None:
    cache = Cache(cache_path)
    FakeEngine.fail_after = 2
    with pytest.raises(InfraError, match="the fake engine failed generating for b: RuntimeError: engine died"):
        run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp2"))
    FakeEngine.fail_after, FakeEngine.calls = None, []
    records, stats = run(cache, base=checkpoint("b", "fp1"), candidate=checkpoint("c", "fp2"))
    assert (stats.cached, stats.generated) == (4, 6)
    assert FakeEngine.calls == [1, 2, 2, 1]
    assert len({(r.role, r.item_id) for r in records}) == len(records) == 10


def test_base_and_adapter_share_one_engine(cache_path: Path) -> None:
    records, _ = run(Cache(cache_path), base=checkpoint("b", "fp1"),
                     candidate=checkpoint("c", "fp2", adapter="/lora"))
    assert FakeEngine.opened == [("/m", ("/lora",))]
    assert {r.text.split(":")[0] for r in records if r.role == "candidate"} == {"/lora"}
    assert {r.text.split(":")[0] for r in records if r.role == "base"} == {"base"}


def test_seed_only_keys_sampled_answers() -> None:
    greedy = [checkpoint("b", "fp"), checkpoint("b", "fp")]
    object.__setattr__(greedy[1].config.sampling, "seed", 7)
    keys = [generate.plan_work("base", c, generate.suite_items([SUITE]))[0].key for c in greedy]
    assert keys[0] == keys[1]
    sampled = CheckpointConfig(name="b", model="/m", backend="transformers",
                               sampling={"temperature": 0.7, "n": 2, "seed": 3})
    work = generate.plan_work("base", ResolvedCheckpoint(sampled, "f", "/m", None, "fp", None, "server"),
                              generate.suite_items([SUITE]))
    assert len(work) == 10
    assert work[0].key != work[1].key and [w.request.seed for w in work[:2]] == [3, 4]


class RecordingEngine(FakeEngine):
    """Answers with the prompt it was given, so a test sees what the engine received."""

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        FakeEngine.calls.append(len(requests))
        assert all(r.prompt_text and r.prompt_token_ids for r in requests)  # rendered for the engine
        return [Completion(f"{len(r.prompt_token_ids or ())}:{r.prompt_text}", 3, 2, "stop", 0.01)
                for r in requests]


def test_an_unchanged_rerun_loads_no_tokenizer_and_a_changed_one_renders_what_the_engine_needs(
        cache_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.demo.build import SHIPPED_BASE
    from harness.engines.checkpoint import resolve_checkpoint

    monkeypatch.setattr(generate, "open_backend", RecordingEngine)
    cache = Cache(cache_path)
    config = CheckpointConfig(name="b", model=str(SHIPPED_BASE), backend="transformers")
    first = resolve_checkpoint(config, "b.yaml", cache)
    assert first.preloaded_tokenizer is not None  # loaded once: its template compiled, its hash recorded
    records: list = []
    generate.run_generation({"base": first}, [SUITE], cache, records.extend)

    again = resolve_checkpoint(config, "b.yaml", cache)
    assert (again.fingerprint, again.template_hash) == (first.fingerprint, first.template_hash)
    rerun: list = []
    stats = generate.run_generation({"base": again}, [SUITE], cache, rerun.extend)
    assert stats.cached == 5 and again.preloaded_tokenizer is None  # served by hash alone: no tokenizer loaded
    assert [r.model_dump() for r in rerun] == [r.model_copy(update={"cached": True}).model_dump() for r in records]

    longer = resolve_checkpoint(config.model_copy(update={"sampling": SamplingConfig(max_tokens=9)}), "b.yaml", cache)
    changed: list = []
    stats = generate.run_generation({"base": longer}, [SUITE], cache, changed.extend)
    assert stats.generated == 5 and longer.preloaded_tokenizer is not None  # rendered for the engine
    assert [r.text for r in changed] == [r.text for r in records]
    assert [r.prompt_hash for r in changed] == [r.prompt_hash for r in records]
