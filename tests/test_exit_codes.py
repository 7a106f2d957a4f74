"""Could not evaluate is never "the candidate is worse": an engine or endpoint that fails is exit 3
with one line naming the stage, the run dir marks that stage failed, and judge calls that fail leave
the judge gates inconclusive. Checkpoints and judge are endpoints on local servers: no model loads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.config.schema import CheckpointConfig
from harness.engines.base import Completion
from harness.engines.checkpoint import ResolvedCheckpoint
from harness.errors import InfraError
from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer

SUITE = ('name: tiny\nitems:\n'
         '  - {id: a, prompt: "What is 6 x 7?", reference: "42", checks: [{type: contains, value: "42"}]}\n')


def endpoint_checkpoint(tmp_path: Path, name: str, url: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(f"name: {name}\nmodel: judge\nbackend: openai\n"
                    f"endpoint: {{base_url: '{url}', max_retries: 0, backoff_s: 0}}\n")
    return file


def plan(tmp_path: Path, judge: str = "null", gates: str = "[]") -> Path:
    (tmp_path / "tiny.yaml").write_text(SUITE)
    file = tmp_path / "plan.yaml"
    file.write_text(f"suites: [{tmp_path / 'tiny.yaml'}]\nforgetting: null\njudge: {judge}\ngates: {gates}\n")
    return file


def compare(tmp_path: Path, url: str, plan_file: Path) -> subprocess.CompletedProcess[str]:
    base, cand = endpoint_checkpoint(tmp_path, "base", url), endpoint_checkpoint(tmp_path, "cand", url)
    return subprocess.run(harness_cmd("compare", str(base), str(cand), "--plan", str(plan_file), "--run-dir",
                                      str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")),
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_an_endpoint_that_fails_during_generation_is_exit_3_naming_the_stage(tmp_path: Path) -> None:
    with JudgeServer(faults=["400"] * 10) as server:
        result = compare(tmp_path, server.url, plan(tmp_path))
    assert result.returncode == 3, result.stderr
    # One line says what went wrong; the plain progress lines of a non-terminal stderr may precede it.
    [line] = [text for text in result.stderr.strip().splitlines() if not text.startswith("generating: ")]
    assert line.startswith("error: generations stage: ") and "HTTP 400" in line and "marks it failed" in line
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["generations"]
    assert stage["status"] == "failed" and "HTTP 400" in stage["error"]
    assert not (tmp_path / "run" / "verdict.json").exists()


def test_failed_judge_calls_make_the_judge_gates_inconclusive_not_failed(tmp_path: Path) -> None:
    gates = "[{name: judge-answers, metric: judge.failure_rate, test: at_most, threshold: 0}]"
    with JudgeServer() as models, JudgeServer(faults=["500"] * 50) as judge:
        endpoint = f"{{base_url: '{judge.url}', model: j, max_retries: 0, backoff_s: 0}}"
        spec = f"{{kind: llm, canaries: 0, endpoint: {endpoint}}}"
        result = compare(tmp_path, models.url, plan(tmp_path, spec, gates))
    assert result.returncode == 3, result.stderr + result.stdout
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    [gate] = verdict["gates"]
    assert (verdict["outcome"], gate["outcome"]) == ("inconclusive", "inconclusive")
    assert "1 of 1 judge pairs failed" in gate["reason"] and "says nothing about the candidate" in gate["reason"]
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["judge"]
    assert (stage["asked"], stage["failed"], stage["requests"]) == (1, 1, judge.state.requests)
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert f"this run sent {judge.state.requests} requests to the judge, 0 of them retries" in summary


class BrokenEngine:
    """An engine that dies mid-run the way a GPU does (torch raises RuntimeError on out of memory)."""

    name = "transformers"

    def generate(self, requests: Any, sampling: Any, adapter: str | None = None) -> list[Completion]:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    def close(self) -> None:
        return None


def test_an_engine_exception_becomes_an_infrastructure_error_naming_engine_and_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.config.suites import load_suite
    from harness.records.cache import Cache
    from harness.stages import generate

    (tmp_path / "tiny.yaml").write_text(SUITE)
    config = CheckpointConfig.model_validate({"name": "big", "model": str(tmp_path)})
    checkpoint = ResolvedCheckpoint(config, "big.yaml", str(tmp_path), None, "fp", None, "server")
    monkeypatch.setattr(generate, "open_backend", lambda *a, **k: BrokenEngine())
    with pytest.raises(InfraError) as info:
        generate.run_generation({"base": checkpoint}, [load_suite(tmp_path / "tiny.yaml")],
                                Cache(tmp_path / "c.sqlite"), lambda records: None)
    assert str(info.value) == ("the transformers engine failed generating for big: RuntimeError: CUDA out of "
                               "memory. Tried to allocate 2.00 GiB")
    assert isinstance(info.value.__cause__, RuntimeError)


