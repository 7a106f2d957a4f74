"""`harness demo --loop` (harness/demo/loop.py), through the real CLI: the SFT run judged, its consistent
verdicts exported as preference pairs, a DPO candidate trained from the SFT checkpoint on them, and base,
SFT and DPO compared and ranked in one run; a second loop is served from the caches. Asserted: what must
hold on any machine (the pairs are the judge's, the DPO smoke verdict passes with room, both trained
checkpoints rank above the base), never this machine's figures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, harness_cmd

pytestmark = pytest.mark.slow


def loop(runs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd("demo", "--loop", "--runs-dir", str(runs)), capture_output=True, text=True,
                          timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def looped(demo_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    runs = tmp_path_factory.mktemp("loop") / "runs"
    result = loop(runs)
    assert result.returncode in (0, 1), result.stderr
    return runs, result


def _dirs(runs: Path) -> tuple[Path, Path]:
    """(the SFT run, the three-checkpoint run)."""
    [first] = [p for p in runs.iterdir() if (p / "manifest.json").is_file()]
    [group] = [p for p in runs.iterdir() if (p / "group.json").is_file()]
    return first, group


def test_the_sft_runs_consistent_verdicts_become_the_dpo_data(looped: tuple[Path, subprocess.CompletedProcess[str]]
                                                              ) -> None:
    runs, _ = looped
    first, _ = _dirs(runs)
    exported = first / "export" / "preferences"
    rows = [json.loads(line) for line in (exported / "preferences.jsonl").read_text().splitlines()]
    counts = json.loads((exported / "excluded.json").read_text())
    assert len(rows) == counts["kept"] > 10
    assert {(r["chosen_checkpoint"], r["rejected_checkpoint"]) for r in rows} <= {
        ("demo-sft", "demo-base"), ("demo-base", "demo-sft")}
    dpo = yaml.safe_load((exported / "demo-dpo.yaml").read_text())
    trained = json.loads((first / "manifest.json").read_text())["stages"]["train"]["results"]["candidate"]
    assert dpo["train"]["method"] == "dpo" and dpo["train"]["base"] == str(Path(trained["output_dir"]).resolve())
    assert dpo["train"]["data"] == [str((exported / "preferences.jsonl").resolve())]


def test_base_sft_and_dpo_are_ranked_in_one_run(looped: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    runs, result = looped
    _, group = _dirs(runs)
    manifest = json.loads((group / "group.json").read_text())
    assert manifest["checkpoints"] == ["demo-base", "demo-sft", "demo-dpo"] and manifest["pairs"] == "all"
    assert [c["dir"] for c in manifest["comparisons"]] == ["demo-base-vs-demo-sft", "demo-base-vs-demo-dpo",
                                                           "demo-sft-vs-demo-dpo"]
    training = json.loads((group / "demo-base-vs-demo-dpo" / "manifest.json").read_text())["stages"]["train"]
    dpo = training["results"]["candidate"]
    assert dpo["method"] == "dpo" and dpo["smoke"]["passed"], dpo["smoke"]
    ranking = json.loads((group / "stats.json").read_text())["ranking"]
    strength = {c["name"]: c for c in ranking["checkpoints"]}
    assert strength["demo-base"]["strength"] == 0.0
    for name in ("demo-sft", "demo-dpo"):  # both trained checkpoints beat the base, with room
        assert strength[name]["strength_ci"][0] > 0.3, strength[name]
    direct = next(p for p in ranking["pairs"] if (p["first"], p["second"]) == ("demo-sft", "demo-dpo"))
    assert direct["judged"] == 100  # SFT and DPO judged against each other on every item
    verdict = json.loads((group / "verdict.json").read_text())
    assert result.returncode == verdict["exit_code"]
    assert "preference pairs:" in result.stderr and "ranking (Bradley-Terry" in result.stdout


def test_a_second_loop_trains_and_generates_nothing(looped: tuple[Path, subprocess.CompletedProcess[str]],
                                                    tmp_path: Path) -> None:
    runs, result = looped
    again = loop(tmp_path / "runs")
    assert again.returncode == result.returncode, again.stderr
    _, group = _dirs(tmp_path / "runs")
    for c in json.loads((group / "group.json").read_text())["comparisons"]:
        stages = json.loads((group / c["dir"] / "manifest.json").read_text())["stages"]
        assert stages["generations"]["generated"] == 0
        for trained in stages.get("train", {}).get("results", {}).values():
            assert trained["reused"], c["dir"]
    earlier = _dirs(runs)[1]
    assert json.loads((earlier / "stats.json").read_text())["ranking"] == json.loads(
        (group / "stats.json").read_text())["ranking"]
