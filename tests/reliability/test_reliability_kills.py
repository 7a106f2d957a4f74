"""Seeded kill -9 trials: a compare killed at a random moment and run again finishes exactly as an
uninterrupted one, with no record lost or repeated and no model call made twice.

The checkpoints and the judge are endpoints on a local server whose every request takes a few
milliseconds, so a kill lands in generation, in the judge stage or between them. CI runs
TRIALS (3); `HARNESS_KILL_TRIALS=50 pytest tests/reliability` runs more. The real engines
(training, generation, lm-eval forgetting) are killed in the demo trial below, which takes minutes
per trial and runs with HARNESS_KILL_TRIALS_DEMO=N, and mid-generation in tests/test_compare.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer
from tests.reliability.endpoint_runs import compare, outcome, write_inputs

TRIALS = int(os.environ.get("HARNESS_KILL_TRIALS", "3"))
ANSWERS = {"m-base": "The answer is 42.", "m-cand": "The answer is forty-two, as worked out step by step."}


def killed_then_resumed(args: list[str], run_dir: Path, cache: Path,
                        after_s: float) -> tuple[bool, subprocess.CompletedProcess[str]]:
    """(whether the kill landed before the run ended, the rerun)."""
    process = subprocess.Popen(harness_cmd("compare", *args, "--run-dir", str(run_dir), "--cache", str(cache)),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return killed, compare(args, run_dir, cache)


def test_a_compare_killed_anywhere_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    with JudgeServer(answers=ANSWERS, delay_s=0.01) as models, JudgeServer(delay_s=0.01) as judge:
        args = write_inputs(tmp_path / "inputs", models.url, judge.url)
        reference = compare(args, tmp_path / "reference", tmp_path / "reference.sqlite")
        assert reference.returncode in (0, 1, 3), reference.stderr
        expected = outcome(tmp_path / "reference")
        assert expected["stats"]["judge"]["wins"] > 0  # the judge stage really ran
        calls = {"models": models.state.requests, "judge": judge.state.requests}
        start = time.monotonic()
        compare(args, tmp_path / "timed", tmp_path / "timed.sqlite")
        span = time.monotonic() - start
        rng = random.Random(20261201)
        kills = 0
        for trial in range(TRIALS):
            before = {"models": models.state.requests, "judge": judge.state.requests}
            run, cache = tmp_path / f"trial{trial}", tmp_path / f"trial{trial}.sqlite"
            killed, again = killed_then_resumed(args, run, cache, rng.uniform(0.1, 0.9 * span))
            kills += killed
            assert again.returncode == reference.returncode, again.stderr
            assert outcome(run) == expected, f"trial {trial}"
            # Nothing asked twice: at most the requests that were in flight at the kill are repeated.
            made = {k: s.requests - before[k] for k, s in (("models", models.state), ("judge", judge.state))}
            assert made["models"] <= calls["models"] + 2 * 4 and made["judge"] <= calls["judge"] + 2 * 4 * 2, made
        assert kills >= min(TRIALS, 2), "the kills must land before the runs end"


DEMO_TRIALS = int(os.environ.get("HARNESS_KILL_TRIALS_DEMO", "0"))


@pytest.mark.slow
@pytest.mark.skipif(not DEMO_TRIALS, reason="minutes per trial: set HARNESS_KILL_TRIALS_DEMO=N to run N")
def test_the_demo_killed_in_any_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """The demo compare with the real engines: smoke-test SFT, transformers generation, checks, the
    offline judge and lm-eval forgetting. Each trial has its own cache, so a kill can land in training."""
    import pandas as pd

    examples = ROOT / "examples"
    args = [str(examples / "base.yaml"), str(examples / "sft.yaml")]

    def run(name: str, kill_after: float | None = None) -> tuple[bool, subprocess.CompletedProcess[str]]:
        env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / f"{name}-cache")}
        command = harness_cmd("compare", *args, "--run-dir", str(tmp_path / name))
        killed = False
        if kill_after is not None:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            time.sleep(kill_after)
            killed = process.poll() is None
            if killed:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
        return killed, subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)

    def result(name: str) -> dict[str, object]:
        frames = {s: pd.read_parquet(tmp_path / name / "records" / f"{s}.parquet")
                  for s in ("generations", "checks", "judge", "forgetting")}
        keep = {"generations": ["role", "suite", "item_id", "text"], "checks": ["role", "item_id", "check", "passed"],
                "judge": ["item_id", "canary", "preference"], "forgetting": ["role", "task", "doc_id", "correct"]}
        stats = json.loads((tmp_path / name / "stats.json").read_text())
        stats.get("judge", {}).pop("cached", None)
        return {s: sorted(tuple(str(v) for v in r) for r in f[keep[s]].itertuples(index=False, name=None))
                for s, f in frames.items()} | {"stats": stats}

    started = time.monotonic()
    _, reference = run("reference")
    span = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    expected = result("reference")
    rng = random.Random(7)
    for trial in range(DEMO_TRIALS):
        killed, again = run(f"trial{trial}", rng.uniform(5, 0.95 * span))
        assert again.returncode == 0, again.stderr
        assert result(f"trial{trial}") == expected, f"trial {trial} (killed: {killed})"
