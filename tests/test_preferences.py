"""`harness export RUN_DIR --format preferences`: the judge's consistent verdicts as a DPO dataset in
TRL's conversational form (harness/render/preferences.py). Stored runs (tests/report_fixture.py) check
what is kept and why the rest is left out; a run judged by the local judge server checks the rows
against the answers, and TRL's own reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.records.run_dir import RunDir
from harness.records.stage_records import GenerationRecord, JudgmentRecord
from harness.render.preferences import EXCLUDED, FILE, exclusion
from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer
from tests.report_fixture import FULL_RUN, PARTIAL_RUN, PAYLOAD, build_runs
from tests.test_exit_codes import endpoint_checkpoint


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_runs(tmp_path_factory.mktemp("preferences"))


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / FILE).read_text(encoding="utf-8").splitlines()]


def test_only_consistent_real_pairs_become_preferences(runs: Path, tmp_path: Path) -> None:
    # The stored run: two consistent candidate wins, one pair whose orders disagreed, one canary.
    run = runs / FULL_RUN
    result = CliRunner().invoke(app, ["export", str(run), "--format", "preferences", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 preference pairs kept; left out: canary 1, inconsistent 1" in result.stderr
    kept = rows(tmp_path)
    assert [(r["item_id"], r["chosen_checkpoint"], r["rejected_checkpoint"]) for r in kept] == [
        ("interest-001", "demo-sft", "demo-base"), ("xss-001", "demo-sft", "demo-base")]
    answers = {(g.role, g.item_id): g.text for g in RunDir.open(run).read("generations", GenerationRecord)}
    for r in kept:
        assert r["chosen"] == [{"role": "assistant", "content": answers[("candidate", r["item_id"])]}]
        assert r["rejected"] == [{"role": "assistant", "content": answers[("base", r["item_id"])]}]
        assert r["prompt"][-1]["role"] == "user" and r["prompt"][-1]["content"]
        assert (r["judge"], r["run_id"]) == ("reference", FULL_RUN)
    assert any(PAYLOAD in r["chosen"][0]["content"] for r in kept)  # markup is data, kept byte for byte
    excluded = json.loads((tmp_path / EXCLUDED).read_text())
    assert (excluded["kept"], excluded["judged_pairs"]) == (2, 4)
    assert excluded["excluded"] == {"canary": 1, "tie": 0, "inconsistent": 1, "unparsed": 0, "failed": 0,
                                    "single_grade": 0}


def _record(**changes: object) -> JudgmentRecord:
    base = {"judge": "j", "kind": "llm", "model": "m", "decided_by": "j", "suite": "s", "item_id": "i",
            "sample_index": 0, "preference": "candidate", "consistent": True, "latency_s": 0.0, "prompt_tokens": 0,
            "completion_tokens": 0, "calls": 2, "cached": False, "base_words": 1, "candidate_words": 1}
    return JudgmentRecord.model_validate({**base, **changes})


def test_each_judgment_that_is_not_a_preference_has_its_reason() -> None:
    assert exclusion(_record()) is None and exclusion(_record(preference="base")) is None
    assert exclusion(_record(canary="empty")) == "canary"
    assert exclusion(_record(preference="tie")) == "tie"
    assert exclusion(_record(preference="tie", consistent=False)) == "inconsistent"
    assert exclusion(_record(preference="unparsed", consistent=None)) == "unparsed"
    assert exclusion(_record(preference="failed", consistent=None)) == "failed"
    assert exclusion(_record(consistent=None, score_base=3, score_candidate=9)) == "single_grade"


def test_a_run_without_a_judge_stage_is_one_line_and_writes_nothing(runs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(runs / PARTIAL_RUN), "--format", "preferences",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line == (f"error: {runs / PARTIAL_RUN / 'manifest.json'}: stages.judge: this run has no judge stage: "
                    "its plan had no judge, so there are no preferences to export")
    assert not (tmp_path / "out").exists()


def test_a_judged_run_exports_what_trl_reads(tmp_path: Path) -> None:
    # Both checkpoints and the judge on local servers: the candidate's answer holds the marker the judge
    # prefers on every item, in both orders; the canaries (an empty answer, ...) never do.
    items = "".join(f'  - {{id: q{i}, prompt: "What is {i} plus {i}?"}}\n' for i in range(6))
    (tmp_path / "s.yaml").write_text(f"name: s\nitems:\n{items}")
    with JudgeServer(answers={"base": "It is so.", "cand": "GOOD: it is so."}) as models, \
            JudgeServer("marker") as judge:
        endpoint = f"{{base_url: '{judge.url}', model: j, max_retries: 0, backoff_s: 0}}"
        (tmp_path / "plan.yaml").write_text(f"suites: [{tmp_path / 's.yaml'}]\nforgetting: null\n"
                                            f"judge: {{kind: llm, canaries: 2, endpoint: {endpoint}}}\ngates: []\n")
        files = []
        for name in ("base", "cand"):
            file = endpoint_checkpoint(tmp_path, name, models.url)
            file.write_text(file.read_text().replace("model: judge", f"model: {name}"))
            files.append(str(file))
        compare = subprocess.run(harness_cmd("compare", *files, "--plan", str(tmp_path / "plan.yaml"), "--run-dir",
                                             str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")),
                                 capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert compare.returncode == 0, compare.stderr
    export = subprocess.run(harness_cmd("export", str(tmp_path / "run"), "--format", "preferences"),
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert export.returncode == 0, export.stderr
    folder = tmp_path / "run" / "export"
    assert export.stdout.split() == [str(folder / FILE), str(folder / EXCLUDED)]
    kept = rows(folder)
    assert len(kept) == 6 and all(r["chosen"][0]["content"] == "GOOD: it is so." for r in kept)
    assert json.loads((folder / EXCLUDED).read_text())["excluded"]["canary"] == 8  # 2 items x 4 canaries
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {r["judge_definition_sha256"] for r in kept} == {manifest["judge"]["definition_sha256"]}
    # TRL's reader: the file loads as a dataset, and every row is a conversational preference example.
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    dataset = load_dataset("json", data_files=str(folder / FILE), split="train")
    assert len(dataset) == 6 and all(is_conversational(row) for row in dataset)
    assert dataset[0]["prompt"] == [{"role": "user", "content": "What is 0 plus 0?"}]
