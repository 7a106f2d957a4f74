"""Generate stage throughput against the raw engine ceiling, measured side by side in one run.

One engine is opened per model and shared by both sides, so they get the same warm-up (one
untimed call of every prompt first) and the same process; then, `--repeat` times, interleaved:

ceiling: the library alone on the same token ids (vLLM: one `LLM.generate` call with one
`SamplingParams`; transformers: `model.generate` over length-sorted batches with left padding).
harness: the generate stage end to end on the same prompts with an empty cache (rendering every
prompt with the chat template, cache lookups and writes, records), then the same again served
from the cache. The stage's engine start-up and shutdown are not counted (the stage is handed
the open engine; start-up is a fixed cost, about 30 s for vLLM here, printed once).

    python bench/bench_generate.py [--engine transformers|vllm] [--model demo|30m|all] [--repeat 9]

Prints medians (tokens/s) and the median of the per-round ratios harness / ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import bench_model, describe  # noqa: E402

import harness.stages.generate as generate_stage  # noqa: E402
from harness.config.engine import SamplingConfig  # noqa: E402
from harness.config.schema import DEFAULT_SUITES_DIR, CheckpointConfig  # noqa: E402
from harness.config.suites import load_suites  # noqa: E402
from harness.engines import open_backend  # noqa: E402
from harness.engines.base import Backend, ChatRequest  # noqa: E402
from harness.engines.checkpoint import ResolvedCheckpoint, resolve_checkpoint  # noqa: E402
from harness.records.cache import Cache  # noqa: E402

SAMPLING = SamplingConfig(temperature=0, max_tokens=48)


class Shared:
    """The bench's open engine handed to the stage; the stage's close() leaves it open."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.name = backend, backend.name

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Any]:
        return self.backend.generate(requests, sampling, adapter)

    def close(self) -> None:
        pass


def ceiling_call(backend: Any, engine: str, token_ids: list[list[int]]) -> int:
    """The library alone; returns the tokens generated."""
    if engine == "vllm":
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=SAMPLING.max_tokens)
        outputs = backend.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in token_ids], params,
                                       use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs)
    import torch

    model, pad, stop = backend.model, backend.pad_id, backend.stop_ids
    order = sorted(token_ids, key=len)
    tokens = 0
    for start in range(0, len(order), backend.batch_size):
        batch = order[start:start + backend.batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                 max_new_tokens=SAMPLING.max_tokens, pad_token_id=pad, eos_token_id=stop)
        for row in out[:, width:].tolist():
            stop_at = next((i for i, t in enumerate(row) if t in stop), None)
            tokens += len(row) if stop_at is None else stop_at + 1
    return tokens


def bench(model_name: str, engine_name: str, repeat: int) -> dict[str, Any]:
    model = bench_model(model_name)
    suites = load_suites([str(DEFAULT_SUITES_DIR)], "bench")
    engine = {"dtype": "float32", "batch_size": 32, "enforce_eager": True, "gpu_memory_utilization": 0.2}
    tmp = Path(tempfile.mkdtemp())
    config = CheckpointConfig(name="bench", model=str(model), backend=engine_name, engine=engine, sampling=SAMPLING)
    checkpoint: ResolvedCheckpoint = resolve_checkpoint(config, "bench.yaml", Cache(tmp / "fp.sqlite"))
    token_ids = [list(checkpoint.render(item.conversation, 0)[0].prompt_token_ids or ())
                 for s in suites for item in s.items]

    started = time.perf_counter()
    backend = open_backend(checkpoint)
    load_s = time.perf_counter() - started
    generate_stage.open_backend = lambda checkpoint, adapters=(): Shared(backend)  # type: ignore[assignment]
    started = time.perf_counter()
    ceiling_call(backend, engine_name, token_ids)  # warm-up, both sides: the same engine, every prompt once
    first_s = time.perf_counter() - started
    ceiling, ceiling_s, fresh, cached, ratios, engine_share = [], [], [], [], [], []
    try:
        for run in range(repeat):
            started = time.perf_counter()
            tokens = ceiling_call(backend, engine_name, token_ids)
            ceiling_s.append(time.perf_counter() - started)
            ceiling.append(tokens / ceiling_s[-1])

            cache = Cache(tmp / f"cache{run}.sqlite")
            started = time.perf_counter()
            records, stats = generate_stage.run_generation({"base": checkpoint}, suites, cache, lambda _: None)
            seconds = time.perf_counter() - started
            assert stats.generated == len(token_ids)
            fresh.append(sum(r.completion_tokens for r in records) / seconds)
            engine_share.append(stats.engine_seconds / seconds)
            ratios.append(fresh[-1] / ceiling[-1])
            started = time.perf_counter()
            records, stats = generate_stage.run_generation({"base": checkpoint}, suites, cache, lambda _: None)
            assert stats.generated == 0
            cached.append(sum(r.completion_tokens for r in records) / (time.perf_counter() - started))
            cache.close()
    finally:
        backend.close()
    return {"model": model_name, "engine": engine_name, "prompts": len(token_ids), "load_s": load_s,
            "first_s": first_s, "warm_s": statistics.median(ceiling_s),
            "ceiling": statistics.median(ceiling), "fresh": statistics.median(fresh),
            "cached": statistics.median(cached), "ratio": statistics.median(ratios),
            "ratios": ratios, "engine_share": statistics.median(engine_share), **describe(model)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--model", choices=("demo", "30m", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    for name in ("demo", "30m") if args.model == "all" else (args.model,):
        r = bench(name, args.engine, args.repeat)
        print(f"model: {name} ({r['parameters'] / 1e6:.1f}M parameters), engine: {args.engine}, "
              f"prompts: {r['prompts']}, max_tokens: {SAMPLING.max_tokens}, {args.repeat} interleaved rounds, medians")
        print(f"  engine load (once, not counted): {r['load_s']:.1f} s; its first call (the warm-up) "
              f"{r['first_s']:.2f} s, a warm call {r['warm_s']:.2f} s")
        print(f"  ceiling (library alone):         {r['ceiling']:10.0f} tok/s")
        print(f"  harness generate, empty cache:   {r['fresh']:10.0f} tok/s  ratio {r['ratio']:.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in r['ratios'])}; "
              f"{100 * r['engine_share']:.0f}% of it in engine calls)")
        print(f"  harness generate, from cache:    {r['cached']:10.0f} tok/s  ratio {r['cached'] / r['ceiling']:.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
