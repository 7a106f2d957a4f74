"""`harness demo` cold, then again unchanged: what does an unchanged rerun cost?

A fresh HARNESS_CACHE_DIR; the demo models are set up first (`python -m harness.demo.build`,
not timed: copying the shipped base and building `demo:candidate` is the demo's one-off build).
Then, each in a fresh process, as a user types them:

cold: `harness demo` (trains the candidate, generates, judges, runs forgetting, gates);
warm: `harness demo` again, unchanged, `--repeat` times (the median counts).

Target: warm <= 5% of cold, and the warm run loads no model. Evidence, without patching anything:
the warm run's manifest (generations: 0 generated, no engine opened; forgetting: 0 tasks evaluated;
train: reused), and `python -X importtime`: the warm run never imports torch, so no model can
have been loaded. Where the warm run's time goes is then measured in two more warm runs: the
imports (`-X importtime`, top-level packages by cumulative time) and cProfile (top functions).

    python bench/bench_warm.py [--repeat 3] [--overtrained]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PROFILE = """
import cProfile, sys
from harness.cli import app
sys.argv = ["harness", *sys.argv[2:]]
profile = cProfile.Profile()
profile.enable()
try:
    app()
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(OUT)
"""


def harness(args: list[str], env: dict[str, str], python_flags: list[str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([PYTHON, *(python_flags or []), "-c", "from harness.cli import main; main()", *args],
                          env=env, cwd=env["BENCH_CWD"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"harness {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def newest_run(runs: Path) -> Path:
    return max((p for p in runs.iterdir() if (p / "manifest.json").is_file()), key=lambda p: p.stat().st_mtime)


def loaded_no_model(run: Path) -> dict[str, Any]:
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    gen, fgt = stages["generations"], stages.get("forgetting", {})
    train = stages.get("train", {}).get("results", {})
    evidence = {"generated": gen["generated"], "engines_opened": gen["engines_opened"],
                "forgetting_evaluated": fgt.get("evaluated"), "train_reused": [r.get("reused") for r in train.values()]}
    assert gen["generated"] == 0 and gen["engines_opened"] == [], evidence
    assert fgt.get("evaluated", 0) == 0 and all(evidence["train_reused"]), evidence
    return evidence


def stage_seconds(run: Path) -> dict[str, float]:
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    return {name: float(s.get("seconds", 0.0)) for name, s in stages.items()}


def imports(stderr: str) -> tuple[float, dict[str, float], bool]:
    """(total import seconds, cumulative seconds per top-level package, whether torch was imported)."""
    per: dict[str, float] = {}
    total = 0.0
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        cumulative, depth, name = int(match.group(1)) / 1e6, len(match.group(2)), match.group(3)
        if depth == 1:  # a top-level import: its cumulative time includes what it pulled in
            top = name.split(".")[0]
            per[top] = per.get(top, 0.0) + cumulative
            total += cumulative
    torch = any(re.search(r"\|\s+torch$", line) for line in stderr.splitlines())
    return total, per, torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--overtrained", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "cache"), "BENCH_CWD": str(tmp), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    demo = ["demo", "--runs-dir", str(tmp / "runs")] + (["--overtrained"] if args.overtrained else [])

    started = time.perf_counter()
    subprocess.run([PYTHON, "-m", "harness.demo.build"], env=env, cwd=tmp, check=True, capture_output=True)
    build_s = time.perf_counter() - started
    cold_s, _ = harness(demo, env)
    cold_run = newest_run(tmp / "runs")
    warm = []
    for _ in range(args.repeat):
        seconds, _ = harness(demo, env)
        warm.append(seconds)
        evidence = loaded_no_model(newest_run(tmp / "runs"))
    warm_run = newest_run(tmp / "runs")
    _, stderr = harness(demo, env, ["-X", "importtime"])
    import_s, per_package, torch_imported = imports(stderr)
    profile_file = tmp / "warm.prof"
    subprocess.run([PYTHON, "-c", PROFILE.replace("OUT", repr(str(profile_file))), "harness", *demo], env=env,
                   cwd=tmp, check=False, capture_output=True)
    subprocess.run([PYTHON, "-c", "pass"], check=True)  # the interpreter's files in the page cache
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", "pass"], check=True)
    interpreter_s = time.perf_counter() - started

    median = statistics.median(warm)
    print(f"harness demo, fresh HARNESS_CACHE_DIR (model set-up first, not timed: {build_s:.1f} s)")
    cold_stages = ", ".join(f"{k} {v:.1f}" for k, v in stage_seconds(cold_run).items())
    print(f"  cold:  {cold_s:6.1f} s   stages: {cold_stages}")
    print(f"  warm:  {median:6.2f} s   median of {args.repeat} ({', '.join(f'{w:.2f}' for w in warm)}); "
          f"{100 * median / cold_s:.1f}% of cold (target <= 5%)")
    print("         stages: " + ", ".join(f"{k} {v:.2f}" for k, v in stage_seconds(warm_run).items()))
    print(f"  no model loaded: {evidence}; torch imported: {torch_imported}")
    print(f"  imports: {import_s:.2f} s in all (python -X importtime, top-level, cumulative); "
          f"a bare interpreter starts in {interpreter_s:.2f} s")
    for name, seconds in sorted(per_package.items(), key=lambda kv: -kv[1])[:12]:
        print(f"    {name:28s} {seconds:6.2f} s")
    if profile_file.is_file():
        print("  cProfile of a warm run, top functions by cumulative time (harness and its calls):")
        stats = pstats.Stats(str(profile_file))
        rows = sorted(((v[3], f"{Path(k[0]).name}:{k[1]}({k[2]})") for k, v in stats.stats.items()  # type: ignore[attr-defined]
                       if "harness" in k[0] and "<frozen" not in k[0]), reverse=True)
        for cumulative, where in rows[:25]:
            print(f"    {cumulative:6.2f} s  {where}")


if __name__ == "__main__":
    main()
