"""`harness demo --llm-judge`: the demo judged by the LLM judge the project trained and ships
(examples/demo-judge.yaml), which the judge stage serves itself with vLLM's OpenAI-compatible server on 127.0.0.1,
after scoring it on the demo's gold set (held-apart world pairs labelled with the world's truth). And a judge
trained on one order only, caught by the consistency and gold gates.

The candidate is trained here, so its answers (and the run's verdict) differ from CPU to CPU; the judge's weights
and the gold set are shipped, so its gold-set figures differ only by inference rounding. The bars below sit well
under what was measured (README, "The demo's LLM judge"), and only the judge's own figures are held to them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config.loading import load_checkpoint
from harness.demo.judge_weights import SHIPPED_JUDGES
from tests.conftest import ROOT, harness_cmd

EXAMPLES = ROOT / "examples"
MIN_GOLD_AGREEMENT = 0.75
"""The gate's threshold in sft-llm-judge.yaml; measured 0.886 (62 of 70 pairs)."""
MIN_GOLD_KAPPA = 0.6
"""Measured 0.820."""
MIN_CONSISTENCY_GAP = 0.30
"""Gold-set swap consistency of the balanced judge minus the one-order judge's; measured 0.900 - 0.087."""


def _run(args: list[str], runs: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    result = subprocess.run(harness_cmd(*args, "--runs-dir", str(runs)), capture_output=True, text=True, cwd=ROOT,
                            timeout=900)
    assert result.returncode in (0, 1, 3), result.stderr[-3000:]  # a verdict, not a usage error
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert dirs, result.stderr[-3000:]
    return result, dirs[-1]


def _json(run_dir: Path, name: str) -> Any:
    return json.loads((run_dir / name).read_text())


def _gates(run_dir: Path) -> dict[str, str]:
    return {g["name"]: g["outcome"] for g in _json(run_dir, "verdict.json")["gates"]}


def test_the_llm_judged_candidate_is_the_demo_candidate_with_an_llm_judge() -> None:
    """sft-llm-judge.yaml trains exactly what sft.yaml trains (so both name one trained checkpoint) and asks the same
    suites; only its judge, with its gold set and gate, differ."""
    sft, judged = load_checkpoint(EXAMPLES / "sft.yaml"), load_checkpoint(EXAMPLES / "sft-llm-judge.yaml")
    assert sft.model_dump(exclude={"plan"}) == judged.model_dump(exclude={"plan"})
    assert sft.plan is not None and judged.plan is not None and judged.plan.judge is not None
    assert judged.plan.suites == sft.plan.suites and judged.plan.seed == sft.plan.seed
    assert (judged.plan.judge.kind, judged.plan.judge.definition) == ("llm", "pairwise-reference")
    assert judged.plan.judge.checkpoint == str(EXAMPLES / "demo-judge.yaml")
    assert load_checkpoint(EXAMPLES / "demo-judge.yaml").model == "demo:judge"
    assert judged.plan.gates is not None and "judge.gold_agreement" in {g.metric for g in judged.plan.gates}


@pytest.mark.parametrize(("flags", "message"), [
    (["--llm-judge", "--overtrained"], "error: --llm-judge: judges the healthy SFT candidate; leave out --overtrained"),
    (["--loop", "--llm-judge"], "error: --loop: starts from the healthy SFT candidate, judged by the rules judge; "
                                "leave out --llm-judge"),
])
def test_flags_that_do_not_go_together_are_one_line_before_any_model(tmp_path: Path, flags: list[str],
                                                                      message: str) -> None:
    result = CliRunner().invoke(app, ["demo", *flags, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    return _run(["demo", "--llm-judge"], tmp_path_factory.mktemp("llm-judge") / "runs")


@pytest.mark.slow
def test_the_served_judge_decides_every_pair_and_the_counts_add_up(judged: tuple[Any, Path]) -> None:
    result, run_dir = judged
    verdict = _json(run_dir, "verdict.json")
    assert result.returncode == verdict["exit_code"]
    judge = _json(run_dir, "stats.json")["judge"]
    assert (judge["kind"], judge["model"], judge["judge"]) == ("llm", "demo:judge", "pairwise-reference")
    assert judge["n"] == 100 == judge["wins"] + judge["losses"] + judge["ties"] + judge["unparsed"] + judge["failed"]
    assert judge["failed"] == 0 and judge["parse_failure_rate"] <= 0.02
    assert judge["canaries"]["total"] == 32 and judge["canaries"]["wins"] <= 2
    records = [json.loads(line) for line in (run_dir / "records" / "judge.jsonl").read_text().splitlines()]
    assert len(records) == 100 + 32
    for r in records:
        assert r["preference"] in ("base", "candidate", "tie", "unparsed") and r["model"] == "demo:judge"
        assert r["raw_ab"] and r["raw_ba"] and r["calls"] >= 1  # the judge's own words, in both orders
        if r["preference"] != "unparsed":
            assert r["verdict_ab"] in ("A", "B", "tie") and r["verdict_ba"] in ("A", "B", "tie")
            assert r["consistent"] == (r["preference"] != "tie" or r["verdict_ab"] == r["verdict_ba"] == "tie")
    stage = _json(run_dir, "manifest.json")["stages"]["judge"]
    assert stage["calls"] > 0 and stage["gold_items"] == 70
    assert "judge-agrees-with-truth" in _gates(run_dir)
    # The stage stopped the server it started.
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(SHIPPED_JUDGES) not in running


@pytest.mark.slow
def test_the_judge_agrees_with_the_gold_truth_and_shows_its_biases(judged: tuple[Any, Path]) -> None:
    _, run_dir = judged
    gold = _json(run_dir, "stats.json")["judge"]["gold"]
    print(f"\ndemo judge on the gold set: agreement {gold['agreement']:.3f}, kappa {gold['kappa']:.3f}, "
          f"swap consistency {gold['swap_consistency']:.3f}, position {gold['position_bias']}, "
          f"length {gold['length_bias']}")
    assert gold["items"] == 70 and gold["unparsed"] <= 3 and gold["failed"] == 0
    assert gold["agreement"] >= MIN_GOLD_AGREEMENT and gold["kappa"] >= MIN_GOLD_KAPPA
    assert gold["swap_consistency"] >= 0.8
    assert sum(gold["position_bias"].values()) <= 10
    assert gold["length_bias"]["pairs"] > 30 and gold["length_bias"]["judge_longer_in_ties"] <= 0.2
    assert _gates(run_dir)["judge-agrees-with-truth"] == "pass"
    assert _gates(run_dir)["judge-parses"] == "pass"
    summary = (run_dir / "summary.md").read_text()
    assert "Gold set: the judge agreed with the human label on" in summary and "Position:" in summary


@pytest.mark.slow
def test_a_rerun_asks_the_judge_nothing_and_starts_no_server(judged: tuple[Any, Path]) -> None:
    _, first = judged
    _, again = _run(["demo", "--llm-judge"], first.parent)
    stage = _json(again, "manifest.json")["stages"]["judge"]
    assert stage["calls"] == 0 and stage["judge_seconds"] == 0.0
    assert _json(again, "stats.json")["judge"]["gold"] == _json(first, "stats.json")["judge"]["gold"]


@pytest.mark.slow
def test_a_judge_trained_on_one_order_fails_the_consistency_and_gold_gates(judged: tuple[Any, Path],
                                                                            tmp_path: Path) -> None:
    """The same recipe on the orders where A is the better answer only: it learns "A", and the gates catch it."""
    judge = tmp_path / "one-order-judge.yaml"
    judge.write_text(f"name: demo-judge-one-order\nmodel: {SHIPPED_JUDGES / 'a_better'}\nbackend: vllm\n"
                     "engine: {dtype: float32, enforce_eager: true, max_model_len: 2048}\n")
    text = (EXAMPLES / "sft-llm-judge.yaml").read_text()
    candidate = tmp_path / "sft.yaml"
    candidate.write_text(text.replace("checkpoint: demo-judge.yaml", f"checkpoint: {judge}")
                         .replace("../suites", str(ROOT / "suites")).replace("data/", f"{EXAMPLES / 'data'}/"))
    # Ten items a suite and no canaries or forgetting: the gates this is about need only the pairs and the gold set.
    result, run_dir = _run(["compare", str(EXAMPLES / "base.yaml"), str(candidate), "--limit", "10",
                            "--set", "plan.forgetting=null", "--set", "plan.judge.canaries=0"], tmp_path / "runs")
    assert result.returncode == 1
    gates = _gates(run_dir)
    assert gates["judge-consistent"] == "fail" and gates["judge-agrees-with-truth"] == "fail"
    biased = _json(run_dir, "stats.json")["judge"]["gold"]
    balanced = _json(judged[1], "stats.json")["judge"]["gold"]
    print(f"\none-order judge on the gold set: swap consistency {biased['swap_consistency']:.3f} (balanced "
          f"{balanced['swap_consistency']:.3f}), position {biased['position_bias']}")
    assert biased["swap_consistency"] <= balanced["swap_consistency"] - MIN_CONSISTENCY_GAP
    assert biased["position_bias"]["first"] > 5 * max(1, biased["position_bias"]["second"])
