"""A sampled run end to end (n = 4 at temperature 0.8 on both sides, checkpoints on a local
endpoint): every sample is recorded and cached, the statistics count items, pass@k and majority
vote are in stats.json and summary.md, and a gate decides on them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

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
