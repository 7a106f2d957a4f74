"""Two and four identical compares started together, sharing one cache: each gets its own run dir,
every model and judge call is made once (the others wait on its lock and read its answers), and
every run ends with the same records and verdict."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer
from tests.reliability.endpoint_runs import compare, outcome, write_inputs

ANSWERS = {"m-base": "The answer is 42.", "m-cand": "The answer is forty-two, as worked out step by step."}


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_compares_share_the_work_and_agree(tmp_path: Path, processes: int) -> None:
    with JudgeServer(answers=ANSWERS, delay_s=0.005) as models, JudgeServer(delay_s=0.005) as judge:
        args = write_inputs(tmp_path / "inputs", models.url, judge.url)
        alone = compare(args, tmp_path / "alone", tmp_path / "alone.sqlite")
        assert alone.returncode in (0, 1, 3), alone.stderr
        expected, once = outcome(tmp_path / "alone"), (models.state.requests, judge.state.requests)
        cache = tmp_path / "shared.sqlite"
        started = [subprocess.Popen(harness_cmd("compare", *args, "--runs-dir", str(tmp_path / "runs"), "--cache",
                                                str(cache)), cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(processes)]
        results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in started]
        assert all(code == alone.returncode for code, _ in results), results
        made = (models.state.requests - once[0], judge.state.requests - once[1])
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == processes  # one run dir each, none shared
    assert all(outcome(d) == expected for d in dirs)
    assert made == once, f"{processes} compares made {made} requests; one makes {once}"
