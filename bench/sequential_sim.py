"""What the anytime-valid stopping rule (harness/verdict/sequential.py) costs and saves, by simulation.

For each true win rate and suite size: runs of iid judge outcomes (P(tie) = --ties, the rest split so the
win rate, a tie counted half, is the true rate), judged in order and checked after every item with the
default rule (threshold 0.5, alpha 0.05, min_items 20). Printed per cell, as a Markdown table:

- pass / fail: share of runs the rule settled early that way. At a true rate of 0.5 or below a pass is
  an error (guaranteed at most alpha / 2 = 2.5%); at 0.5 or above a fail is.
- to the end: share of runs the rule left to the full-run test.
- items used: mean share of the suite judged (an unsettled run judges all of it).
- agrees: among settled runs, share whose outcome is the full run's, on all the items: the default
  policy's judge-prefers-candidate gate (superiority: bootstrap CI, sign test, minimum detectable
  effect; where it would end inconclusive, a settled outcome counts as disagreeing), and a point gate
  (at_least 0.5: the full run's win rate against the threshold).

    python bench/sequential_sim.py [--runs 2000] [--ties 0.3] [--finite] [--seed 0]

--finite gives the rule the suite size (population=N: a CS for the suite's own win rate, which is what
a point gate tests; near the end it settles whichever side of 0.5 the suite's own win rate fell on).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.verdict.sequential import SequentialRule  # noqa: E402
from tests.test_sequential import full_run_outcomes, simulate  # noqa: E402

RATES = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
SIZES = (200, 1000)


def cell(rate: float, n: int, runs: int, ties: float, finite: bool, seed: int) -> dict[str, float]:
    rule = SequentialRule(population=n if finite else None)
    x, stop, side = simulate(rule, rate, ties, seed=seed, runs=runs, n=n)
    rng = np.random.default_rng(seed + 1)
    settled = np.flatnonzero(stop > 0)
    full = dict(zip(settled, full_run_outcomes(x[settled], rng)))
    agree = [full[i] == ("pass" if side[i] == 1 else "fail") for i in settled]
    point = [(x[i].mean() >= 0.5) == (side[i] == 1) for i in settled]
    return {"pass": float((side == 1).mean()), "fail": float((side == -1).mean()),
            "end": float((stop == 0).mean()), "used": float(np.where(stop > 0, stop, n).mean() / n),
            "agree": float(np.mean(agree)) if agree else float("nan"),
            "point": float(np.mean(point)) if point else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--ties", type=float, default=0.3)
    parser.add_argument("--finite", action="store_true", help="population=N: a CS for the suite's own win rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    mode = "population=N (the suite's win rate)" if args.finite else "iid (the items' population)"
    print(f"{args.runs} runs a cell, {args.ties:.0%} ties, threshold 0.5, alpha 0.05, checked after every item, "
          f"{mode}\n")
    print("| true win rate | items | pass | fail | to the end | items used | agrees: superiority | agrees: at_least |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, (rate, n) in enumerate((r, n) for n in SIZES for r in RATES):
        c = cell(rate, n, args.runs, args.ties, args.finite, args.seed + 1000 * k)
        print(f"| {rate:.2f} | {n} | {c['pass']:.1%} | {c['fail']:.1%} | {c['end']:.1%} | {c['used']:.1%} "
              f"| {c['agree']:.1%} | {c['point']:.1%} |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
