"""A sampled run end to end (n = 4 at temperature 0.8 on both sides, checkpoints on a local
endpoint): every sample is recorded and cached, the statistics count items, pass@k and majority
vote are in stats.json and summary.md, and a gate decides on them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer

ITEMS = 12


def test_a_sampled_run_counts_items_and_gates_on_pass_at_k(tmp_path: Path) -> None:
    rows = [json.dumps({"id": f"q{i}", "prompt": f"What is 6 x 7? ({i})", "reference": "42",
                        "checks": [{"type": "number_matches_reference"}]}) for i in range(ITEMS)]
    (tmp_path / "sums.jsonl").write_text("\n".join(rows) + "\n")
    with JudgeServer(answers={"m-base": "I think it is 41.", "m-cand": "It is 42."}) as server:
        for name in ("base", "cand"):
            (tmp_path / f"{name}.yaml").write_text(
                f"name: {name}\nmodel: m-{name}\nbackend: openai\nendpoint: {{base_url: '{server.url}'}}\n"
                "sampling: {n: 4, temperature: 0.8, seed: 0}\n")
        (tmp_path / "plan.yaml").write_text(
            f"suites: [{tmp_path / 'sums.jsonl'}]\nforgetting: null\njudge: null\npass_at_k: [1, 4]\n"
            "majority_vote: true\ngates: [{name: better-at-4, metric: suite.pass_at_k_delta, test: superiority, "
            "threshold: 0, subjects: [sums@k4]}]\n")
        args = [str(tmp_path / "base.yaml"), str(tmp_path / "cand.yaml"), "--plan", str(tmp_path / "plan.yaml"),
                "--run-dir", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")]
        first = subprocess.run(harness_cmd("compare", *args), capture_output=True, text=True, cwd=ROOT, timeout=300)
        calls = server.state.requests
        again = subprocess.run(harness_cmd("compare", *args), capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert server.state.requests == calls  # every sample came back from the cache
    assert first.returncode == 0 == again.returncode, first.stderr + first.stdout
    assert calls == 2 * ITEMS * 4
    generations = [json.loads(line) for line in (tmp_path / "run" / "records" / "generations.jsonl").open()]
    assert sorted({g["sample_index"] for g in generations}) == [0, 1, 2, 3] and len(generations) == 2 * ITEMS * 4
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    suite = stats["suites"]["sums"]
    assert (suite["n"], suite["samples_per_item"], suite["test"]) == (ITEMS, 4, "cluster_permutation")
    sampled = stats["sampled"]["sums"]
    assert {k: (v["base"], v["candidate"], v["n"]) for k, v in sampled["pass_at_k"].items()} == {
        "1": (0.0, 1.0, ITEMS), "4": (0.0, 1.0, ITEMS)}
    assert (sampled["majority_vote"]["base"], sampled["majority_vote"]["candidate"]) == (0.0, 1.0)
    [gate] = json.loads((tmp_path / "run" / "verdict.json").read_text())["gates"]
    assert (gate["label"], gate["outcome"]) == ("better-at-4[sums@k4]", "pass")
    assert "## Sampled" in (tmp_path / "run" / "summary.md").read_text()


def test_the_report_shows_pass_at_k_and_the_items_that_became_less_consistent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.report.launcher import RUNS_DIR_ENV

    rows = [json.dumps({"id": f"q{i}", "prompt": f"What is 6 x 7? ({i})", "reference": "42",
                        "checks": [{"type": "number_matches_reference"}]}) for i in range(4)]
    (tmp_path / "sums.jsonl").write_text("\n".join(rows) + "\n")
    # The base is right in every sample; the candidate only in the samples with an even seed.
    with JudgeServer(answers={"m-base": "It is 42.", "m-cand": ["It is 42.", "It is 41."]}) as server:
        for name in ("base", "cand"):
            (tmp_path / f"{name}.yaml").write_text(
                f"name: {name}\nmodel: m-{name}\nbackend: openai\nendpoint: {{base_url: '{server.url}'}}\n"
                "sampling: {n: 4, temperature: 0.8, seed: 0}\n")
        (tmp_path / "plan.yaml").write_text(f"suites: [{tmp_path / 'sums.jsonl'}]\nforgetting: null\njudge: null\n"
                                            "pass_at_k: [1, 2]\nmajority_vote: true\ngates: []\n")
        result = subprocess.run(harness_cmd("compare", str(tmp_path / "base.yaml"), str(tmp_path / "cand.yaml"),
                                            "--plan", str(tmp_path / "plan.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                            "--cache", str(tmp_path / "c.sqlite")),
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "reports" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    tables = [d.value for d in at.dataframe]
    sampled = next(t for t in tables if "figure" in t)
    # The table holds percents as numbers (the grid draws the % sign).
    assert sampled.set_index("figure").loc[["pass@1", "pass@2", "majority vote"], "candidate"].tolist() == \
        pytest.approx([50.0, 100 * 5 / 6, 0.0])  # pass@2 = 1 - C(2,2)/C(4,2); a 2-2 tie is no majority
    changes = next(t for t in tables if "change" in t)
    assert changes["change"].tolist() == ["less consistent"] * 4
    assert changes["candidate right"].tolist() == [2] * 4 and changes["candidate samples"].tolist() == [4] * 4


@pytest.mark.slow
def test_the_demo_sampled_four_times_caches_every_sample_and_decides_on_items(demo_models, tmp_path: Path) -> None:
    """n = 4 at temperature 0.8 on both demo checkpoints (transformers): records per sample, statistics
    per item, and every sample cached: a longer run reuses all of a shorter one's samples."""
    examples = ROOT / "examples"
    sets = ["sampling.n=4", "sampling.temperature=0.8", "plan.forgetting=null", "plan.judge=null",
            "plan.pass_at_k=[1,4]", "plan.gates=[{name: k4, metric: suite.pass_at_k_delta, test: non_inferiority, "
            "margin: 0.5}]"]

    def run(limit: int, name: str) -> dict[str, object]:
        args = ["compare", str(examples / "base.yaml"), str(examples / "sft.yaml"), "--limit", str(limit),
                "--run-dir", str(tmp_path / name), "--cache", str(tmp_path / "c.sqlite")]
        result = subprocess.run(harness_cmd(*args, *[a for s in sets for a in ("--set", s)]), capture_output=True,
                                text=True, cwd=ROOT, timeout=900)
        assert result.returncode in (0, 3), result.stderr
        return json.loads((tmp_path / name / "manifest.json").read_text())

    first = run(3, "first")
    suites = len(first["suites"])
    assert first["stages"]["generations"]["generated"] == 2 * suites * 3 * 4
    second = run(5, "second")
    assert second["stages"]["generations"]["cached"] == 2 * suites * 3 * 4  # every sample of the first run
    assert second["stages"]["generations"]["generated"] == 2 * suites * 2 * 4
    stats = json.loads((tmp_path / "second" / "stats.json").read_text())
    assert all((s["n"], s["samples_per_item"], s["test"]) == (5, 4, "cluster_permutation")
               for s in stats["suites"].values())
    gates = json.loads((tmp_path / "second" / "verdict.json").read_text())["gates"]
    assert {g["subject"] for g in gates} == {f"{name}@k{k}" for name in stats["suites"] for k in (1, 4)}
    assert all(g["outcome"] in ("pass", "fail", "inconclusive") for g in gates)
