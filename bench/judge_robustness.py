"""Does the shipped demo judge judge the same way on every CPU?

Its weights are shipped, so what another machine changes is only the rounding of inference: the number of
threads (the order of each sum) and the kernels (AVX-512 or AVX2, which a CPU without AVX-512 uses). For each
(threads, kernels) configuration this audits the shipped judges on held-apart pairs (harness/demo/judge_audit.py,
both orders, greedy, through the transformers engine) in a child process, and checks what the tests and the demo's
gates rely on:

- the balanced judge: pair accuracy at least 0.75 (the demo's judge.gold_agreement gate), reply accuracy at least
  0.80, parse rate at least 0.95, swap consistency at least 0.80;
- the judge trained on one order: swap consistency at least 0.30 below the balanced judge's.

    python bench/judge_robustness.py                       # threads 1 and 2 x native and AVX2 kernels, 280 pairs
    python bench/judge_robustness.py --per-rule 10         # the gold set's 70 pairs (a minute a configuration)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                  "ONEDNN_MAX_CPU_ISA": "AVX2"}}
VARIANTS = ("balanced", "a_better")


def run_one(threads: int, per_rule: int) -> dict[str, Any]:
    """In the child: both variants' audits under this process's threads and kernels."""
    import torch

    from harness.demo.judge_audit import audit
    from harness.demo.judge_build import ensure_demo_judge

    torch.set_num_threads(threads)
    out: dict[str, Any] = {"threads": threads, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for variant in VARIANTS:
        started = time.perf_counter()
        result = audit(ensure_demo_judge(variant=variant), seed=1, per_rule=per_rule)
        out[variant] = {**asdict(result), "seconds": round(time.perf_counter() - started, 1)}
    return out


def misses(row: dict[str, Any]) -> list[str]:
    good, biased = row["balanced"], row["a_better"]
    found = []
    for name, value, bound in (("pair accuracy", good["pair_accuracy"], 0.75), ("accuracy", good["accuracy"], 0.80),
                               ("parse rate", good["parse_rate"], 0.95),
                               ("swap consistency", good["swap_consistency"], 0.80)):
        if value < bound:
            found.append(f"balanced {name} {value:.3f} < {bound}")
    if biased["swap_consistency"] > good["swap_consistency"] - 0.30:
        found.append(f"one-order swap consistency {biased['swap_consistency']:.3f} is within 0.30 of the balanced "
                     f"judge's {good['swap_consistency']:.3f}")
    return found


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| threads | kernels | judge | parse | accuracy (replies / pairs) | kappa | swap consistency | "
             "position bias (A) | longer picked / truly better |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for variant in VARIANTS:
            a = row[variant]
            bias = "n/a" if a["position_bias"] is None else f"{a['position_bias']:.0%}"
            kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
            lines.append(f"| {row['threads']} | {row['cpu_capability']} | {variant} | {a['parse_rate']:.1%} | "
                         f"{a['accuracy']:.1%} / {a['pair_accuracy']:.1%} | {kappa} | "
                         f"{a['swap_consistency']:.1%} ({a['inconsistent']} pairs) | {bias} | "
                         f"{a['longer_picked']:.1%} / {a['longer_better']:.1%} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--isa", nargs="+", default=["native", "avx2"], choices=sorted(ISA_ENV))
    parser.add_argument("--per-rule", type=int, default=40, help="audit pairs per rule and per canary kind")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.per_rule)))
        return 0
    rows = []
    for threads in args.threads:
        for isa in args.isa:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **ISA_ENV[isa]}
            proc = subprocess.run([sys.executable, __file__, "--one", str(threads), "--per-rule", str(args.per_rule)],
                                  env=env, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"threads {threads} {isa} ({row['cpu_capability']}): balanced "
                  f"{row['balanced']['pair_accuracy']:.3f} of pairs, one-order swap consistency "
                  f"{row['a_better']['swap_consistency']:.3f} ({row['balanced']['seconds']}s)", flush=True)
    print(table(rows))
    found = {f"threads {r['threads']} {r['cpu_capability']}": misses(r) for r in rows}
    for config, missed in found.items():
        print(f"{config}: {'all targets met' if not missed else '; '.join(missed)}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
