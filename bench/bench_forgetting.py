"""The forgetting stage against direct lm-eval, measured in one run.

ceiling: `lm_eval.simple_evaluate` called directly (hf model type, CPU) on the shipped
offline tasks for one checkpoint, as a user would call it.
harness: `run_forgetting` for the same checkpoint on an empty cache (the model loaded
once, one simple_evaluate per task so finished tasks survive a kill, records, the
result cache), then again from the cache. The harness skips lm-eval's environment
report (torch's collect_env, about 0.9 s a call); the manifest records that itself.

    python bench/bench_forgetting.py [--limit N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from harness.config.schema import CheckpointConfig, ForgettingConfig  # noqa: E402
from harness.demo.build import ensure_demo_models  # noqa: E402
from harness.engines.checkpoint import resolve_checkpoint  # noqa: E402
from harness.records.cache import Cache  # noqa: E402
from harness.stages.forgetting import resolve_tasks, run_forgetting  # noqa: E402


def direct(model: Path, tasks: list, limit: int | None) -> tuple[float, int]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    result = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(model), "dtype": "float32"},
                                     tasks=[t.config for t in tasks], task_manager=TaskManager(include_defaults=False),
                                     batch_size=32, device="cpu", limit=limit, log_samples=True, bootstrap_iters=0)
    assert result is not None
    return time.perf_counter() - started, sum(len(s) for s in result["samples"].values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    models = ensure_demo_models()
    config = ForgettingConfig(limit=args.limit, batch_size=32)
    tasks = resolve_tasks(config, "bench")
    tmp = Path(tempfile.mkdtemp())
    checkpoint = resolve_checkpoint(CheckpointConfig(name="base", model="demo:base", backend="transformers",
                                                     engine={"dtype": "float32"}), "bench", Cache(tmp / "fp.sqlite"))
    # Best of two for each side, so neither pays the first call's imports and file-system warm-up.
    raw_s, docs = min(direct(models.base, tasks, args.limit) for _ in range(2))
    # run_forgetting compares two checkpoints; the same one twice is timed per role.
    pair = {"base": checkpoint, "candidate": checkpoint}
    runs = []
    for attempt in range(2):
        fresh = Cache(tmp / f"fresh-{attempt}.sqlite")
        runs.append(run_forgetting(config, tasks, pair, fresh, tmp / f"lm-{attempt}", 0, lambda _: None)[1])
    first = min(runs, key=lambda r: r.engine_seconds["base"])
    _, again = run_forgetting(config, tasks, pair, fresh, tmp, 0, lambda _: None)
    harness_s = first.engine_seconds["base"]
    print(f"{len(tasks)} tasks, {docs} documents, demo base, hf on the CPU, batch 32")
    print(f"ceiling (lm_eval.simple_evaluate):   {raw_s:6.2f} s  {docs / raw_s:7.0f} docs/s")
    print(f"harness forgetting, empty cache:     {harness_s:6.2f} s  ratio {raw_s / harness_s:.2f}")
    print(f"harness forgetting, the same again:  {first.engine_seconds['candidate']:6.2f} s  "
          f"(second role: same fingerprint, served by the result cache)")
    print(f"harness forgetting, rerun:           {again.engine_seconds['base']:6.3f} s  "
          f"({again.evaluated} tasks evaluated, no model loaded)")


if __name__ == "__main__":
    main()
