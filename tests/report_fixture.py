"""Run dirs for the report tests, written the way the pipeline writes them.

Every file is valid at the schema this harness writes: the manifest, stats.json and verdict.json
are built through their models, the records through RunDir and the record models, and each run
keeps its copy of the suite as `harness compare` does (RunDir.keep_suites). The numbers in
stats.json and verdict.json are made up but consistent, and the tests assert that the pages show
exactly these stored values. OLD_RUN is then rewritten as a schema-1 run (no suite copies), as
runs before suite copies were written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from harness.records.manifest import Manifest, StageEntry
from harness.records.run_dir import RunDir, atomic_write_json
from harness.records.run_results import RunStats, TrainingResult, Verdict
from harness.records.stage_records import (
    ROLES,
    CheckRecord,
    ForgettingRecord,
    GenerationRecord,
    JudgmentRecord,
    TrainStepRecord,
)

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
GATES = [{"name": "judge-prefers-candidate", "metric": "judge.win_rate", "test": "superiority", "threshold": 0.5},
         {"name": "no-forgetting", "metric": "forgetting.delta", "test": "non_inferiority", "margin": 0.2}]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(run_id: str, created: str, suite_path: Path, candidate: str) -> Manifest:
    checkpoint = {"file": "x.yaml", "backend": "transformers", "chat_template_sha256": "t" * 64,
                  "chat_template_source": "tokenizer", "config": {}}
    return Manifest.model_validate({
        "run_id": run_id, "created_at": created, "inputs_hash": f"inputs-{run_id}",
        "checkpoints": {"base": {**checkpoint, "name": "demo-base", "model_path": "/m/base", "fingerprint": "fp-base"},
                        "candidate": {**checkpoint, "name": candidate, "model_path": "/m/sft",
                                      "fingerprint": f"fp-{candidate}"}},
        "plan": {"source": "defaults", "suites": [str(suite_path)], "seed": 0},
        "suites": [{"name": "chat", "path": str(suite_path), "sha256": _sha(suite_path), "items": 3}],
        "forgetting": {"lm_eval_version": "0.4.13", "tasks": [{"name": "capitals", "source": "demo", "sha256": None}]},
        "judge": {"name": "reference", "kind": "reference", "model": None, "definition": None,
                  "definition_sha256": None},
        "policy": {"source": "default (harness/verdict/default_policy.yaml)", "gates": GATES},
        "seeds": {"plan": 0, "base": 0, "candidate": 0},
        "packages": {"harness": "0.1.0", "streamlit": "1.67.0", "lm_eval": "0.4.13"},
        "git": {"commit": "abc123", "dirty": False},
        "hardware": {"machine": "x86_64", "cpu_count": 2, "memory_gib": 23.6},
    })


def _create(runs: Path, run_id: str, created: str, suite: Path, candidate: str) -> RunDir:
    """A run dir as `harness compare` starts one: the manifest, then the run's copy of its suite."""
    run = RunDir.create(runs / run_id, _manifest(run_id, created, suite, candidate))
    run.keep_suites([("chat", suite, _sha(suite))])
    return run


def _generations_and_checks(run: RunDir, candidate: str) -> None:
    gens = [GenerationRecord(role=role, checkpoint="demo-base" if role == "base" else candidate, suite="chat",
                             item_id=item, sample_index=0, text=texts[i], finish_reason="stop", prompt_tokens=12,
                             completion_tokens=len(texts[i].split()), latency_s=0.1, prompt_hash="p",
                             cache_key=f"k-{role}-{item}", cached=False)
            for item, texts in ANSWERS.items() for i, role in enumerate(ROLES)]
    started = run.stage_started("generations")
    run.append("generations", gens)
    run.stage_done("generations", started, GenerationRecord, total=len(gens), cached=0, generated=len(gens))
    checks = [CheckRecord(role=role, suite="chat", item_id=item, sample_index=0, check=check, passed=passed,
                          detail="" if passed else detail)
              for (item, check), (*outcomes, detail) in CHECKS.items() for role, passed in zip(ROLES, outcomes)]
    started = run.stage_started("checks")
    run.append("checks", checks)
    run.stage_done("checks", started, CheckRecord)


TRAINING = TrainingResult.model_validate({
    "smoke": {"passed": True, "reasons": [],
              "checks": [{"name": "loss_falling", "passed": True, "detail": "first tenth 4.0, last 1.0"}]},
    "data": {"files": {"sft.jsonl": "messages"}, "rows": 120, "bad_rows": 1, "bad_examples": [],
             "curation": {"empty_response": 3, "exact_duplicate": 7, "near_duplicate": 3}, "flagged_refusals": 2,
             "kept": 106, "train": 100, "validation": 6},
    "preflight": {}, "steps": 4, "eval_loss": 1.1, "train_sample_loss": 1.0, "seconds": 1.5,
    "tokens_per_second": 999.0, "peak_memory_mib": 300.0, "device": "cpu", "lora": True})


def _train(run: RunDir) -> None:
    steps = [TrainStepRecord(role="candidate", step=s, loss=4.0 / s, grad_norm=2.0 / s, learning_rate=3e-4,
                             epoch=s / 4, eval_loss=1.1 if s == 4 else None) for s in range(1, 5)]
    started = run.stage_started("train")
    run.append("train", steps)
    run.stage_done("train", started, TrainStepRecord, results={"candidate": TRAINING})


def _judge(run: RunDir) -> None:
    rows = [_judge_row("interest-001", "B", "A", "candidate", True, "B gives the right number"),
            _judge_row("capital-001", "A", "A", "tie", False, "A names the capital"),
            _judge_row("xss-001", "B", "A", "candidate", True, PAYLOAD),
            {**_judge_row("xss-001", "A", "B", "base", True, "the canary is empty"), "canary": "empty"}]
    records = [JudgmentRecord.model_validate(row) for row in rows]
    started = run.stage_started("judge")
    run.append("judge", records)
    run.stage_done("judge", started, JudgmentRecord)


def _judge_row(item: str, ab: str, ba: str, preference: str, consistent: bool, reason: str) -> dict[str, Any]:
    return {"judge": "reference", "kind": "reference", "model": None, "decided_by": "reference", "suite": "chat",
            "item_id": item, "sample_index": 0, "canary": None, "raw_ab": None, "raw_ba": None, "verdict_ab": ab,
            "verdict_ba": ba, "reason_ab": reason, "reason_ba": reason, "preference": preference,
            "consistent": consistent, "latency_s": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "calls": 0,
            "cached": False, "base_words": 3, "candidate_words": 4}


def _forgetting(run: RunDir) -> None:
    outcomes = {0: (True, False), 1: (True, True), 2: (False, True)}  # doc -> (base right, candidate right)
    records = [ForgettingRecord(role=role, checkpoint=role, task="capitals", doc_id=doc, correct=ok[i],
                                target="Vouburg", prediction="Vouburg" if ok[i] else "Vouvik",
                                prompt=f"The capital of Vouland {doc} is", cached=False)
               for doc, ok in outcomes.items() for i, role in enumerate(ROLES)]
    started = run.stage_started("forgetting")
    run.append("forgetting", records)
    run.stage_done("forgetting", started, ForgettingRecord)


def _paired(base: float, candidate: float, delta_ci: tuple[float, float], **more: Any) -> dict[str, Any]:
    """A PairedRates entry of 3 items (stats.json's per suite and per forgetting task)."""
    return {"n": 3, "base_rate": base, "candidate_rate": candidate, "base_ci": (0.21, 0.94),
            "candidate_ci": (0.44, 1.0), "base_stderr": 0.27, "candidate_stderr": 0.27, "delta": candidate - base,
            "delta_ci": delta_ci, "delta_lower_one_sided": delta_ci[0], "delta_upper_one_sided": delta_ci[1],
            "p_value": 0.5, "mid_p_value": 0.25, "test": "mcnemar_exact", "base_only": 0, "candidate_only": 1,
            "mde": 0.6, "cohens_h": 1.23, "p_holm": 0.5, **more}


JUDGE = {"judge": "reference", "kind": "reference", "model": None, "n": 3, "wins": 2, "losses": 0, "ties": 0,
         "inconsistent": 1, "unparsed": 0, "failed": 0, "decided_by": {"reference": 3}, "judged": 3,
         "win_rate_ci": (0.31, 0.86), "win_rate_ci_method": "wilson", "min_detectable_win_rate": 0.9,
         "decisive_win_rate": {"estimate": 1.0, "low": 0.34, "high": 1.0, "method": "wilson"},
         "sign_test_p": 0.5, "sign_test_tie_split_p": 0.5, "swap_consistency": 0.667, "tie_rate": 0.333,
         "parse_failure_rate": 0.0, "failure_rate": 0.0, "length_controlled_win_rate": 0.61,
         "length_control": {"n": 3, "raw_win_rate": 0.667, "win_rate": 0.61, "intercept": 0.1, "length_coef": 0.2,
                            "length_sd": 1.0, "separable": False, "fallback": None},
         "base_words_mean": 3.0, "candidate_words_mean": 4.0,
         "canaries": {"total": 1, "wins": 0, "won": [], "by_kind": {"empty": {"total": 1, "wins": 0}}},
         "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached": 0,
         "by_suite": {"chat": {"n": 3, "wins": 2, "losses": 0, "ties": 0, "unparsed": 0, "failed": 0,
                               "win_rate": 0.667}}}


def _stats(win_rate: float | None, forgetting_delta: float | None) -> RunStats:
    """stats.json: the suite always; the judge and forgetting when the run had them (a value given)."""
    data: dict[str, Any] = {"seed": 0, "suites": {"chat": _paired(2 / 3, 1.0, (-0.1, 0.7))}}
    if win_rate is not None:
        data["judge"] = {**JUDGE, "win_rate": win_rate}
    if forgetting_delta is not None:
        task = _paired(2 / 3, 2 / 3 + forgetting_delta, (forgetting_delta - 0.1, forgetting_delta + 0.1),
                       p_value=1.0, p_holm=1.0, flag="warn")
        data["forgetting"] = {"lm_eval_version": "0.4.13", "warn_drop": 0.05, "fail_drop": 0.2,
                              "tasks": {"capitals": task}}
    return RunStats.model_validate(data)


ROLE_RATES = {"base": {"answers": 3, "checked": 3, "passed": 2, "truncated": 0, "mean_completion_tokens": 4.0,
                       "checks": {"no_apology_preamble": 2 / 3, "number_matches_reference": 0.0}},
              "candidate": {"answers": 3, "checked": 3, "passed": 3, "truncated": 0, "mean_completion_tokens": 3.0,
                            "checks": {"no_apology_preamble": 1.0, "number_matches_reference": 1.0}}}
GATE_RESULTS = [
    {"name": "judge-prefers-candidate", "label": "judge-prefers-candidate", "metric": "judge.win_rate",
     "test": "superiority", "subject": None, "outcome": "fail", "value": 0.625, "threshold": 0.5, "ci": (0.31, 0.86),
     "p_value": 0.5, "mde": 0.3, "reason": "win-rate CI lower bound 0.31 <= 0.5"},
    {"name": "no-forgetting", "label": "no-forgetting[capitals]", "metric": "forgetting.delta",
     "test": "non_inferiority", "subject": "capitals", "outcome": "pass", "value": -0.0833, "threshold": -0.2,
     "ci": (-0.18, 0.02), "p_value": None, "mde": None, "reason": "no task drops more than 20 points"}]


def _verdict(outcome: str, reason: str, gates: list[dict[str, Any]], **more: Any) -> Verdict:
    return Verdict.model_validate({
        "outcome": outcome, "exit_code": {"pass": 0, "ungated": 0, "fail": 1}[outcome], "reason": reason,
        "policy": "default (harness/verdict/default_policy.yaml)", "gates": gates, "train": {}, "warnings": [],
        "suites": {"chat": {"base_pass_rate": 2 / 3, "candidate_pass_rate": 1.0, "delta": 1 / 3, **ROLE_RATES,
                            "identical_answers": 0}}, **more})


def _write_results(run: RunDir, stats: RunStats, verdict: Verdict) -> None:
    """stats.json, then verdict.json, as the end of a compare writes them."""
    run.write_json("stats.json", stats.model_dump(mode="json"))
    run.write_json("verdict.json", verdict.model_dump(mode="json"))


def as_schema_1(run_path: Path) -> None:
    """Rewrite a run as a harness before suite copies wrote it: schema_version 1, no run_copy, no suites/."""
    shutil.rmtree(run_path / "suites")
    for name in ("manifest.json", "stats.json", "verdict.json"):
        data = json.loads((run_path / name).read_text(encoding="utf-8"))
        data["schema_version"] = 1
        if name == "manifest.json":
            data["suites"] = [{k: v for k, v in s.items() if k != "run_copy"} for s in data["suites"]]
        atomic_write_json(run_path / name, data)


def build_runs(root: Path) -> Path:
    """runs/ with a complete run, an older (schema 1) run of the same base, and a run without most stages.
    The suite file they ran is root/suites/chat.yaml; each schema-2 run holds its own copy."""
    suite = root / "suites" / "chat.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SUITE, encoding="utf-8")
    runs = root / "runs"
    full = _create(runs, FULL_RUN, "2026-01-02T09:00:00+00:00", suite, "demo-sft")
    _train(full)
    _generations_and_checks(full, "demo-sft")
    _judge(full)
    _forgetting(full)
    _write_results(full, _stats(0.625, -1 / 12), _verdict(
        "fail", "1 of 2 gates failed: judge win rate CI lower bound 0.31 <= 0.5", GATE_RESULTS,
        train={"candidate": {"smoke_passed": True, "reasons": []}}, warnings=["a made-up warning about <b>markup</b>"]))

    old = _create(runs, OLD_RUN, "2026-01-01T09:00:00+00:00", suite, "demo-sft-old")
    _generations_and_checks(old, "demo-sft-old")
    _write_results(old, _stats(0.55, -0.02), _verdict("pass", "every gate passed", []))

    # Generations and checks only, ungated: stats.json has the suite alone.
    partial = _create(runs, PARTIAL_RUN, "2026-01-03T09:00:00+00:00", suite, "demo-partial")
    _generations_and_checks(partial, "demo-partial")
    _write_results(partial, _stats(None, None), _verdict(
        "ungated", "no release gates are configured; the run reports pass rates only", []))
    for run in (full, old, partial):
        run.close()  # as a finished compare does: `harness gate` may take them over
    as_schema_1(old.path)
    return runs


def add_running_judge(run_path: Path) -> None:
    """The judge stage caught mid-write: one whole JSONL record, then half of the next."""
    run = RunDir.open(run_path)
    run.manifest.stages["judge"] = StageEntry(status="running", started_at="2026-01-03T09:05:00+00:00")
    run.save_manifest()
    whole = json.dumps(_judge_row("interest-001", "B", "A", "candidate", True, "the candidate is right"))
    (run.path / "records" / "judge.jsonl").write_text(whole + "\n" + whole[:40], encoding="utf-8")


def set_suite_delta(run_path: Path, suite: str, delta: float) -> None:
    """Another stored delta for a suite in a run's stats.json (the page shows what the file says)."""
    file = run_path / "stats.json"
    data = json.loads(file.read_text(encoding="utf-8"))
    data["suites"][suite]["delta"] = delta
    atomic_write_json(file, data)


def set_schema_version(file: Path, version: int) -> None:
    """A run file as another harness would have written it (a newer one: its schema is unknown here)."""
    data = json.loads(file.read_text(encoding="utf-8"))
    atomic_write_json(file, {**data, "schema_version": version})


if __name__ == "__main__":  # python tests/report_fixture.py DIR: a fixture to click through by hand
    import sys

    print(json.dumps(str(build_runs(Path(sys.argv[1])))))
