"""Gates: table-driven pass / fail / inconclusive on hand-built stats, the policy files, and
junit.xml parsed back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.config.schema import GATE_METRICS, GateConfig
from harness.errors import ConfigError
from harness.records.run_results import GateResult, RunStats
from harness.render.run_summary import junit_xml
from harness.verdict import gate as gates_module
from harness.verdict.gate import DEFAULT_POLICY, Decision, Observation, default_policy, load_policy
from tests.run_files import manifest, run_stats, trainings


def paired(delta: float, ci: tuple[float, float], lower: float, p: float = 0.5, mde: float | None = 0.05,
           n: int = 400) -> dict[str, Any]:
    return {"n": n, "delta": delta, "delta_ci": list(ci), "delta_lower_one_sided": lower, "p_value": p,
            "p_holm": p, "mde": mde, "candidate_rate": 0.5, "candidate_ci": [0.45, 0.55]}


# The gate functions on partial stats: tests/run_files.py fills every field a test does not name.
def evaluate_gate(spec: GateConfig, stats: dict[str, Any], training: dict[str, Any]) -> list[GateResult]:
    return gates_module.evaluate_gate(spec, run_stats(stats), trainings(training))


def decide(specs: list[GateConfig], stats: dict[str, Any], training: dict[str, Any]) -> Decision:
    return gates_module.decide(specs, run_stats(stats), trainings(training))


def observations(metric: str, stats: dict[str, Any], training: dict[str, Any]) -> list[Observation]:
    return gates_module.observations(metric, run_stats(stats), trainings(training))


def gate(**kw: Any) -> GateConfig:
    return GateConfig.model_validate({"name": "g", **kw})


NONINF = dict(metric="forgetting.delta", test="non_inferiority", margin=0.05)
SUPER = dict(metric="suite.pass_rate_delta", test="superiority", threshold=0.0, min_effect=0.1)


@pytest.mark.parametrize("spec, entry, outcome, words", [
    # non-inferiority: the one-sided lower bound decides; a drop past the margin fails outright
    (NONINF, paired(-0.01, (-0.03, 0.01), -0.028), "pass", "stays above"),
    (NONINF, paired(-0.08, (-0.12, -0.04), -0.11), "fail", "more than the margin"),
    (NONINF, paired(-0.03, (-0.10, 0.04), -0.09, mde=0.12), "inconclusive", "resolve only differences of 0.120"),
    (NONINF, paired(-0.03, (-0.07, 0.01), -0.065, mde=0.03), "fail", "not ruled out"),
    (NONINF, paired(0.0, (0.0, 0.0), 0.0, mde=None), "pass", "stays above"),
    (NONINF, paired(-0.03, (-0.09, 0.03), -0.08, mde=None), "inconclusive", "cannot resolve a difference"),
    # superiority: CI above the threshold and p < alpha; else fail unless the sample is too small
    (SUPER, paired(0.2, (0.1, 0.3), 0.12, p=0.001), "pass", "lies above"),
    # CI and (Holm-adjusted) p disagree: not proven, and the reason says which one blocked it
    (SUPER, paired(0.2, (0.1, 0.3), 0.12, p=0.2), "inconclusive", "lies above 0 but p = 0.2 is not below 0.05"),
    (SUPER, paired(-0.2, (-0.3, -0.1), -0.28, p=0.001), "fail", "lies below"),
    (SUPER, paired(0.05, (-0.05, 0.15), -0.03, p=0.3, mde=0.25, n=40), "inconclusive",
     "40 items detect only effects of 0.250 or more"),
    (SUPER, paired(0.01, (-0.02, 0.04), -0.015, p=0.6, mde=0.04), "fail", "includes 0"),
])
def test_paired_gates(spec: dict[str, Any], entry: dict[str, Any], outcome: str, words: str) -> None:
    key = "forgetting" if spec["metric"].startswith("forgetting") else "suites"
    stats = {"forgetting": {"tasks": {"t": entry}}} if key == "forgetting" else {"suites": {"t": entry}}
    [result] = evaluate_gate(gate(**spec), stats, {})
    assert (result.outcome, result.subject) == (outcome, "t")
    assert words in result.reason


JUDGE = {"n": 100, "win_rate": 0.7, "win_rate_ci": [0.6, 0.8], "sign_test_p": 0.001, "min_detectable_win_rate": 0.64,
         "decisive_consistency": 0.95,
         "parse_failure_rate": 0.01, "failure_rate": 0.0, "swap_consistency": 0.9, "canaries": {"total": 4, "wins": 1},
         "gold": {"items": 10, "agreed": 9, "agreement": 0.9, "kappa": 0.85, "swap_consistency": 1.0, "unparsed": 0,
                  "failed": 0, "confusion": {}, "sha256": "x"}}


@pytest.mark.parametrize("spec, judge, outcome", [
    (dict(metric="judge.win_rate", test="superiority", threshold=0.5), JUDGE, "pass"),
    (dict(metric="judge.win_rate", test="superiority", threshold=0.5),
     {**JUDGE, "win_rate": 0.55, "win_rate_ci": [0.45, 0.65], "sign_test_p": 0.3, "min_detectable_win_rate": 0.7},
     "inconclusive"),
    (dict(metric="judge.win_rate", test="superiority", threshold=0.5),
     {**JUDGE, "win_rate": 0.3, "win_rate_ci": [0.2, 0.4]}, "fail"),
    (dict(metric="judge.parse_failure_rate", test="at_most", threshold=0.02), JUDGE, "pass"),
    (dict(metric="judge.parse_failure_rate", test="at_most", threshold=0.0), JUDGE, "fail"),
    (dict(metric="judge.swap_consistency", test="at_least", threshold=0.8), JUDGE, "pass"),
    (dict(metric="judge.canary_wins", test="at_most", threshold=0), JUDGE, "fail"),
    (dict(metric="judge.failure_rate", test="at_most", threshold=0), {**JUDGE, "failure_rate": None}, "inconclusive"),
])
def test_judge_gates(spec: dict[str, Any], judge: dict[str, Any], outcome: str) -> None:
    [result] = evaluate_gate(gate(**spec), {"judge": judge}, {})
    assert result.outcome == outcome, result.reason


def test_missing_stage_is_inconclusive_when_required_and_skipped_otherwise() -> None:
    [r] = evaluate_gate(gate(metric="judge.win_rate", test="superiority", threshold=0.5), {}, {})
    assert r.outcome == "inconclusive" and r.reason.startswith("the run has no judge stage (a gate with required")
    [r] = evaluate_gate(gate(metric="train.smoke_passed", test="is_true", required=False), {}, {})
    assert r.outcome == "skipped"
    smoke = {"candidate": {"smoke": {"passed": False, "reasons": ["eval_within_10pct: eval loss 0.64 (+11.5%)"]}}}
    [r] = evaluate_gate(gate(metric="train.smoke_passed", test="is_true"), {}, smoke)
    assert (r.outcome, r.subject, r.reason) == ("fail", "candidate",
                                                "failed: eval_within_10pct: eval loss 0.64 (+11.5%)")


def test_named_subject_missing_from_the_run_is_inconclusive() -> None:
    stats = {"suites": {"a": paired(0.2, (0.1, 0.3), 0.12, p=0.001)}}
    results = evaluate_gate(gate(**SUPER, subjects=["a", "b"]), stats, {})
    assert [(r.subject, r.outcome) for r in results] == [("a", "pass"), ("b", "inconclusive")]


def test_overall_outcome_fail_beats_inconclusive_beats_pass() -> None:
    stats = {"suites": {"ok": paired(0.2, (0.1, 0.3), 0.12, p=0.001),
                        "small": paired(0.05, (-0.05, 0.15), -0.03, p=0.3, mde=0.25)},
             "forgetting": {"tasks": {"t": paired(-0.08, (-0.12, -0.04), -0.11)}}}
    gates = [gate(**SUPER), GateConfig.model_validate({"name": "f", **NONINF})]
    d = decide(gates, stats, {})
    assert (d.outcome, d.exit_code, d.reason) == ("fail", 1, "failed: f[t]")
    d = decide(gates[:1], stats, {})
    assert (d.outcome, d.exit_code) == ("inconclusive", 3)
    d = decide(gates[:1], {"suites": {"ok": stats["suites"]["ok"]}}, {})
    assert (d.outcome, d.exit_code) == ("pass", 0)
    assert decide([], stats, {}).outcome == "ungated"


def test_the_metric_field_lists_every_metric() -> None:
    doc = GateConfig.model_fields["metric"].description or ""
    assert all(metric in doc for metric in GATE_METRICS), doc


def test_every_metric_has_an_observation_path() -> None:
    stats = {"suites": {"s": paired(0.1, (0, 0.2), 0.01)}, "forgetting": {"tasks": {"t": paired(0, (0, 0), 0)}},
             "judge": JUDGE}
    training = {"candidate": {"smoke": {"passed": True, "reasons": []}}}
    delta = {"n": 40, "base": 0.5, "candidate": 0.6, "delta": 0.1, "delta_ci": [0.0, 0.2],
             "delta_lower_one_sided": 0.02, "p_value": 0.04, "mde": 0.1}
    sampled = {"s": {"samples_per_item": 4.0, "pass_at_k": {"1": delta, "4": delta}, "majority_vote": delta}}
    full = run_stats(stats).model_copy(update={"sampled": RunStats.model_validate(
        {"seed": 0, "suites": {}, "sampled": sampled}).sampled})
    for metric in GATE_METRICS:
        found = gates_module.observations(metric, full, trainings(training))
        assert found and all(o.value is not None for o in found), metric


@pytest.mark.parametrize("raw, field, words", [
    ({"name": "x", "metric": "judge.winrate", "test": "superiority"}, "gates[0].metric", "unknown metric"),
    ({"name": "x", "metric": "judge.win_rate", "test": "non_inferiority"}, "gates[0]", "paired difference"),
    ({"name": "x", "metric": "judge.win_rate", "test": "is_true"}, "gates[0]", "is_true"),
    ({"name": "x", "metric": "forgetting.delta", "test": "non_inferiority", "margin": 2}, "gates[0].margin", "1"),
])
def test_bad_policy_is_one_line_naming_the_field(tmp_path: Path, raw: dict[str, Any], field: str, words: str) -> None:
    import yaml

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"gates": [raw]}))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.field == field and words in str(info.value) and "\n" not in str(info.value)


def test_default_policy_is_documented_and_valid() -> None:
    names = [g.name for g in default_policy()]
    assert names[:2] == ["judge-prefers-candidate", "no-forgetting"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [n for n in names if n not in readme]
    assert not missing, f"README does not document {missing}"
    assert DEFAULT_POLICY.is_file()


def test_junit_has_one_case_per_gate_with_reasons() -> None:
    stats = {"suites": {"ok": paired(0.2, (0.1, 0.3), 0.12, p=0.001),
                        "small": paired(0.05, (-0.05, 0.15), -0.03, p=0.3, mde=0.25)},
             "forgetting": {"tasks": {"t": paired(-0.08, (-0.12, -0.04), -0.11)}}}
    gates = [gate(**SUPER), GateConfig.model_validate({"name": "f", **NONINF}),
             gate(metric="train.smoke_passed", test="is_true", required=False)]
    decision = decide(gates, stats, {})
    root = ET.fromstring(junit_xml(decision, "run-1"))
    suite = root.find("testsuite")
    assert suite is not None
    counts = (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
    assert counts == ("4", "1", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"g[ok]", "g[small]", "f[t]", "g"}
    assert cases["g[ok]"].find("failure") is None and cases["g[ok]"].find("error") is None
    failure = cases["f[t]"].find("failure")
    assert failure is not None and "more than the margin" in failure.get("message", "")
    assert cases["g[small]"].find("error") is not None and cases["g"].find("skipped") is not None


def test_gate_cli_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    import json
    import subprocess

    from tests.conftest import ROOT, harness_cmd

    missing = subprocess.run(harness_cmd("gate", str(tmp_path)), capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path}: not a run dir (no manifest.json)"
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r", "plan": {}, "suites": []}))
    foreign = subprocess.run(harness_cmd("gate", str(tmp_path)), capture_output=True, text=True, cwd=ROOT)
    assert foreign.returncode == 2 and foreign.stderr == (f"error: {tmp_path / 'manifest.json'}: schema_version: "
                                                          "expected a version number, found None: not a run file "
                                                          "of this harness\n")
    (tmp_path / "manifest.json").write_text(manifest().model_dump_json())
    unfinished = subprocess.run(harness_cmd("gate", str(tmp_path)), capture_output=True, text=True, cwd=ROOT)
    assert unfinished.returncode == 2 and "no stats.json" in unfinished.stderr
    (tmp_path / "stats.json").write_text(run_stats({}).model_dump_json())
    policy = tmp_path / "policy.yaml"
    policy.write_text("gates:\n  - {name: x, metric: judge.winrate, test: superiority}\n")
    bad = subprocess.run(harness_cmd("gate", str(tmp_path), "--policy", str(policy)), capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: {policy}: gates[0].metric: unknown metric")
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "verdict.json").exists()


@pytest.mark.parametrize("name", ["stats.json", "manifest.json"])
def test_gate_reads_a_truncated_run_file_as_corrupt_and_rewrites_nothing(tmp_path: Path, name: str) -> None:
    import subprocess

    from tests.conftest import ROOT, harness_cmd
    from tests.report_fixture import FULL_RUN, build_runs

    run = build_runs(tmp_path) / FULL_RUN
    files = lambda: {f.name: f.read_bytes() for f in run.iterdir() if f.is_file() and f.name != ".writer.lock"}  # noqa: E731
    before = files()
    file = run / name
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])  # cut mid-write
    result = subprocess.run(harness_cmd("gate", str(run)), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {file}: not valid JSON (") and result.stderr.count("\n") == 1
    assert "the file is truncated or corrupt" in result.stderr
    assert files() == {**before, name: file.read_bytes()}  # verdict.json, junit.xml, summary.md untouched


def test_a_tiny_sample_cannot_prove_no_forgetting() -> None:
    """3 or 20 items that all agree prove nothing; 400 do. (A percentile bootstrap would give [0, 0].)"""
    import numpy as np

    from harness.verdict.run_stats import paired_binary

    spec = GateConfig.model_validate({"name": "f", **NONINF})
    outcomes = {}
    for n in (3, 20, 400):
        entry = paired_binary([True] * n, [True] * n, np.random.default_rng(0))
        [r] = evaluate_gate(spec, {"forgetting": {"tasks": {"t": entry.model_dump()}}}, {})
        outcomes[n] = r.outcome
    assert outcomes == {3: "inconclusive", 20: "inconclusive", 400: "pass"}


@pytest.mark.parametrize("raw, words", [
    ({"metric": "judge.win_rate", "test": "superiority"}, "needs a threshold"),
    ({"metric": "forgetting.delta", "test": "non_inferiority", "threshold": -0.05}, "'threshold' is not used"),
    ({"metric": "judge.parse_failure_rate", "test": "at_most", "threshold": 0.1, "margin": 0.1}, "'margin' is not"),
    ({"metric": "judge.swap_consistency", "test": "superiority", "threshold": 0.5}, "needs a metric with a confidence"),
    ({"metric": "judge.win_rate", "test": "superiority", "threshold": 0.5, "subjects": ["x"]}, "no subjects"),
    ({"metric": "forgetting.delta", "test": "non_inferiority", "margin": 0.05, "subjects": []}, "at least 1"),
])
def test_gates_that_would_mean_nothing_are_refused(raw: dict[str, Any], words: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=words):
        GateConfig.model_validate({"name": "g", **raw})


def test_a_misspelt_subject_is_named_with_what_the_run_has() -> None:
    stats = {"forgetting": {"tasks": {"demo_cloze": paired(0.0, (0, 0), 0.0)}}}
    results = evaluate_gate(gate(**NONINF, subjects=["demo_cloze", "demo_clozee"]), stats, {})
    assert [(r.subject, r.outcome) for r in results] == [("demo_cloze", "pass"), ("demo_clozee", "inconclusive")]
    assert results[1].reason == "the run has no 'demo_clozee' for forgetting.delta (it has: demo_cloze)"


def test_no_canary_judged_is_not_zero_canary_wins() -> None:
    judge = {**JUDGE, "canaries": {"total": 0, "wins": 0}}
    [r] = evaluate_gate(gate(metric="judge.canary_wins", test="at_most", threshold=0), {"judge": judge}, {})
    assert r.outcome == "inconclusive"


@pytest.mark.parametrize("spec, expected", [
    (dict(metric="judge.failure_rate", test="at_most", threshold=0), "inconclusive"),
    (dict(metric="judge.win_rate", test="superiority", threshold=0.5), "inconclusive"),
    (dict(metric="judge.canary_wins", test="at_most", threshold=0), "fail"),  # a canary that won did win
    (dict(metric="judge.parse_failure_rate", test="at_most", threshold=0.0), "fail"),  # the judge answered
])
def test_judge_calls_that_failed_leave_what_they_could_not_decide_inconclusive(spec: dict[str, Any],
                                                                               expected: str) -> None:
    judge = {**JUDGE, "win_rate": 0.3, "win_rate_ci": [0.2, 0.4], "failed": 3, "failure_rate": 0.03}
    [result] = evaluate_gate(gate(**spec), {"judge": judge}, {})
    assert result.outcome == expected, result.reason
    if expected == "inconclusive":
        assert "3 of 100 judge pairs failed" in result.reason


def test_a_judge_that_flips_with_the_order_is_named_as_biased_not_as_a_small_sample() -> None:
    judge = {**JUDGE, "win_rate": 0.5, "win_rate_ci": [0.45, 0.55], "judged": 100, "inconsistent": 90,
             "decisive_consistency": 0.1, "decisive_pairs": 100,
             "position_bias": {"first": 88, "second": 2, "p_value": 1e-20}}
    [win] = evaluate_gate(gate(metric="judge.win_rate", test="superiority", threshold=0.5), {"judge": judge}, {})
    assert win.outcome != "pass"
    assert "90 of 100 judged pairs were inconsistent: the judge flipped with the order" in win.reason
    assert "position bias: it picked the first answer in 88 of the 90" in win.reason and "p = 1e-20" in win.reason
    [consistent] = evaluate_gate(next(g for g in default_policy() if g.name == "judge-consistent"),
                                 {"judge": judge}, {})
    assert consistent.outcome == "fail"


def test_an_always_tie_judge_cannot_pass_the_consistency_gate() -> None:
    judge = {**JUDGE, "swap_consistency": 1.0, "decisive_consistency": None, "decisive_pairs": 0}
    spec = next(g for g in default_policy() if g.name == "judge-consistent")
    [result] = evaluate_gate(spec, {"judge": judge}, {})
    assert result.outcome == "inconclusive"
    [old] = evaluate_gate(gate(metric="judge.swap_consistency", test="at_least", threshold=0.8), {"judge": judge}, {})
    assert old.outcome == "pass"  # why the default policy gates the decided pairs instead
