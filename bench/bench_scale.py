"""The harness's own overhead and memory at the scale users run: 1k, 10k and 100k suite items.

Everything after the model is ours: rendering every prompt, cache lookups and writes, records
(JSONL while a stage runs, Parquet when it completes), rule checks, the offline rules judge's
bookkeeping (pairs, canaries, records), stats, gates, the run's decision files, and the report
opening the run. The engine answers instantly (an in-process Backend, plugged in where the tests
plug theirs: `harness.stages.generate.open_backend`), so what is left is the harness. No forgetting
stage (lm-eval is benched in bench_forgetting.py).

Each size runs `harness compare`'s pipeline (prepare + run_compare, the demo base's tokenizer renders
every prompt, both checkpoints local so the harness renders, as with vLLM) in a fresh subprocess, so
its peak RSS (VmHWM) is its own; the run is then repeated from the cache in the same process (every
answer served from the cache). The report's Runs and Overview pages then open the largest run
through Streamlit's AppTest, in another fresh process.

    python bench/bench_scale.py [--sizes 1000,10000,100000] [--repeat 3] [--render tokenizer|server]

Prints medians over the repeats: per-item overhead (ms/item, the pipeline's wall time less the time
inside engine calls and engine start-up), its parts, stats and gates together, peak RSS and its growth
per item, and the report's page times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_MAX_TOKENS, CANDIDATE_MAX_TOKENS = 64, 96
"""Both checkpoints are the demo base; their sampling differs, so their answers have their own cache keys
(and the instant engine tells the two apart by it)."""


# the world ---------------------------------------------------------------------------------------------

def _mix(i: int) -> int:
    return (i * 2654435761) % 97


def write_suites(folder: Path, items: int) -> None:
    """Two suites of items/2 sums each: a JSONL file (checks per item) and a YAML file (shared checks)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = items // 2
    checks = [{"type": "no_apology_preamble"}, {"type": "number_matches_reference"},
              {"type": "max_words", "limit": 30}]
    with (folder / "sums.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(half):
            a, b = i % 1000, (i * 7) % 1000
            fh.write(json.dumps({"id": f"sum-{i:06d}", "prompt": f"Q{i}: what is {a} plus {b}?",
                                 "reference": str(a + b), "tags": ["sums"], "checks": checks}) + "\n")
    lines = ["name: products", "description: synthetic products for the scale bench", "checks:"]
    lines += [f"  - {json.dumps(c)}" for c in checks]
    lines.append("items:")
    for i in range(half, items):
        a, b = i % 100, (i * 3) % 100
        lines += [f"  - id: prod-{i:06d}", f"    prompt: \"Q{i}: what is {a} times {b}?\"",
                  f"    reference: \"{a * b}\"", "    tags: [products]"]
    (folder / "products.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def answer(prompt: str, candidate: bool) -> str:
    """A deterministic answer to "Qi: what is a plus/times b?": right or wrong, apologising or not."""
    head, _, rest = prompt.partition(":")
    i = int(head[1:])
    words = rest.split()
    a, b = int(words[2]), int(words[4].rstrip("?"))
    right = a + b if words[3] == "plus" else a * b
    h = _mix(i)
    if candidate:
        correct, sorry = h % 5 != 0, h % 11 == 0
    else:
        correct, sorry = h % 3 != 0, h % 4 == 0
    value = right if correct else right + 1 + h % 7
    text = f"The answer is {value}." if not sorry else f"I'm sorry but I think the answer is {value}."
    return text + (" Let me explain how I got there step by step." if h % 6 == 0 else "")


class InstantEngine:
    """A Backend that does no work: every answer is a few string operations."""

    name = "instant"

    def __init__(self, checkpoint: Any, adapters: Sequence[str] = ()) -> None:
        pass

    def generate(self, requests: Sequence[Any], sampling: Any, adapter: str | None = None) -> list[Any]:
        from harness.engines.base import Completion

        candidate = sampling.max_tokens == CANDIDATE_MAX_TOKENS
        out = []
        for r in requests:
            text = answer(r.messages[-1][1], candidate)
            out.append(Completion(text, 12, len(text) // 4, "stop", 0.0))
        return out

    def close(self) -> None:
        pass


def write_inputs(folder: Path, items: int, render: str) -> tuple[Path, Path, Path]:
    write_suites(folder / "suites", items)
    model = ROOT / "harness" / "demo" / "base"
    files = []
    for name, max_tokens in (("scale-base", BASE_MAX_TOKENS), ("scale-candidate", CANDIDATE_MAX_TOKENS)):
        if render == "tokenizer":  # a local model: the harness renders with its tokenizer, as for vLLM
            engine = f"model: {model}\nbackend: transformers\nengine: {{chunk_size: 1024}}\n"
        else:  # an endpoint that renders itself: the harness hashes the messages
            engine = (f"model: {name}\nbackend: openai\nendpoint: {{base_url: 'http://127.0.0.1:9/v1', "
                      "api: chat}\n")
        file = folder / f"{name}.yaml"
        file.write_text(f"name: {name}\n{engine}sampling: {{temperature: 0, max_tokens: {max_tokens}, seed: 0}}\n")
        files.append(file)
    plan = folder / "plan.yaml"
    plan.write_text(f"suites: [{folder / 'suites'}]\njudge: {{kind: rules}}\nforgetting: null\nseed: 0\n")
    return files[0], files[1], plan


# measuring -------------------------------------------------------------------------------------------

def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5), so a phase's peak is its own."""
    Path("/proc/self/clear_refs").write_text("5")


class Timers:
    """Wall time per label, and per phase the peak RSS while it ran (VmHWM reset at its start)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self.overall = 0.0
        """The process's peak RSS, across the resets."""

    def wrap(self, owner: Any, attribute: str, label: str, peak: bool = False,
             name: Callable[..., str] | None = None) -> None:
        inner: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            key = name(*args) if name else label
            if peak:
                self.overall = max(self.overall, peak_rss_mib())
                reset_peak_rss()
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
                if peak:
                    self.peaks[key] = max(self.peaks.get(key, 0.0), peak_rss_mib())
        setattr(owner, attribute, timed)


class GcClock:
    """Time spent in Python's cyclic garbage collector (its cost grows with the objects a run holds)."""

    def __init__(self) -> None:
        import gc

        self.seconds, self._started = 0.0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def one_size(items: int, workdir: Path, render: str, rerun: bool) -> dict[str, Any]:
    """The pipeline on `items` items in this (fresh) process."""
    import harness.render.decision_files as decision_files
    import harness.stages.generate as generate
    import harness.stages.pipeline as pipeline
    from harness.records.cache import Cache
    from harness.records.columnar import ParquetSink
    from harness.records.run_dir import RunDir

    imported_rss = rss_mib()
    generate.open_backend = InstantEngine  # type: ignore[assignment]
    timers = Timers()
    timers.wrap(generate, "plan_work", "render + keys")
    timers.wrap(Cache, "get_many", "cache reads")
    timers.wrap(Cache, "put_many", "cache writes")
    timers.wrap(RunDir, "append", "record appends")
    timers.wrap(ParquetSink, "_flush", "parquet writes")
    timers.wrap(pipeline, "run_generation", "generate stage", peak=True)
    timers.wrap(RunDir, "stage_done", "", peak=True, name=lambda run, stage, *_: f"{stage} stage_done")
    timers.wrap(pipeline, "check_answers", "checks", peak=True)
    timers.wrap(pipeline, "_judge_stage", "judge stage", peak=True)
    timers.wrap(pipeline, "_run_stats", "stats", peak=True)
    timers.wrap(decision_files, "decide", "gates")
    timers.wrap(pipeline, "write_outputs", "decision files", peak=True)
    base, candidate, plan = write_inputs(workdir, items, render)
    started = time.perf_counter()
    inputs = pipeline.prepare(base, candidate, plan)
    load_s = time.perf_counter() - started
    before_rss = rss_mib()

    clock = GcClock()

    def compare(run_name: str) -> tuple[Any, float, dict[str, float]]:
        timers.seconds, timers.peaks, timers.overall = {}, {}, 0.0
        clock.seconds = 0.0
        began, cpu = time.perf_counter(), time.process_time()
        result = pipeline.run_compare(inputs, workdir / "runs", run_dir=workdir / "runs" / run_name,
                                      cache_path=workdir / "cache" / "cache.sqlite")
        return result, time.perf_counter() - began, {**timers.seconds, "(garbage collector)": clock.seconds,
                                                     "(cpu time)": time.process_time() - cpu}

    result, wall, parts = compare("first")
    peak = max(timers.overall, peak_rss_mib())
    stages = {name: entry.seconds for name, entry in result.manifest.stages.items()}
    engine = result.stats["engine_seconds"] + result.stats["engine_open_seconds"]
    out: dict[str, Any] = {
        "items": items, "answers": result.stats["total"], "load_inputs_s": load_s, "wall_s": wall,
        "engine_s": engine, "overhead_s": wall - engine, "ms_per_item": 1000 * (wall - engine) / items,
        "cpu_ms_per_item": 1000 * (parts["(cpu time)"] - engine) / items,
        "stats_gates_s": parts.get("stats", 0.0) + parts.get("gates", 0.0), "parts": parts, "stages": stages,
        "phase_peak_mib": dict(timers.peaks), "rss_imported_mib": imported_rss, "rss_before_mib": before_rss,
        "peak_rss_mib": peak,
        "verdict": result.verdict.outcome, "run_dir": str(result.run_dir),
        "run_bytes": sum(f.stat().st_size for f in result.run_dir.rglob("*") if f.is_file()),
    }
    if rerun:
        again, wall2, parts2 = compare("rerun")
        assert again.stats["cached"] == again.stats["total"], again.stats
        out.update(rerun_s=wall2, rerun_ms_per_item=1000 * wall2 / items, rerun_parts=parts2)
    return out


def open_report(runs_dir: Path, run: str) -> dict[str, float]:
    """The report's Runs and Overview pages on `run`, in this (fresh) process, Streamlit imported first."""
    from streamlit.testing.v1 import AppTest

    from harness.report.launcher import APP, RUNS_DIR_ENV

    os.environ[RUNS_DIR_ENV] = str(runs_dir)
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.query_params["run"] = run
    started = time.perf_counter()
    at.run()
    runs_s = time.perf_counter() - started
    assert not at.exception, [e.value for e in at.exception]
    started = time.perf_counter()
    at.switch_page("views/overview.py").run()
    overview_s = time.perf_counter() - started
    assert not at.exception, [e.value for e in at.exception]
    started = time.perf_counter()
    at.run()  # a rerun (any click): every read is cached
    rerun_s = time.perf_counter() - started
    return {"runs_s": runs_s, "overview_s": overview_s, "overview_rerun_s": rerun_s, "peak_rss_mib": peak_rss_mib()}


# the driver ------------------------------------------------------------------------------------------

def _child(args: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    subprocess.run([sys.executable, __file__, *args, "--json", str(out)], check=True)
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _median_part(runs: Sequence[dict[str, Any]], group: str, key: str) -> float:
    return statistics.median(r[group].get(key, 0.0) or 0.0 for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--render", choices=("tokenizer", "server"), default="tokenizer")
    parser.add_argument("--no-rerun", action="store_true", help="skip the rerun from the cache")
    parser.add_argument("--keep", type=Path, help="keep the work dirs under this folder")
    parser.add_argument("--save", type=Path, help="also write every round's raw figures here (JSON)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        args.json.write_text(json.dumps(one_size(args.one, args.workdir, args.render, not args.no_rerun)))
        return
    if args.report is not None:
        args.json.write_text(json.dumps(open_report(args.report, args.run)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results: dict[int, list[dict[str, Any]]] = {}
    reports: list[dict[str, float]] = []
    for repeat in range(args.repeat):
        for items in sizes:
            workdir = root / f"{items}-{repeat}"
            extra = ["--no-rerun"] if args.no_rerun else []
            run = _child(["--one", str(items), "--workdir", str(workdir), "--render", args.render, *extra])
            results.setdefault(items, []).append(run)
            print(f"  {items:>7,} items, round {repeat + 1}: {run['ms_per_item']:.3f} ms/item, "
                  f"stats+gates {run['stats_gates_s']:.2f} s, peak {run['peak_rss_mib']:.0f} MiB", flush=True)
        largest = root / f"{sizes[-1]}-{repeat}"
        reports.append(_child(["--report", str(largest / "runs"), "--run", "first"]))
        print(f"  report on {sizes[-1]:,} items, round {repeat + 1}: runs {reports[-1]['runs_s']:.2f} s, "
              f"overview {reports[-1]['overview_s']:.2f} s", flush=True)
        if not args.keep:
            for items in sizes:
                subprocess.run(["rm", "-rf", str(root / f"{items}-{repeat}")], check=True)
    if args.save:
        args.save.write_text(json.dumps({"sizes": sizes, "results": results, "reports": reports}, indent=1))
    _print(sizes, results, reports, args)


def _print(sizes: list[int], results: dict[int, list[dict[str, Any]]], reports: list[dict[str, float]],
           args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.repeat}; render: {args.render}; engine: instant (in process)\n")
    print("| items | answers | ms/item (all but engine) | CPU ms/item | rerun from cache, ms/item | stats + gates | "
          "peak RSS | load + validate inputs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for items in sizes:
        runs = results[items]
        rerun = f"{_median(runs, 'rerun_ms_per_item'):.3f}" if "rerun_ms_per_item" in runs[0] else "-"
        print(f"| {items:,} | {runs[0]['answers']:,} | {_median(runs, 'ms_per_item'):.3f} | "
              f"{_median(runs, 'cpu_ms_per_item'):.3f} | {rerun} | "
              f"{_median(runs, 'stats_gates_s'):.3f} s | {_median(runs, 'peak_rss_mib'):.0f} MiB | "
              f"{_median(runs, 'load_inputs_s'):.2f} s |")
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        growth = (_median(results[large], "peak_rss_mib") - _median(results[small], "peak_rss_mib")) * 1024 * 1024
        print(f"\npeak RSS growth {small:,} -> {large:,} items: {growth / (large - small) / 1024:.2f} KiB per item")
    labels = sorted({k for runs in results.values() for r in runs for k in r["parts"]})
    print("\nparts (ms/item):\n")
    print("| part | " + " | ".join(f"{s:,}" for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for label in labels:
        print(f"| {label} | " + " | ".join(
            f"{1000 * _median_part(results[s], 'parts', label) / s:.3f}" for s in sizes) + " |")
    stages = sorted({k for runs in results.values() for r in runs for k in r["stages"]})
    for stage in stages:
        print(f"| stage {stage} (manifest) | " + " | ".join(
            f"{1000 * _median_part(results[s], 'stages', stage) / s:.3f}" for s in sizes) + " |")
    print("| engine (calls + start) | " + " | ".join(
        f"{1000 * _median(results[s], 'engine_s') / s:.3f}" for s in sizes) + " |")
    phases = sorted({k for runs in results.values() for r in runs for k in r["phase_peak_mib"]})
    print("\npeak RSS while each phase ran (MiB):\n")
    print("| phase | " + " | ".join(f"{s:,}" for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for phase in phases:
        print(f"| {phase} | " + " | ".join(
            f"{_median_part(results[s], 'phase_peak_mib', phase):.0f}" for s in sizes) + " |")
    if reports:
        print(f"\nreport on the {sizes[-1]:,}-item run (AppTest, fresh process): Runs "
              f"{statistics.median(r['runs_s'] for r in reports):.2f} s, Overview "
              f"{statistics.median(r['overview_s'] for r in reports):.2f} s, Overview rerun "
              f"{statistics.median(r['overview_rerun_s'] for r in reports):.2f} s")


if __name__ == "__main__":
    main()
