"""judge.gold: the judge scored on a human-labelled gold set before it judges the run, and the
judge.gold_agreement gate (harness/stages/judge/gold.py, harness/verdict/gold.py). Kappa is checked
against statsmodels; the gold set's rows are validated line by line; a run with a local judge server
that follows the labels passes the gate, and one that always answers "A" fails it."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa
from typer.testing import CliRunner

from harness.cli import app
from harness.records.stage_records import JudgmentRecord
from harness.verdict.gold import cohen_kappa, gold_agreement
from tests.conftest import ROOT, harness_cmd
from tests.judge_server import MARKER, JudgeServer
from tests.test_exit_codes import endpoint_checkpoint

LABELS = ("A", "B", "tie")


def test_kappa_matches_statsmodels() -> None:
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(5, 60)
        first = [rng.choice(LABELS + ("none",)) for _ in range(n)]
        second = [rng.choice(LABELS) for _ in range(n)]
        categories = sorted(set(first) | set(second))
        table = np.zeros((len(categories), len(categories)))
        for a, b in zip(first, second):
            table[categories.index(a), categories.index(b)] += 1
        assert cohen_kappa(first, second) == pytest.approx(cohens_kappa(table).kappa)
    assert cohen_kappa(["A", "A"], ["A", "A"]) is None  # chance agreement is already certain
    assert cohen_kappa(["A", "B", "tie"], ["A", "B", "tie"]) == pytest.approx(1.0)


def _record(preference: str, consistent: bool | None = True, ab: str | None = None, ba: str | None = None,
            words: tuple[int, int] = (1, 1)) -> JudgmentRecord:
    return JudgmentRecord.model_validate({
        "judge": "j", "kind": "llm", "model": "m", "decided_by": "j", "suite": "gold", "item_id": "g",
        "sample_index": 0, "preference": preference, "consistent": consistent, "verdict_ab": ab, "verdict_ba": ba,
        "latency_s": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "calls": 2, "cached": False,
        "base_words": words[0], "candidate_words": words[1]})


def test_an_unparsed_or_failed_verdict_disagrees_with_every_label() -> None:
    records = [_record("base"), _record("candidate"), _record("tie", consistent=False), _record("unparsed", None),
               _record("failed", None)]
    gold = gold_agreement(records, ["A", "B", "A", "tie", "B"], "sha")
    assert (gold.items, gold.agreed, gold.unparsed, gold.failed) == (5, 2, 1, 1)
    assert gold.agreement == pytest.approx(0.4) and gold.swap_consistency == pytest.approx(2 / 3)
    assert gold.confusion == {"A": {"A": 1, "tie": 1}, "B": {"B": 1, "none": 1}, "tie": {"none": 1}}


def test_the_gold_set_shows_position_and_length_bias() -> None:
    """Counted by hand: two pairs went to position A in both orders, one to B; of the five pairs whose answers
    differ in length, the judge gave three to the longer answer where the labels give it two, and of the two
    of them labelled a tie, one went to the longer answer."""
    records = [
        _record("tie", False, "A", "A", (3, 3)),
        _record("tie", False, "A", "A", (2, 9)),
        _record("tie", False, "B", "B", (9, 2)),
        _record("tie", False, "tie", "A", (3, 3)),  # inconsistent, but not the same position twice
        _record("base", True, "A", "B", (9, 2)),  # the longer (A) picked, and labelled better
        _record("candidate", True, "B", "A", (2, 9)),  # the longer (B) picked; the label says A
        _record("candidate", True, "B", "A", (1, 4)),  # the longer (B) picked; the label says tie
    ]
    gold = gold_agreement(records, ["A", "B", "tie", "tie", "A", "A", "tie"], "sha")
    assert gold.position_bias == {"first": 2, "second": 1}
    length = gold.length_bias
    assert length is not None and length.pairs == 5
    assert length.judge_longer == pytest.approx(3 / 5)  # rows 5, 6 and 7
    assert length.label_longer == pytest.approx(2 / 5)  # row 2 (B, the longer) and row 5 (A, the longer)
    assert length.judge_longer_in_ties == pytest.approx(1 / 2)  # rows 3 (a tie) and 7 (the longer)
    assert gold_agreement(records[:1], ["A"], "sha").length_bias is None  # no pair differs in length


def _gold_rows(tmp_path: Path) -> Path:
    """Labels a judge that prefers the answer holding MARKER (tests/judge_server.py "marker") gets right."""
    rows = []
    for i in range(12):
        good, plain = f"{MARKER}: it is {i}.", f"It is {i}."
        a, b, label = [(good, plain, "A"), (plain, good, "B"), (plain, plain, "tie")][i % 3]
        rows.append({"id": f"g{i}", "question": f"What is {i}?", "answer_a": a, "answer_b": b, "label": label})
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path: Path, policy: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    items = "".join(f'  - {{id: q{i}, prompt: "What is {i} plus {i}?"}}\n' for i in range(4))
    (tmp_path / "s.yaml").write_text(f"name: s\nitems:\n{items}")
    gold = _gold_rows(tmp_path)
    run = tmp_path / f"run-{policy}"
    with JudgeServer(answers={"base": "It is so.", "cand": f"{MARKER}: it is so."}) as models, \
            JudgeServer(policy) as judge:
        endpoint = f"{{base_url: '{judge.url}', model: j, max_retries: 0, backoff_s: 0}}"
        (tmp_path / "plan.yaml").write_text(
            f"suites: [{tmp_path / 's.yaml'}]\nforgetting: null\n"
            f"judge: {{kind: llm, canaries: 0, gold: {gold.name}, endpoint: {endpoint}}}\n"
            "gates:\n  - {name: judge-agrees-with-people, metric: judge.gold_agreement, test: at_least, "
            "threshold: 0.8}\n")
        files = []
        for name in ("base", "cand"):
            file = endpoint_checkpoint(tmp_path, name, models.url)
            file.write_text(file.read_text().replace("model: judge", f"model: {name}"))
            files.append(str(file))
        result = subprocess.run(harness_cmd("compare", *files, "--plan", str(tmp_path / "plan.yaml"), "--run-dir",
                                            str(run), "--cache", str(tmp_path / f"{policy}.sqlite")),
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
    return result, run


def test_a_judge_that_agrees_with_the_labels_passes_the_gold_gate(tmp_path: Path) -> None:
    result, run = _run(tmp_path, "marker")
    assert result.returncode == 0, result.stderr
    gold = json.loads((run / "stats.json").read_text())["judge"]["gold"]
    assert (gold["items"], gold["agreed"], gold["agreement"], gold["kappa"]) == (12, 12, 1.0, 1.0)
    records = [json.loads(line) for line in (run / "records" / "gold.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["raw_ab"] and r["raw_ba"] for r in records)  # both orders asked
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["judge"]["gold_sha256"] == gold["sha256"] and manifest["stages"]["judge"]["gold_items"] == 12
    assert "Gold set: the judge agreed with the human label on 12 of 12 pairs" in (run / "summary.md").read_text()
    assert "Gold set:" in result.stdout


def test_a_judge_that_always_says_a_fails_the_gold_gate(tmp_path: Path) -> None:
    result, run = _run(tmp_path, "always_a")
    assert result.returncode == 1, result.stderr
    gold = json.loads((run / "stats.json").read_text())["judge"]["gold"]
    # Always "A" flips with the order, so every pair is a tie: right on the four tie labels only, and no
    # better than chance.
    assert (gold["agreed"], gold["swap_consistency"]) == (4, 0.0) and gold["kappa"] == pytest.approx(0.0)
    assert gold["position_bias"] == {"first": 12, "second": 0}  # every pair went to A in both orders
    assert "Position: 12 pairs went to the same position in both orders (A 12, B 0)." in \
        (run / "summary.md").read_text()
    verdict = json.loads((run / "verdict.json").read_text())
    [gate] = [g for g in verdict["gates"] if g["label"] == "judge-agrees-with-people"]
    assert gate["outcome"] == "fail" and "4 of 12 gold pairs agreed" in gate["reason"]


@pytest.mark.parametrize(("text", "field", "message"), [
    ('{"question": "q", "answer_a": "a", "answer_b": "b", "label": "C"}\n', "line 1.label", "'A', 'B' or 'tie'"),
    ('\n{"question": "q", "answer_a": "a", "label": "A"}\n', "line 2.answer_b", "required"),
    ('{"question": "q", "answer_a": "a", "answer_b": "b", "label": "A"}\n{oops\n', "line 2", "invalid JSON"),
    ('{"id": "x", "question": "q", "answer_a": "a", "answer_b": "b", "label": "A"}\n' * 2, "line 1.id",
     "more than one row"),
    ("", None, "the gold set has no rows"),
])
def test_a_bad_gold_set_is_one_line_before_any_model_loads(tmp_path: Path, text: str, field: str | None,
                                                           message: str) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(text)
    plan = tmp_path / "plan.yaml"
    plan.write_text("forgetting: null\njudge: {kind: llm, gold: gold.jsonl, endpoint: {base_url: "
                    "'http://127.0.0.1:9', model: j}}\n")
    base = tmp_path / "b.yaml"
    base.write_text("name: b\nmodel: demo:base\n")
    cand = tmp_path / "c.yaml"
    cand.write_text("name: c\nmodel: demo:base\n")
    result = CliRunner().invoke(app, ["compare", str(base), str(cand), "--plan", str(plan), "--runs-dir",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {gold}: {field + ': ' if field else ''}") and message in line, line
    assert not (tmp_path / "runs").exists()


def test_a_gold_set_needs_an_llm_judge(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("judge: {kind: rules, gold: gold.jsonl}\n")
    result = CliRunner().invoke(app, ["validate", str(plan)])
    assert result.exit_code == 2 and "'gold' is only used with kind 'llm'" in result.stderr


def test_validate_knows_a_gold_set_from_a_suite(tmp_path: Path) -> None:
    """`harness validate` reads a JSONL file whose rows hold two answers as a gold set, with its own errors."""
    gold = _gold_rows(tmp_path)
    ok = CliRunner().invoke(app, ["validate", str(gold)])
    assert ok.exit_code == 0 and "judge gold set with 12 labelled pair(s) (A 4, B 4, tie 4)" in ok.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer_a": "a", "answer_b": "b", "label": "C"}\n')
    refused = CliRunner().invoke(app, ["validate", str(bad)])
    assert refused.exit_code == 2 and f"error: {bad}: line 1.label: " in refused.output
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"id": "q1", "prompt": "What is 1 plus 1?"}\n')
    assert "suite 'suite' with 1 items" in CliRunner().invoke(app, ["validate", str(suite)]).output
