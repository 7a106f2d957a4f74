"""Typed run files (stats, training results) built from the few fields a test cares about: every
other field gets a neutral value, so a test states only what it is about."""

from __future__ import annotations

from typing import Any

from harness.records.manifest import Manifest
from harness.records.run_results import JudgeSummary, PairedRates, RunStats, TrainingResult

PAIRED: dict[str, Any] = {
    "n": 100, "base_rate": 0.5, "candidate_rate": 0.5, "base_ci": [0.4, 0.6], "candidate_ci": [0.4, 0.6],
    "base_stderr": 0.05, "candidate_stderr": 0.05, "delta": 0.0, "delta_ci": [-0.05, 0.05],
    "delta_lower_one_sided": -0.04, "delta_upper_one_sided": 0.04, "p_value": 1.0, "mid_p_value": 1.0,
    "test": "mcnemar_exact", "base_only": 0, "candidate_only": 0, "mde": 0.1, "cohens_h": 0.0}

JUDGE: dict[str, Any] = {
    "judge": "j", "kind": "offline", "model": None, "decided_by": {}, "n": 0, "wins": 0, "losses": 0, "ties": 0,
    "unparsed": 0, "failed": 0, "judged": 0, "inconsistent": 0, "win_rate": None, "win_rate_ci": [None, None],
    "win_rate_ci_method": "percentile bootstrap", "min_detectable_win_rate": None,
    "decisive_win_rate": {"estimate": None, "low": None, "high": None, "method": "Wilson"},
    "sign_test_p": None, "sign_test_tie_split_p": None, "swap_consistency": None, "tie_rate": None,
    "parse_failure_rate": None, "failure_rate": None, "length_controlled_win_rate": None,
    "length_control": {"n": 0, "raw_win_rate": None, "win_rate": None, "intercept": None, "length_coef": None,
                       "length_sd": None, "separable": False, "fallback": None},
    "base_words_mean": None, "candidate_words_mean": None, "canaries": {}, "calls": 0, "prompt_tokens": 0,
    "completion_tokens": 0, "cached": 0, "by_suite": {}}


def paired(**fields: Any) -> dict[str, Any]:
    return PairedRates.model_validate({**PAIRED, **fields}).model_dump()


def judge_summary(**fields: Any) -> dict[str, Any]:
    return JudgeSummary.model_validate({**JUDGE, **fields}).model_dump()


def run_stats(data: dict[str, Any] | RunStats) -> RunStats:
    """stats.json from {"suites": ..., "forgetting": {"tasks": ...}, "judge": ...}, each part partial."""
    if isinstance(data, RunStats):
        return data
    full: dict[str, Any] = {"seed": 0, "suites": {k: {**PAIRED, **v} for k, v in data.get("suites", {}).items()}}
    if "forgetting" in data:
        tasks = data["forgetting"].get("tasks", {})
        full["forgetting"] = {"warn_drop": 0.02, "fail_drop": 0.05,
                              "tasks": {k: {"flag": "ok", **PAIRED, **v} for k, v in tasks.items()}}
    if data.get("judge") is not None:
        full["judge"] = {**JUDGE, **data["judge"]}
    return RunStats.model_validate(full)


def training_result(passed: bool = True, reasons: list[str] | None = None) -> TrainingResult:
    return TrainingResult.model_validate({
        "smoke": {"passed": passed, "checks": [], "reasons": reasons or []},
        "data": {"files": {}, "rows": 0, "bad_rows": 0, "bad_examples": [], "curation": {}, "flagged_refusals": 0,
                 "kept": 0, "train": 0, "validation": 0},
        "preflight": {}, "steps": 1, "eval_loss": None, "train_sample_loss": None, "seconds": 1.0,
        "tokens_per_second": None, "peak_memory_mib": None, "device": "cpu", "lora": False})


def trainings(data: dict[str, Any]) -> dict[str, TrainingResult]:
    """{role: {"smoke": {"passed": ..., "reasons": [...]}}} as training results."""
    return {role: training_result(t["smoke"]["passed"], t["smoke"].get("reasons")) for role, t in data.items()}


def manifest(run_id: str = "r", inputs_hash: str = "h", suites: list[dict[str, Any]] | None = None) -> Manifest:
    """A manifest of a run of two checkpoints with the default policy and no stage run yet."""
    checkpoint = {"file": "x.yaml", "model_path": None, "fingerprint": None, "chat_template_sha256": None,
                  "chat_template_source": None, "backend": "transformers", "config": {}}
    return Manifest.model_validate({
        "run_id": run_id, "created_at": "2026-01-01T00:00:00+00:00", "inputs_hash": inputs_hash,
        "checkpoints": {"base": {"name": "b", **checkpoint}, "candidate": {"name": "c", **checkpoint}},
        "plan": {"source": "defaults"}, "suites": suites or [], "forgetting": {}, "judge": None,
        "policy": {"source": "default", "gates": []}, "seeds": {}, "packages": {}, "git": None, "hardware": {}})
