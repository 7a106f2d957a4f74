"""Generate stage throughput against the raw engine ceiling, measured in one run.

ceiling: the engine alone on the same token ids (transformers: batched
`generate` with left padding; vLLM: one `LLM.generate` call).
harness: the generate stage end to end on the same prompts with an empty
cache (rendering, cache lookups and writes, records), then the same again
served from the cache.

    python bench/bench_generate.py [--engine transformers|vllm] [--repeat 3]

Prints tokens/s for each and the ratio harness / ceiling.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.config.engine import SamplingConfig
from harness.config.schema import DEFAULT_SUITES_DIR, CheckpointConfig
from harness.config.suites import load_suites
from harness.demo.build import ensure_demo_models
from harness.engines import open_backend
from harness.engines.checkpoint import resolve_checkpoint
from harness.records.cache import Cache
from harness.stages.generate import run_generation

SAMPLING = SamplingConfig(temperature=0, max_tokens=48)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    models = ensure_demo_models()
    suites = load_suites([str(DEFAULT_SUITES_DIR)], "bench")
    engine = {"dtype": "float32", "batch_size": 32, "enforce_eager": True, "gpu_memory_utilization": 0.2}
    tmp = Path(tempfile.mkdtemp())
    config = CheckpointConfig(name="bench", model=str(models.base), backend=args.engine, engine=engine,
                              sampling=SAMPLING)
    checkpoint = resolve_checkpoint(config, "bench.yaml", Cache(tmp / "fp.sqlite"))
    requests = [checkpoint.render(item.conversation, 0)[0] for s in suites for item in s.items]

    # Ceiling: the engine alone. Opened once; warm-up call excluded from timing.
    started = time.perf_counter()
    backend = open_backend(checkpoint)
    load_s = time.perf_counter() - started
    backend.generate(requests[:8], SAMPLING)
    best_raw = 0.0
    for _ in range(args.repeat):
        started = time.perf_counter()
        out = backend.generate(requests, SAMPLING)
        seconds = time.perf_counter() - started
        best_raw = max(best_raw, sum(c.completion_tokens for c in out) / seconds)
    backend.close()

    best_stage = best_cached = 0.0
    engine_share = 0.0
    for run in range(args.repeat):
        cache = Cache(tmp / f"cache{run}.sqlite")
        for attempt in ("fresh", "cached"):
            started = time.perf_counter()
            records, stats = run_generation({"base": checkpoint}, suites, cache, lambda _: None)
            seconds = time.perf_counter() - started
            rate = sum(r.completion_tokens for r in records) / seconds
            if attempt == "fresh":
                # Engine start-up and shutdown are fixed costs (about 30 s for vLLM here): rate the stage without them.
                rate = sum(r.completion_tokens for r in records) / (seconds - stats.open_seconds)
                if rate > best_stage:
                    best_stage, engine_share = rate, stats.engine_seconds / (seconds - stats.open_seconds)
            else:
                assert stats.generated == 0
                best_cached = max(best_cached, rate)
        cache.close()

    print(f"prompts: {len(requests)}, max_tokens: {SAMPLING.max_tokens}, engine: {args.engine}")
    print(f"ceiling (engine alone):        {best_raw:10.0f} tok/s")
    print(f"engine load (first, cold): {load_s:.1f} s")
    print(f"harness generate, empty cache: {best_stage:10.0f} tok/s  ratio {best_stage / best_raw:.2f} "
          f"(engine start-up/shutdown excluded; {100 * engine_share:.0f}% of the rest is in engine calls)")
    print(f"harness generate, from cache:  {best_cached:10.0f} tok/s  ratio {best_cached / best_raw:.1f}")


if __name__ == "__main__":
    main()
