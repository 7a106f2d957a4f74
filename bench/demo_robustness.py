"""Does the demo's story hold on any machine? A sweep over what moves the numbers.

Another CPU's floating point trains another tiny model from the same seed. No one
can try every CPU, so this sweeps what changes the arithmetic the same way: the
training seed (SFT split, shuffling and dropout; with --rebuild-base also the base's
initial weights and batch order) and torch's thread count (the order of every
reduction). For each (seed, threads) it trains both shipped candidates
(examples/sft.yaml and examples/sft-overtrained.yaml) from the base, runs
`harness compare` under the default policy, and prints per task the forgetting
delta, its one-sided 95% lower bound and every gate's outcome.

The base is the shipped one (harness/demo/base), as in `harness demo`; with
--rebuild-base every configuration pretrains its own from the recipe, the stress
test of the recipe itself (what a machine would get without the shipped weights).

Targets (a verdict that must not depend on the machine):
  healthy     passes on every seed and thread count; every forgetting lower bound >= -3 points
  overtrained fails on every seed; every forgetting task drops by at least 20 points

    python bench/demo_robustness.py --jobs 2                # seeds 0-4, threads 1 and 2 (about 10 minutes)
    python bench/demo_robustness.py --seeds 1 --threads 1   # one configuration (what CI runs)
    python bench/demo_robustness.py --rebuild-base --jobs 2 # each configuration pretrains its own base
    python bench/demo_robustness.py --markdown table.md     # also write the tables

A sweep into an existing --out reuses the configurations that finished there (an interrupted
sweep resumes). Each configuration runs in its own process (torch's thread count is fixed at start-up)
with its own cache dir; --jobs runs several at once (the figures do not depend on it:
each process pins its own thread count). Exit code 0 when every target is met, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CANDIDATES = {"healthy": EXAMPLES / "sft.yaml", "overtrained": EXAMPLES / "sft-overtrained.yaml"}
# Another CPU, emulated: the vector instructions torch's kernels, MKL and oneDNN may use. Forcing
# AVX2 on an AVX-512 machine changes the rounding of softmax, norms and reductions as an
# AVX2-only CPU would (measured here: other bits; the thread count alone changed none).
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                  "ONEDNN_MAX_CPU_ISA": "AVX2"}}
HEALTHY_MIN_LOWER = -0.03   # 2 points of room under the default 5-point no-forgetting margin
OVERTRAINED_MIN_DROP = 0.20


# ---------------------------------------------------------------- one configuration (child process)
def _absolute(paths: list[str], base: Path) -> list[str]:
    return [str((base / p).resolve()) for p in paths]


def _checkpoint_files(work: Path, base_dir: Path, seed: int, candidates: dict[str, Path]) -> dict[str, Path]:
    """The shipped checkpoint files, pointed at this build's base and trained with this seed."""
    files = {}
    base = yaml.safe_load((EXAMPLES / "base.yaml").read_text())
    base["model"] = str(base_dir)
    files["base"] = work / "base.yaml"
    files["base"].write_text(yaml.safe_dump(base))
    for name, path in candidates.items():
        cfg = yaml.safe_load(path.read_text())
        cfg["train"].update(base=str(base_dir), seed=seed, data=_absolute(cfg["train"]["data"], path.parent),
                            output_dir=str(work / "train" / name))
        if cfg.get("plan", {}).get("suites"):
            cfg["plan"]["suites"] = _absolute(cfg["plan"]["suites"], path.parent)
        if cfg.get("plan", {}).get("forgetting", {}) and cfg["plan"]["forgetting"].get("tasks"):
            cfg["plan"]["forgetting"]["tasks"] = _absolute(cfg["plan"]["forgetting"]["tasks"], path.parent)
        files[name] = work / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(cfg))
    return files


def _summarise(result: Any) -> dict[str, Any]:
    verdict, stats = result.verdict, result.run_stats
    tasks = {name: {"base": t.base_rate, "candidate": t.candidate_rate, "delta": t.delta,
                    "lower": t.delta_lower_one_sided, "lost": t.base_only, "gained": t.candidate_only}
             for name, t in (stats.forgetting.tasks if stats.forgetting else {}).items()}
    checks = {suite: {"base": s.base.checks, "candidate": s.candidate.checks} for suite, s in verdict.suites.items()}
    judge = stats.judge
    return {"outcome": verdict.outcome, "exit_code": verdict.exit_code,
            "gates": {g.label: g.outcome for g in verdict.gates}, "tasks": tasks, "checks": checks,
            "judge": {k: getattr(judge, k) if judge else None for k in ("wins", "losses", "ties", "win_rate")},
            "run_dir": str(result.run_dir)}


def run_one(seed: int, threads: int, isa: str, work: Path, candidates: dict[str, Path], base_mode: str,
            recipe: dict[str, Any]) -> dict[str, Any]:
    import torch

    from harness.demo import build, world

    # Trying another recipe: patch the build's settings in this process only (--recipe).
    world.CORPUS_MIX.update(recipe.get("corpus", {}))
    build.PRETRAIN.update(recipe.get("pretrain", {}))

    torch.set_num_threads(threads)
    os.environ["HARNESS_CACHE_DIR"] = str(work / "cache")
    from harness.stages.pipeline import prepare, run_compare

    started = time.perf_counter()
    models = work / "models"
    if base_mode == "rebuild":
        base_dir = models / "base"
        if not base_dir.is_dir():
            build.build_demo_models(models, seed, candidate=False)
    else:
        base_dir = build.verify_shipped_base() if base_mode == "shipped" else Path(base_mode)
    out: dict[str, Any] = {"seed": seed, "threads": threads, "isa": isa, "base": base_mode,
                           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                           "build_s": round(time.perf_counter() - started, 1),
                           "candidates": {}}
    files = _checkpoint_files(work, base_dir, seed, candidates)
    for name in candidates:
        t0 = time.perf_counter()
        result = run_compare(prepare(files["base"], files[name]), work / "runs", cache_path=work / "cache.sqlite")
        out["candidates"][name] = {**_summarise(result), "seconds": round(time.perf_counter() - t0, 1)}
    return out


# ---------------------------------------------------------------- the sweep (parent)
def _work_dir(out_dir: Path, seed: int, threads: int, isa: str) -> Path:
    return out_dir / f"seed{seed}-threads{threads}-{isa}"


def _child(seed: int, threads: int, isa: str, out_dir: Path, candidates: dict[str, Path], base_mode: str,
           recipe: str) -> dict[str, Any]:
    work = _work_dir(out_dir, seed, threads, isa)
    result_file = work / "result.json"
    if result_file.is_file():  # finished by an earlier sweep into the same --out: resume, never redo
        return json.loads(result_file.read_text())
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **ISA_ENV[isa],
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [sys.executable, __file__, "--one", str(seed), str(threads), isa, "--out", str(out_dir),
            "--recipe", recipe, "--base-mode", base_mode]
    for name, path in candidates.items():
        args += ["--candidate", f"{name}={path}"]
    with (work / "log.txt").open("w") as log:
        proc = subprocess.run(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0 or not result_file.is_file():
        raise RuntimeError(f"seed {seed} threads {threads} {isa} failed (exit {proc.returncode}); "
                           f"see {work / 'log.txt'}")
    return json.loads(result_file.read_text())


def check_targets(row: dict[str, Any]) -> list[str]:
    """What a configuration misses of the targets (empty: every target met)."""
    misses = []
    healthy, over = row["candidates"].get("healthy"), row["candidates"].get("overtrained")
    if healthy:
        if healthy["outcome"] != "pass":
            not_passed = ", ".join(g for g, o in healthy["gates"].items() if o != "pass")
            misses.append(f"healthy: {healthy['outcome']} ({not_passed})")
        for task, t in healthy["tasks"].items():
            if t["lower"] < HEALTHY_MIN_LOWER:
                misses.append(f"healthy: {task} lower bound {100 * t['lower']:+.1f} pts "
                              f"< {100 * HEALTHY_MIN_LOWER:+.0f}")
    if over:
        forgetting_passed = any(o == "pass" for g, o in over["gates"].items() if g.startswith("no-forgetting"))
        if over["outcome"] != "fail" or forgetting_passed:
            misses.append(f"overtrained: {over['outcome']}, no-forgetting not failed on every task")
        for task, t in over["tasks"].items():
            if t["delta"] > -OVERTRAINED_MIN_DROP:
                misses.append(f"overtrained: {task} dropped only {-100 * t['delta']:.1f} pts")
    return misses


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per configuration, candidate and task."""
    lines = ["| seed | threads | kernels | candidate | task | base | candidate | delta | lower bound | lost / gained "
             "| gate | verdict |", "|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        for name, cand in row["candidates"].items():
            for task, t in cand["tasks"].items():
                gate = cand["gates"].get(f"no-forgetting[{task}]", "-")
                lines.append(f"| {row['seed']} | {row['threads']} | {row['cpu_capability']} | {name} | {task} | "
                             f"{_pct(t['base'])} | "
                             f"{_pct(t['candidate'])} | {100 * t['delta']:+.1f} | {100 * t['lower']:+.1f} | "
                             f"{t['lost']} / {t['gained']} | {gate} | {cand['outcome']} |")
    return "\n".join(lines)


def story_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: the other gates and the demo's story (apology, amounts, judge) per configuration."""
    lines = ["| seed | threads | kernels | candidate | no apology (base → cand) | right amount | capitals named | "
             "judge wins / losses / ties | other gates |", "|---:|---:|---|---|---|---|---|---|---|"]
    for row in rows:
        for name, cand in row["candidates"].items():
            fin, gen = cand["checks"]["finance"], cand["checks"]["general"]
            other = ", ".join(f"{g} {o}" for g, o in cand["gates"].items() if not g.startswith("no-forgetting"))
            j = cand["judge"]
            lines.append(
                f"| {row['seed']} | {row['threads']} | {row['cpu_capability']} | {name} | "
                f"{_pct(fin['base']['no_apology_preamble'])} → "
                f"{_pct(fin['candidate']['no_apology_preamble'])} | {_pct(fin['base']['number_matches_reference'])} → "
                f"{_pct(fin['candidate']['number_matches_reference'])} | {_pct(gen['base']['contains'])} → "
                f"{_pct(gen['candidate']['contains'])} | {j['wins']} / {j['losses']} / {j['ties']} | {other} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--isa", nargs="+", default=["native", "avx2"], choices=sorted(ISA_ENV),
                        help="vector instructions the kernels may use (avx2 emulates an AVX2-only CPU)")
    parser.add_argument("--jobs", type=int, default=1, help="configurations run at once")
    parser.add_argument("--out", type=Path, default=None, help="work dir (default: a new temp dir)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME=FILE",
                        help="checkpoint files to sweep instead of the shipped healthy and overtrained ones")
    parser.add_argument("--rebuild-base", action="store_true",
                        help="pretrain a base per seed and thread count instead of using the shipped one")
    parser.add_argument("--base", type=Path, default=None, help="sweep the candidates over this base dir")
    parser.add_argument("--recipe", default="{}", help='with --rebuild-base, a JSON patch of the build recipe '
                        'to try another one: {"corpus": {...world.CORPUS_MIX}, "pretrain": {...build.PRETRAIN}}')
    parser.add_argument("--base-mode", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=3, metavar=("SEED", "THREADS", "ISA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    candidates = dict(c.split("=", 1) for c in args.candidate) if args.candidate else CANDIDATES
    candidates = {k: Path(v).resolve() for k, v in candidates.items()}
    out_dir = (args.out or Path(tempfile.mkdtemp(prefix="demo-robustness-"))).resolve()
    base_mode = args.base_mode or ("rebuild" if args.rebuild_base else str(args.base.resolve()) if args.base
                                   else "shipped")

    if args.one:
        seed, threads, isa = int(args.one[0]), int(args.one[1]), args.one[2]
        work = _work_dir(out_dir, seed, threads, isa)
        result = run_one(seed, threads, isa, work, candidates, base_mode, json.loads(args.recipe))
        (work / "result.json").write_text(json.dumps(result, indent=1))
        return 0

    configs = [(s, t, i) for s in args.seeds for t in args.threads for i in args.isa]
    started = time.perf_counter()
    print(f"sweeping {len(configs)} configurations over the {base_mode} base in {out_dir} "
          f"({args.jobs} at a time)", flush=True)

    def one(config: tuple[int, int, str]) -> dict[str, Any]:
        row = _child(*config, out_dir, candidates, base_mode, args.recipe)
        print(f"seed {row['seed']} threads {row['threads']} {row['isa']}: "
              + "; ".join(f"{n} {c['outcome']} " + " ".join(f"{t} {100 * v['delta']:+.1f}/{100 * v['lower']:+.1f}"
                                                             for t, v in c["tasks"].items())
                          for n, c in row["candidates"].items()), flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, configs))
    misses = {f"seed {r['seed']} threads {r['threads']} {r['isa']}": check_targets(r) for r in rows}
    text = (f"{table(rows)}\n\n{story_table(rows)}\n")
    print("\n" + text)
    print(f"{len(configs)} configurations in {time.perf_counter() - started:.0f} s")
    if args.markdown:
        args.markdown.write_text(text)
    failed = {k: v for k, v in misses.items() if v}
    for key, items in failed.items():
        print(f"MISSED {key}: " + "; ".join(items))
    print("every target met" if not failed else f"{len(failed)} of {len(configs)} configurations miss a target")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
