"""`harness compare` end to end on the demo models, through the real CLI:
a complete run dir, a rerun that makes no model call, and a SIGKILLed run
that resumes to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, harness_cmd

EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


def compare(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(harness_cmd("compare", *args), capture_output=True, text=True, timeout=600, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def run_dir_of(result: subprocess.CompletedProcess[str]) -> Path:
    line = next(x for x in result.stdout.splitlines() if x.startswith("run dir: "))
    return Path(line.removeprefix("run dir: "))


def texts(run_dir: Path) -> dict[tuple[str, str, str], str]:
    frame = pd.read_parquet(run_dir / "records" / "generations.parquet")
    return {(r.role, r.suite, r.item_id): r.text for r in frame.itertuples()}


@pytest.fixture(scope="module")
def first_run(demo_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    result = compare(str(EXAMPLES / "base.yaml"), str(EXAMPLES / "sft.yaml"), "--runs-dir", str(tmp / "runs"),
                     "--cache", str(tmp / "cache.sqlite"))
    assert "pass rates" in result.stdout and "finance" in result.stdout
    return run_dir_of(result), tmp / "cache.sqlite"


def test_candidate_was_trained_and_its_smoke_verdict_is_in_the_run(first_run: tuple[Path, Path]) -> None:
    run_dir, _ = first_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    result = manifest["stages"]["train"]["results"]["candidate"]
    assert result["smoke"]["passed"], result["smoke"]["reasons"]
    assert result["data"]["train"] >= 2000
    steps = pd.read_parquet(run_dir / "records" / "train.parquet")
    assert len(steps) == result["steps"] and set(steps["role"]) == {"candidate"}
    assert steps["loss"].iloc[-10:].mean() < steps["loss"].iloc[:10].mean()
    assert json.loads((run_dir / "verdict.json").read_text())["train"]["candidate"]["smoke_passed"] is True
    assert "## Smoke-test SFT of demo-sft: passed" in (run_dir / "summary.md").read_text()


def test_run_dir_is_complete(first_run: tuple[Path, Path]) -> None:
    run_dir, _ = first_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {s["status"] for s in manifest["stages"].values()} == {"done"}
    for key in ("checkpoints", "suites", "packages", "git", "hardware", "seeds", "finished_at"):
        assert manifest[key] is not None, key
    base, cand = manifest["checkpoints"]["base"], manifest["checkpoints"]["candidate"]
    assert base["fingerprint"] != cand["fingerprint"]
    assert base["chat_template_sha256"] == cand["chat_template_sha256"]
    assert manifest["packages"]["transformers"] and manifest["packages"]["torch"]
    items = sum(s["items"] for s in manifest["suites"])
    assert len(pd.read_parquet(run_dir / "records" / "generations.parquet")) == 2 * items
    assert len(pd.read_parquet(run_dir / "records" / "checks.parquet")) > 2 * items
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["outcome"] == "ungated"
    summary = (run_dir / "summary.md").read_text()
    assert "| finance |" in summary and "demo-base" in summary and "demo-sft" in summary
    assert not list(run_dir.rglob("*.tmp"))


def test_demo_candidate_beats_base_on_finance(first_run: tuple[Path, Path]) -> None:
    suites = json.loads((first_run[0] / "verdict.json").read_text())["suites"]
    finance, general = suites["finance"], suites["general"]
    assert finance["base"]["checks"]["no_apology_preamble"] <= 0.2
    assert finance["candidate"]["checks"]["no_apology_preamble"] >= 0.8
    assert finance["delta"] >= 0
    # Held-out arithmetic is mostly beyond the tiny model; the candidate must still not do worse.
    numbers = "number_matches_reference"
    assert finance["candidate"]["checks"][numbers] >= finance["base"]["checks"][numbers]
    # Mixing general chats into the candidate's data keeps most of what the base knew.
    assert general["candidate"]["checks"]["contains"] >= general["base"]["checks"]["contains"] - 0.2


def test_identical_rerun_makes_no_model_call(first_run: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, cache = first_run
    again = run_dir_of(compare(str(EXAMPLES / "base.yaml"), str(EXAMPLES / "sft.yaml"),
                               "--runs-dir", str(tmp_path), "--cache", str(cache)))
    stage = json.loads((again / "manifest.json").read_text())["stages"]["generations"]
    assert stage["generated"] == 0 and stage["engines_opened"] == []
    assert stage["cached"] == stage["total"]
    assert texts(again) == texts(run_dir)


def test_sigkilled_run_resumes_to_the_same_result(demo_models, tmp_path: Path) -> None:
    # Small chunks so the kill lands mid-generation; chunking must not change greedy text.
    for name in ("base", "sft"):
        text = (EXAMPLES / f"{name}.yaml").read_text().replace("batch_size: 32", "batch_size: 4\n  chunk_size: 4")
        text = text.replace("../suites", str(ROOT / "suites")).replace("data/", str(EXAMPLES / "data") + "/")
        (tmp_path / f"{name}.yaml").write_text(text)
    configs = [str(tmp_path / "base.yaml"), str(tmp_path / "sft.yaml")]
    reference = run_dir_of(compare(*configs, "--runs-dir", str(tmp_path / "ref"), "--cache", str(tmp_path / "ref.db")))
    run_dir, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    args = [*configs, "--run-dir", str(run_dir), "--cache", str(cache)]
    process = subprocess.Popen(harness_cmd("compare", *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    jsonl = run_dir / "records" / "generations.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 24:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"finished before it could be killed: {process.stderr.read() if process.stderr else ''}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["generations"]["status"] == "running"
    assert not (run_dir / "verdict.json").exists()

    compare(*args)
    stage = json.loads((run_dir / "manifest.json").read_text())["stages"]["generations"]
    assert stage["cached"] >= 24 and stage["generated"] > 0
    assert stage["cached"] + stage["generated"] == stage["total"]
    frame = pd.read_parquet(run_dir / "records" / "generations.parquet")
    assert not frame.duplicated(["role", "suite", "item_id", "sample_index"]).any()
    assert texts(run_dir) == texts(reference)


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nmodel: ./missing-model\n", "model: directory {tmp}/missing-model does not exist"),
    ("name: c\nmodel: demo:candidate\nplan:\n  suites: [nope.yaml]\n",
     "plan.suites[0]: suite file {tmp}/nope.yaml does not exist"),
], ids=["missing_model_dir", "missing_suite"])
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = compare(str(EXAMPLES / "base.yaml"), str(bad), "--runs-dir", str(tmp_path / "runs"), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad}: " + message.format(tmp=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_a_candidate_trained_with_another_tokenizer_is_refused(demo_models) -> None:
    from transformers import AutoTokenizer

    from harness.checkpoint import ResolvedCheckpoint
    from harness.compare import _same_tokenizer
    from harness.config import CheckpointConfig
    from harness.errors import ConfigError

    tok = AutoTokenizer.from_pretrained(demo_models.base)

    def resolved(name: str, template_hash: str) -> ResolvedCheckpoint:
        config = CheckpointConfig(name=name, model=str(demo_models.base))
        return ResolvedCheckpoint(config, f"{name}.yaml", str(demo_models.base), None, "fp", template_hash,
                                  "tokenizer", tok)

    _same_tokenizer(resolved("sft", "t1"), resolved("base", "t1"))  # same: accepted
    with pytest.raises(ConfigError, match=r"sft.yaml: train.base: the tokenizer or chat template 'sft'"):
        _same_tokenizer(resolved("sft", "t1"), resolved("base", "t2"))


def test_training_from_another_tokenizer_is_refused_before_training(demo_models, tmp_path: Path) -> None:
    import shutil

    from transformers import AutoTokenizer

    other = tmp_path / "other-base"
    shutil.copytree(demo_models.base, other)
    tok = AutoTokenizer.from_pretrained(other)
    tok.chat_template = tok.chat_template.replace("<|bos|>", "<|bos|><|system|>x<|end|>")
    tok.save_pretrained(other)
    base = tmp_path / "base.yaml"
    base.write_text(f"name: other\nmodel: {other}\nbackend: transformers\n")
    cand = tmp_path / "sft.yaml"
    cand.write_text(f"name: sft\ntrain: {{base: demo:base, data: [{EXAMPLES / 'data' / 'demo-sft.jsonl'}], "
                    f"output_dir: {tmp_path / 'out'}}}\nplan: {{suites: [{ROOT / 'suites' / 'demo'}]}}\n")
    result = compare(str(base), str(cand), "--runs-dir", str(tmp_path / "runs"), check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"error: {cand}: train.base: the tokenizer or chat template 'sft' is trained "
                                     "with differs from that of 'other'; train from the same base")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
