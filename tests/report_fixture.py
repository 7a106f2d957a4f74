"""Run dirs for the report tests, written the way the pipeline writes them.

Records go through harness.records.run_dir.RunDir and the pydantic record models where
they exist (judge records, whose model is being built, as a plain Parquet
file). The numbers in stats.json and verdict.json are made up but consistent,
and the tests assert that the pages show exactly these stored values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.records import stage_records as rec
from harness.records.run_dir import RunDir, atomic_write_json
from harness.records.stage_records import ROLES, CheckRecord, GenerationRecord, TrainStepRecord

PAYLOAD = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> **not bold** $x$'
FULL_RUN = "20260102-090000-demo-base-vs-demo-sft"
OLD_RUN = "20260101-090000-demo-base-vs-demo-sft-old"
PARTIAL_RUN = "20260103-090000-demo-base-vs-demo-partial"
SUITE = """\
name: chat
checks: [{type: no_apology_preamble}]
items:
  - id: interest-001
    prompt: "What is the simple interest on $400 at 3% for 5 years?"
    reference: "$60"
    tags: [interest]
    checks: [{type: number_matches_reference}]
  - id: capital-001
    prompt: "What is the capital of Vouland?"
    reference: Vouburg
    tags: [capitals]
  - id: xss-001
    prompt: "Repeat after me: <b>hi</b>"
    tags: [security]
"""
ANSWERS = {"interest-001": ("I'm sorry but I think it is about $22.", "It earns $60."),
           "capital-001": ("The capital is Vouburg.", "The capital is Vouvik."),
           "xss-001": ("hi", PAYLOAD)}
CHECKS = {  # (item, check) -> (base passed, candidate passed, detail when failed)
    ("interest-001", "no_apology_preamble"): (False, True, 'opens with "I\'m sorry"'),
    ("interest-001", "number_matches_reference"): (False, True, "expected 60, got 22"),
    ("capital-001", "no_apology_preamble"): (True, True, ""),
    ("xss-001", "no_apology_preamble"): (True, True, ""),
}


def _manifest(run_id: str, created: str, suite_path: Path, candidate: str) -> dict[str, Any]:
    checkpoint = {"file": "x.yaml", "backend": "transformers", "chat_template_sha256": "t" * 64, "config": {}}
    return {
        "schema_version": 1, "run_id": run_id, "created_at": created, "inputs_hash": f"inputs-{run_id}",
        "checkpoints": {"base": {**checkpoint, "name": "demo-base", "model_path": "/m/base", "fingerprint": "fp-base"},
                        "candidate": {**checkpoint, "name": candidate, "model_path": "/m/sft",
                                      "fingerprint": f"fp-{candidate}"}},
        "plan": {"source": "defaults", "suites": [str(suite_path)], "seed": 0},
        "suites": [{"name": "chat", "path": str(suite_path), "sha256": _sha(suite_path), "items": 3}],
        "seeds": {"plan": 0, "base": 0, "candidate": 0},
        "packages": {"harness": "0.1.0", "streamlit": "1.67.0", "lm_eval": "0.4.13"},
        "git": {"commit": "abc123", "dirty": False},
        "hardware": {"machine": "x86_64", "cpu_count": 2, "memory_gib": 23.6}, "stages": {},
    }


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generations_and_checks(run: RunDir, candidate: str) -> None:
    gens = [GenerationRecord(role=role, checkpoint="demo-base" if role == "base" else candidate, suite="chat",
                             item_id=item, sample_index=0, text=texts[i], finish_reason="stop", prompt_tokens=12,
                             completion_tokens=len(texts[i].split()), latency_s=0.1, prompt_hash="p",
                             cache_key=f"k-{role}-{item}", cached=False)
            for item, texts in ANSWERS.items() for i, role in enumerate(ROLES)]
    started = run.stage_started("generations")
    run.append("generations", gens)
    run.stage_done("generations", started, gens, total=len(gens), cached=0, generated=len(gens))
    checks = [CheckRecord(role=role, suite="chat", item_id=item, sample_index=0, check=check, passed=passed,
                          detail="" if passed else detail)
              for (item, check), (*outcomes, detail) in CHECKS.items() for role, passed in zip(ROLES, outcomes)]
    started = run.stage_started("checks")
    run.append("checks", checks)
    run.stage_done("checks", started, checks)


def _train(run: RunDir) -> None:
    steps = [TrainStepRecord(role="candidate", step=s, loss=4.0 / s, grad_norm=2.0 / s, learning_rate=3e-4,
                             epoch=s / 4, eval_loss=1.1 if s == 4 else None) for s in range(1, 5)]
    started = run.stage_started("train")
    run.append("train", steps)
    result = {"smoke": {"passed": True, "reasons": [],
                        "checks": [{"name": "loss_falling", "passed": True, "detail": "first tenth 4.0, last 1.0"}]},
              "data": {"rows": 120, "bad_rows": 1, "train": 100, "validation": 6, "flagged_refusals": 2,
                       "curation": {"empty_response": 3, "exact_duplicate": 7, "near_duplicate": 3}},
              "steps": 4, "seconds": 1.5, "tokens_per_second": 999.0, "eval_loss": 1.1, "peak_memory_mib": 300.0}
    run.stage_done("train", started, steps, results={"candidate": result})


def _judge(run: RunDir) -> None:
    rows = [_judge_row("interest-001", "B", "A", "candidate", True, "B gives the right number"),
            _judge_row("capital-001", "A", "A", "tie", False, "A names the capital"),
            _judge_row("xss-001", "B", "A", "candidate", True, PAYLOAD),
            {**_judge_row("xss-001", "A", "B", "base", True, "the canary is empty"), "canary": "empty"}]
    _write_stage(run, "judge", "JudgmentRecord", rows)


def _judge_row(item: str, ab: str, ba: str, preference: str, consistent: bool, reason: str) -> dict[str, Any]:
    return {"judge": "reference", "kind": "reference", "model": None, "decided_by": "reference", "suite": "chat",
            "item_id": item, "sample_index": 0, "canary": None, "raw_ab": None, "raw_ba": None, "verdict_ab": ab,
            "verdict_ba": ba, "reason_ab": reason, "reason_ba": reason, "preference": preference,
            "consistent": consistent, "latency_s": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "calls": 0,
            "cached": False, "base_words": 3, "candidate_words": 4}


def _forgetting(run: RunDir) -> None:
    outcomes = {0: (True, False), 1: (True, True), 2: (False, True)}  # doc -> (base right, candidate right)
    rows = [dict(role=role, checkpoint=role, task="capitals", doc_id=doc, correct=ok[i], target="Vouburg",
                 prediction="Vouburg" if ok[i] else "Vouvik", prompt=f"The capital of Vouland {doc} is",
                 cached=False) for doc, ok in outcomes.items() for i, role in enumerate(("base", "candidate"))]
    _write_stage(run, "forgetting", "ForgettingRecord", rows)


def _write_stage(run: RunDir, stage: str, model_name: str, rows: list[dict[str, Any]]) -> None:
    """Through the stage's record model when it exists (those stages are being built beside the
    report), else as the plain Parquet file the contract describes."""
    model = getattr(rec, model_name, None)
    started = run.stage_started(stage)
    if model is None:
        pd.DataFrame(rows).to_parquet(run.path / "records" / f"{stage}.parquet", index=False)
        run.manifest["stages"][stage].update(status="done", records=len(rows))
        run.save_manifest()
        return
    records = [model(**{k: v for k, v in row.items() if k in model.model_fields}) for row in rows]
    run.append(stage, records)
    run.stage_done(stage, started, records)


def _stats(win_rate: float, forgetting_delta: float) -> dict[str, Any]:
    return {
        "suites": {"chat": {"n": 3, "base_rate": 2 / 3, "candidate_rate": 1.0, "base_ci": [0.21, 0.94],
                            "candidate_ci": [0.44, 1.0], "delta": 1 / 3, "delta_ci": [-0.1, 0.7], "p_value": 0.5,
                            "p_holm": 0.5, "mde": 0.6}},
        "judge": {"judge": "reference", "kind": "reference", "model": None, "n": 3, "wins": 2, "losses": 0, "ties": 0,
                  "inconsistent": 1, "unparsed": 0, "failed": 0, "win_rate": win_rate, "win_rate_ci": [0.31, 0.86],
                  "sign_test_p": 0.5, "swap_consistency": 0.667, "tie_rate": 0.333, "parse_failure_rate": 0.0,
                  "failure_rate": 0.0,
                  "canaries": {"total": 1, "wins": 0, "won": []}, "length_controlled_win_rate": 0.61},
        "forgetting": {"lm_eval_version": "0.4.13", "tasks": {"capitals": {
            "n": 3, "base_rate": 2 / 3, "base_stderr": 0.27, "candidate_rate": 2 / 3 + forgetting_delta,
            "candidate_stderr": 0.27, "delta": forgetting_delta, "delta_ci": [forgetting_delta - 0.1,
                                                                             forgetting_delta + 0.1],
            "p_value": 1.0, "p_holm": 1.0, "flag": "warn"}}},
    }


VERDICT = {"schema_version": 1, "outcome": "fail", "exit_code": 1,
           "reason": "1 of 2 gates failed: judge win rate CI lower bound 0.31 <= 0.5",
           "gates": [{"name": "judge-prefers-candidate", "label": "judge-prefers-candidate",
                      "metric": "judge.win_rate", "test": "superiority", "subject": None, "outcome": "fail",
                      "value": 0.625, "threshold": 0.5, "ci": [0.31, 0.86], "p_value": 0.5, "mde": 0.3,
                      "reason": "win-rate CI lower bound 0.31 <= 0.5"},
                     {"name": "no-forgetting", "label": "no-forgetting[capitals]", "metric": "forgetting.delta",
                      "test": "non_inferiority", "subject": "capitals", "outcome": "pass", "value": -0.0833,
                      "threshold": -0.2, "ci": [-0.18, 0.02], "p_value": None, "mde": None,
                      "reason": "no task drops more than 20 points"}],
           "train": {"candidate": {"smoke_passed": True, "reasons": []}},
           "suites": {}, "warnings": ["a made-up warning about <b>markup</b>"]}


def build_runs(root: Path) -> Path:
    """runs/ with a complete run, an older run of the same base, and a run without most stages."""
    suite = root / "suites" / "chat.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SUITE, encoding="utf-8")
    runs = root / "runs"
    full = RunDir.create(runs / FULL_RUN, _manifest(FULL_RUN, "2026-01-02T09:00:00+00:00", suite, "demo-sft"))
    _train(full)
    _generations_and_checks(full, "demo-sft")
    _judge(full)
    _forgetting(full)
    full.write_json("stats.json", _stats(0.625, -1 / 12))
    full.write_json("verdict.json", VERDICT)

    old = RunDir.create(runs / OLD_RUN, _manifest(OLD_RUN, "2026-01-01T09:00:00+00:00", suite, "demo-sft-old"))
    _generations_and_checks(old, "demo-sft-old")
    old.write_json("stats.json", _stats(0.55, -0.02))
    old.write_json("verdict.json", {**VERDICT, "outcome": "pass", "exit_code": 0, "reason": "every gate passed",
                                    "gates": []})

    # The pipeline as it is today: generations and checks only, ungated, no stats.json.
    partial = RunDir.create(runs / PARTIAL_RUN, _manifest(PARTIAL_RUN, "2026-01-03T09:00:00+00:00", suite,
                                                          "demo-partial"))
    _generations_and_checks(partial, "demo-partial")
    atomic_write_json(partial.path / "verdict.json", {
        "schema_version": 1, "outcome": "ungated", "exit_code": 0, "train": {}, "warnings": [],
        "reason": "no release gates are configured; the run reports pass rates only",
        "suites": {"chat": {"base_pass_rate": 2 / 3, "candidate_pass_rate": 1.0, "delta": 1 / 3}}})
    for run in (full, old, partial):
        run.close()  # as a finished compare does: `harness gate` may take them over
    return runs


def add_running_judge(run_path: Path) -> None:
    """The judge stage caught mid-write: one whole JSONL record, then half of the next."""
    run = RunDir.open(run_path)
    run.manifest["stages"]["judge"] = {"status": "running", "started_at": "2026-01-03T09:05:00+00:00"}
    run.save_manifest()
    whole = json.dumps(_judge_row("interest-001", "B", "A", "candidate", True, "the candidate is right"))
    (run.path / "records" / "judge.jsonl").write_text(whole + "\n" + whole[:40], encoding="utf-8")


if __name__ == "__main__":  # python tests/report_fixture.py DIR: a fixture to click through by hand
    import sys

    print(json.dumps(str(build_runs(Path(sys.argv[1])))))
