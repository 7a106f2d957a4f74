"""The forgetting stage against direct lm-eval, measured side by side in one run.

ceiling: `lm_eval.simple_evaluate` called directly (hf model type, CPU, batch 32) on the shipped
offline tasks for one checkpoint, as a user would call it, with per-sample logs (the stage needs
them) and no bootstrap (the stage's statistics are its own). lm-eval has no argument that turns
off its environment report (torch's collect_env: `pip list` and more in subprocesses, about 0.9 s
a call, and the git hash of the working directory); the stage patches both out (the manifest
records packages, hardware and git itself), so the ceiling patches them out the same way
(`--env-report` leaves them on, for the call as users make it).
harness: `run_forgetting` on an empty cache (the model loaded once, one simple_evaluate per task
so finished tasks survive a kill, records for both roles, the result cache). The candidate is the
same checkpoint, so its role is served by the cache: the wall time counts its records too.

The two alternate `--repeat` times in one process; medians, and the median of per-round ratios.

    python bench/bench_forgetting.py [--model demo|30m|all] [--repeat 3] [--limit N] [--env-report]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import bench_model, describe  # noqa: E402

from harness.config.schema import CheckpointConfig, ForgettingConfig  # noqa: E402
from harness.engines.checkpoint import resolve_checkpoint  # noqa: E402
from harness.records.cache import Cache  # noqa: E402
from harness.stages.forgetting import resolve_tasks, run_forgetting  # noqa: E402


@contextlib.contextmanager
def no_env_report(off: bool) -> Iterator[None]:
    import lm_eval.evaluator as evaluator

    saved = evaluator.add_env_info, evaluator.get_git_commit_hash
    if off:
        evaluator.add_env_info, evaluator.get_git_commit_hash = (lambda results: None), (lambda: None)
    try:
        yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = saved


def direct(model: Path, tasks: list[Any], limit: int | None, env_report: bool) -> tuple[float, int]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    with no_env_report(not env_report):
        result = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(model), "dtype": "float32"},
                                         tasks=[t.config for t in tasks],
                                         task_manager=TaskManager(include_defaults=False), batch_size=32,
                                         device="cpu", limit=limit, log_samples=True, bootstrap_iters=0)
    assert result is not None
    return time.perf_counter() - started, sum(len(s) for s in result["samples"].values())


def bench(name: str, repeat: int, limit: int | None, env_report: bool) -> dict[str, Any]:
    model = bench_model(name)
    config = ForgettingConfig(limit=limit, batch_size=32)
    tasks = resolve_tasks(config, "bench")
    tmp = Path(tempfile.mkdtemp())
    checkpoint = resolve_checkpoint(CheckpointConfig(name="base", model=str(model), backend="transformers",
                                                     engine={"dtype": "float32"}), "bench", Cache(tmp / "fp.sqlite"))
    pair = {"base": checkpoint, "candidate": checkpoint}
    direct(model, tasks, 2, env_report)  # warm-up for both: imports, file-system caches, lm-eval's task loading
    raw, stage, lm_part, ratios = [], [], [], []
    docs = 0
    for attempt in range(repeat):
        seconds, docs = direct(model, tasks, limit, env_report)
        raw.append(seconds)
        fresh = Cache(tmp / f"fresh-{attempt}.sqlite")
        started = time.perf_counter()
        _, stats = run_forgetting(config, tasks, pair, fresh, tmp / f"lm-{attempt}", 0, lambda _: None)
        stage.append(time.perf_counter() - started)
        lm_part.append(stats.engine_seconds["base"])
        ratios.append(raw[-1] / stage[-1])
        fresh.close()
    again_cache = Cache(tmp / "fresh-0.sqlite")
    started = time.perf_counter()
    _, again = run_forgetting(config, tasks, pair, again_cache, tmp, 0, lambda _: None)
    rerun_s = time.perf_counter() - started
    return {"docs": docs, "tasks": len(tasks), "raw": statistics.median(raw), "stage": statistics.median(stage),
            "lm_part": statistics.median(lm_part), "ratio": statistics.median(ratios), "ratios": ratios,
            "rerun_s": rerun_s, "rerun_evaluated": again.evaluated, **describe(model)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("demo", "30m", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--env-report", action="store_true",
                        help="leave lm-eval's environment report on in the direct call (as users call it)")
    args = parser.parse_args()
    for name in ("demo", "30m") if args.model == "all" else (args.model,):
        r = bench(name, args.repeat, args.limit, args.env_report)
        report = "on in the direct call" if args.env_report else "off on both sides"
        print(f"model: {name} ({r['parameters'] / 1e6:.1f}M parameters); {r['tasks']} tasks, {r['docs']} documents, "
              f"hf on the CPU, batch 32; environment report {report}; {args.repeat} interleaved rounds, medians")
        print(f"  ceiling (lm_eval.simple_evaluate):  {r['raw']:7.2f} s  {r['docs'] / r['raw']:7.0f} docs/s")
        print(f"  harness forgetting, empty cache:    {r['stage']:7.2f} s  ratio {r['ratio']:.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in r['ratios'])}; lm-eval part {r['lm_part']:.2f} s)")
        print(f"  harness forgetting, rerun:          {r['rerun_s']:7.3f} s  "
              f"({r['rerun_evaluated']} tasks evaluated, no model loaded)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
