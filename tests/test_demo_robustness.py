"""The demo's verdict must not depend on the machine. bench/demo_robustness.py sweeps what moves
the numbers (training seed, torch threads); CI runs one configuration of it that the rest of the
suite does not: SFT seed 1, one thread, and torch's AVX2 kernels forced, as on a CPU without AVX-512
(the compare tests use seed 0, torch's default threads and the machine's own kernels).

What is asserted holds everywhere, with room: outcomes and effects with margin, never one
machine's figures (the sweep's table in bench/RESULTS.md shows the room on each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import demo_robustness  # noqa: E402


def _row(healthy_lower: float, healthy_outcome: str, over_delta: float, over_outcome: str) -> dict[str, Any]:
    task = lambda delta, lower: {"base": 0.9, "candidate": 0.9 + delta, "delta": delta, "lower": lower,  # noqa: E731
                                 "lost": 1, "gained": 0}
    return {"seed": 0, "threads": 1, "isa": "native", "candidates": {
        "healthy": {"outcome": healthy_outcome, "gates": {"no-forgetting[t]": "pass"},
                    "tasks": {"t": task(0.0, healthy_lower)}},
        "overtrained": {"outcome": over_outcome, "gates": {"no-forgetting[t]": "fail"},
                        "tasks": {"t": task(over_delta, over_delta - 0.05)}}}}


def test_targets_name_every_miss() -> None:
    assert demo_robustness.check_targets(_row(-0.02, "pass", -0.4, "fail")) == []
    misses = demo_robustness.check_targets(_row(-0.031, "inconclusive", -0.15, "fail"))
    assert misses == ["healthy: inconclusive ()", "healthy: t lower bound -3.1 pts < -3",
                      "overtrained: t dropped only 15.0 pts"]


@pytest.mark.slow
def test_another_seed_and_thread_count_tell_the_same_story(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "demo_robustness.py"), "--seeds", "1",
                             "--threads", "1", "--isa", "avx2", "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=1200, cwd=ROOT)
    row = json.loads((tmp_path / "seed1-threads1-avx2" / "result.json").read_text())
    healthy, over = row["candidates"]["healthy"], row["candidates"]["overtrained"]
    # The verdicts, each with room: the healthy candidate passes every gate...
    assert healthy["outcome"] == "pass", (healthy["gates"], result.stdout[-3000:])
    for task, t in healthy["tasks"].items():
        assert t["lower"] > -0.05, task  # ...so no forgetting bound reaches the 5-point margin
    # ...and the overtrained one fails no-forgetting on every task, by far more than the margin.
    assert over["outcome"] == "fail"
    assert all(over["gates"][f"no-forgetting[{task}]"] == "fail" for task in over["tasks"])
    assert all(t["delta"] <= -0.2 for t in over["tasks"].values()), over["tasks"]
    # The story: the base apologises on most finance questions, the candidate answers plainly.
    finance = healthy["checks"]["finance"]
    assert finance["base"]["no_apology_preamble"] <= 0.2 and finance["candidate"]["no_apology_preamble"] >= 0.8
    assert healthy["judge"]["wins"] > 2 * healthy["judge"]["losses"]
    assert "seed 1 threads 1 avx2: healthy pass" in result.stdout
