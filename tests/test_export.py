"""`harness export`: a finished run in lm-eval's, AlpacaEval's and a flat table's formats.

Stored runs (tests/report_fixture.py, and a run of sampled answers built here) check the joins and
every error path quickly; a real compare of the demo models (lm-eval on the shipped tasks) checks
that the lm-eval export carries lm-eval's own numbers and the other formats the run's answers."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.records.outcomes import answer_outcomes, checks_by_answer
from harness.records.run_dir import RunDir
from harness.records.stage_records import ROLES, CheckRecord, GenerationRecord
from harness.render.exports import export_run
from tests.conftest import ROOT, harness_cmd
from tests.report_fixture import ANSWERS, FULL_RUN, OLD_RUN, PARTIAL_RUN, PAYLOAD, add_running_judge, build_runs
from tests.run_files import manifest

SUITE_ITEMS = ["capital-001", "interest-001", "xss-001"]  # the fixture's items, in the export's order


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_runs(tmp_path_factory.mktemp("export"))


def export_fails(*args: str) -> str:
    """`harness export ...` must fail with exit 2 and one line; the line, without 'error: '."""
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.output
    return result.stderr.strip().removeprefix("error: ")


def check_records(run_path: Path) -> list[CheckRecord]:
    return RunDir.open(run_path).read("checks", CheckRecord)


def assert_table_agrees_with_outcomes(table: pd.DataFrame, checks: list[CheckRecord]) -> None:
    """Each answer's check.<name> columns are its check records; passed is records/outcomes.py's rule."""
    by_answer, outcomes = checks_by_answer(checks), answer_outcomes(checks)
    for row in table.to_dict("records"):
        key = (row["role"], row["suite"], row["item_id"], int(row["sample_index"]))
        named = {c.removeprefix("check."): row[c] for c in table.columns if c.startswith("check.")}
        assert {k: bool(v) for k, v in named.items() if not pd.isna(v)} == by_answer.get(key, {}), key
        assert (None if pd.isna(row["passed"]) else bool(row["passed"])) == outcomes.get(key), key


# ---------------------------------------------------------------------------- stored runs
def test_the_table_has_a_row_per_answer_with_checks_passed_and_the_judges_outcome(runs: Path, tmp_path: Path) -> None:
    run = runs / FULL_RUN
    result = CliRunner().invoke(app, ["export", str(run), "--format", "table", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "table.parquet"), str(tmp_path / "table.csv")]
    parquet, csv = pd.read_parquet(tmp_path / "table.parquet"), pd.read_csv(tmp_path / "table.csv")
    assert len(parquet) == len(csv) == 3 * 2  # items x roles, one sample each
    assert list(parquet.columns) == list(csv.columns)
    for table in (parquet, csv):
        assert list(zip(table["item_id"], table["role"])) == [(i, r) for i in SUITE_ITEMS for r in ROLES]
        assert_table_agrees_with_outcomes(table, check_records(run))
    rows = parquet.set_index(["item_id", "role"])
    assert rows.loc[("xss-001", "candidate"), "answer"] == PAYLOAD  # model text is data, kept as it is
    assert rows.loc[("interest-001", "base"), "prompt"] == "What is the simple interest on $400 at 3% for 5 years?"
    assert rows.loc[("capital-001", "candidate"), "checkpoint"] == "demo-sft"
    # The judge's outcome is the pair's, from the candidate's side, on both rows; the canary is not a pair.
    outcomes = {item: set(parquet[parquet["item_id"] == item]["judge_outcome"]) for item in SUITE_ITEMS}
    assert outcomes == {"interest-001": {"win"}, "capital-001": {"inconsistent"}, "xss-001": {"win"}}
    assert rows.loc[("capital-001", "base"), "judge_reason_ab"] == "A names the capital"
    assert parquet["check.number_matches_reference"].isna().sum() == 4  # only interest-001 has it


def test_alpaca_eval_outputs_are_each_checkpoints_answers(runs: Path, tmp_path: Path) -> None:
    run = shutil.copytree(runs / FULL_RUN, tmp_path / "run")
    written = export_run(run, "alpaca-eval")  # into RUN_DIR/export by default
    assert written == [run / "export" / "alpaca-eval" / role / "model_outputs.json" for role in ROLES]
    for path, role, name in zip(written, ROLES, ("demo-base", "demo-sft")):
        outputs = json.loads(path.read_text(encoding="utf-8"))
        assert [o["item_id"] for o in outputs] == SUITE_ITEMS
        assert all(set(o) == {"instruction", "output", "generator", "dataset", "item_id"} for o in outputs)
        assert {o["item_id"]: o["output"] for o in outputs} == {i: ANSWERS[i][ROLES.index(role)] for i in SUITE_ITEMS}
        assert {(o["generator"], o["dataset"]) for o in outputs} == {(name, "chat")}
        assert outputs[0]["instruction"] == "What is the capital of Vouland?"


def sampled_run(root: Path) -> Path:
    """A finished run whose checkpoints answered each of 3 items twice, checked by one check."""
    suite = root / "s.yaml"
    suite.write_text("name: s\nitems:\n" + "".join(
        f"  - {{id: q{i}, messages: [{{role: system, content: Be brief.}}, {{role: user, content: 'Q{i}?'}}]}}\n"
        for i in range(3)), encoding="utf-8")
    sha = hashlib.sha256(suite.read_bytes()).hexdigest()
    run = RunDir.create(root / "run", manifest(suites=[{"name": "s", "path": str(suite), "sha256": sha, "items": 3}]))
    run.keep_suites([("s", suite, sha)])
    gens = [GenerationRecord(role=role, checkpoint=role, suite="s", item_id=f"q{i}", sample_index=n,
                             text=f"{role} {i} {n}", finish_reason="stop", prompt_tokens=1, completion_tokens=3,
                             latency_s=0.0, prompt_hash="p", cache_key=f"{role}{i}{n}", cached=False)
            for role in ROLES for i in range(3) for n in range(2)]
    checks = [CheckRecord(role=g.role, suite="s", item_id=g.item_id, sample_index=g.sample_index, check="max_words",
                          passed=g.sample_index == 0, detail="") for g in gens]
    for stage, records in (("generations", gens), ("checks", checks)):
        started = run.stage_started(stage)
        run.append(stage, records)
        run.stage_done(stage, started, type(records[0]))
    run.close()
    return run.path


def test_several_samples_a_row_each_in_the_table_and_sample_0_for_alpaca_eval(tmp_path: Path) -> None:
    run = sampled_run(tmp_path)
    export_run(run, "table")
    table = pd.read_parquet(run / "export" / "table.parquet")
    assert len(table) == 3 * 2 * 2  # items x roles x samples
    assert sorted(set(table["sample_index"])) == [0, 1] and table["judge_outcome"].isna().all()
    assert_table_agrees_with_outcomes(table, check_records(run))
    assert table["prompt"].iloc[0] == "system: Be brief.\n\nuser: Q0?"  # every turn of a conversation
    export_run(run, "alpaca-eval", tmp_path / "out")
    for role in ROLES:
        outputs = json.loads((tmp_path / "out" / "alpaca-eval" / role / "model_outputs.json").read_text())
        assert [o["output"] for o in outputs] == [f"{role} {i} 0" for i in range(3)]


def test_a_run_before_suite_copies_exports_a_table_but_no_alpaca_eval(runs: Path, tmp_path: Path) -> None:
    old = runs / OLD_RUN
    export_run(old, "table", tmp_path)
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 6 and table["prompt"].isna().all()  # shown by id only, as the report does
    line = export_fails(str(old), "--format", "alpaca-eval", "--out", str(tmp_path / "a"))
    assert "suite chat" in line and "instructions are unknown" in line and not (tmp_path / "a").exists()


# ---------------------------------------------------------------------------- errors
def test_bad_input_is_one_line_and_writes_nothing(runs: Path, tmp_path: Path) -> None:
    full, partial = runs / FULL_RUN, runs / PARTIAL_RUN
    out = str(tmp_path / "out")
    not_a_run = export_fails(str(tmp_path), "--format", "table", "--out", out)
    assert not_a_run == f"{tmp_path}: not a run dir (no manifest.json)"
    assert "unknown format 'csv'; expected one of: lm-eval, alpaca-eval, table, preferences" in export_fails(
        str(full), "--format", "csv", "--out", out)
    line = export_fails(str(partial), "--format", "lm-eval", "--out", out)
    assert line.startswith(f"{partial / 'manifest.json'}: stages.forgetting: this run has no forgetting stage")
    # A forgetting stage from before the aggregates were kept: the file is named.
    line = export_fails(str(full), "--format", "lm-eval", "--out", out)
    assert line.startswith(f"{full / 'forgetting' / 'base.results.json'}: missing: this run is from before")
    (tmp_path / "file").write_text("")
    assert "--out: is a file" in export_fails(str(full), "--format", "table", "--out", str(tmp_path / "file"))
    assert not (tmp_path / "out").exists() and not (full / "export").exists()


def test_a_stage_still_running_is_not_exported(runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / PARTIAL_RUN, run)
    add_running_judge(run)
    line = export_fails(str(run), "--format", "table")
    assert line.startswith(f"{run / 'manifest.json'}: stages.judge: the judge stage is running")
    assert not (run / "export").exists()


# ---------------------------------------------------------------------------- a real run
LIMIT = 6


@pytest.fixture(scope="module")
def real_run(demo_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo base and candidate compared on the first LIMIT items of every suite and forgetting task
    (lm-eval's hf model on the shipped tasks), with the rules judge."""
    tmp = tmp_path_factory.mktemp("export-real")
    args = ["compare", str(demo_models.base), str(demo_models.candidate), "--limit", str(LIMIT), "--backend",
            "transformers", "--set", "plan.gates=[]", "--run-dir", str(tmp / "run"), "--cache", str(tmp / "c.sqlite")]
    result = subprocess.run(harness_cmd(*args), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    return tmp / "run"


@pytest.mark.slow
def test_lm_eval_export_holds_what_lm_eval_computed(real_run: Path) -> None:
    result = subprocess.run(harness_cmd("export", str(real_run), "--format", "lm-eval"), capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.split()]
    assert [(f.parent, f.name[:8], f.suffix) for f in files] == [
        (real_run / "export" / "lm-eval" / role, "results_", ".json") for role in ROLES]  # as lm-eval names them
    records = pd.read_parquet(real_run / "records" / "forgetting.parquet")
    manifest_data = json.loads((real_run / "manifest.json").read_text())
    tasks = sorted(t["name"] for t in manifest_data["forgetting"]["tasks"])
    stats = json.loads((real_run / "stats.json").read_text())["forgetting"]["tasks"]
    for role, file in zip(ROLES, files):
        saved = json.loads(file.read_text())
        for key in ("results", "versions", "n-shot", "higher_is_better", "n-samples", "configs", "task_hashes"):
            assert sorted(saved[key]) == tasks, key
        assert saved["config"]["model_args"]["pretrained"] == manifest_data["checkpoints"][role]["model_path"]
        assert saved["config"]["limit"] == LIMIT and saved["model_source"] == "hf"
        for task in tasks:
            mine = records[(records["role"] == role) & (records["task"] == task)]
            assert len(mine) == LIMIT == saved["n-samples"][task]["effective"]
            # lm-eval's accuracy is the stage's own, counted from its per-sample records, and stats.json's.
            assert saved["results"][task]["acc,none"] == pytest.approx(mine["correct"].mean())
            assert saved["results"][task]["acc,none"] == pytest.approx(stats[task][f"{role}_rate"])
            assert saved["higher_is_better"][task] == {"acc": True} and saved["n-shot"][task] == 0


@pytest.mark.slow
def test_alpaca_eval_and_table_exports_of_a_real_run(real_run: Path, tmp_path: Path) -> None:
    generations = RunDir.open(real_run).read("generations", GenerationRecord)
    suites = json.loads((real_run / "manifest.json").read_text())["suites"]
    assert all(s["items"] == LIMIT for s in suites)
    export_run(real_run, "alpaca-eval", tmp_path)
    for role in ROLES:
        outputs = json.loads((tmp_path / "alpaca-eval" / role / "model_outputs.json").read_text())
        texts = {(g.suite, g.item_id): g.text for g in generations if g.role == role and g.sample_index == 0}
        assert len(outputs) == len(texts) == LIMIT * len(suites)  # one entry per prompt
        assert {(o["dataset"], o["item_id"]): o["output"] for o in outputs} == texts
        assert all(o["instruction"] for o in outputs)
    export_run(real_run, "table", tmp_path)
    for table in (pd.read_parquet(tmp_path / "table.parquet"), pd.read_csv(tmp_path / "table.csv")):
        assert len(table) == LIMIT * len(suites) * 2 * 1  # items x roles x samples
        assert_table_agrees_with_outcomes(table, check_records(real_run))
        assert set(table["judge_outcome"]) <= {"win", "loss", "tie", "inconsistent", "unparsed", "failed"}
