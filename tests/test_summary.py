"""Pass-rate summaries, warnings and the markdown, from hand-built records."""

from __future__ import annotations

from harness.records.run_results import RunStats
from harness.records.stage_records import CheckRecord, GenerationRecord
from harness.render.run_summary import markdown, summarize, verdict
from harness.verdict.gate import decide
from harness.verdict.run_stats import apply_holm, suite_stats
from tests.run_files import manifest, run_stats


def gen(role: str, item: str, text: str, finish: str = "stop") -> GenerationRecord:
    return GenerationRecord(role=role, checkpoint=role, suite="s", item_id=item, sample_index=0, text=text,
                            finish_reason=finish, prompt_tokens=4, completion_tokens=len(text.split()),
                            latency_s=0.1, prompt_hash="p", cache_key="k", cached=False)


def chk(role: str, item: str, check: str, passed: bool) -> CheckRecord:
    return CheckRecord(role=role, suite="s", item_id=item, sample_index=0, check=check, passed=passed, detail="")


GENS = [gen("base", "a", "sorry 1"), gen("base", "b", "two"), gen("base", "c", "x", "length"),
        gen("candidate", "a", "one"), gen("candidate", "b", "two"), gen("candidate", "c", "three")]
CHECKS = [chk("base", "a", "no_apology", False), chk("base", "a", "number", True),
          chk("base", "b", "no_apology", True), chk("base", "b", "number", True),
          chk("candidate", "a", "no_apology", True), chk("candidate", "a", "number", True),
          chk("candidate", "b", "no_apology", True), chk("candidate", "b", "number", False)]


def test_pass_rates_count_answers_with_all_checks_passed() -> None:
    summary = summarize(["s"], GENS, CHECKS)
    [s] = summary.suites
    assert (s.base.answers, s.base.checked, s.base.passed) == (3, 2, 1)  # item c has no checks
    assert (s.candidate.checked, s.candidate.passed) == (2, 1)
    assert s.base.checks == {"no_apology": 0.5, "number": 1.0}
    assert s.base.truncated == 1 and s.identical == 1
    assert [(e.item_id, e.base_passed, e.candidate_passed) for e in summary.examples] == [("a", False, True),
                                                                                          ("b", True, False)]
    assert summary.warnings == []


def test_identical_answers_everywhere_are_flagged() -> None:
    same = [gen(r, i, "same") for r in ("base", "candidate") for i in "ab"]
    assert "equal the base's on every item" in summarize(["s"], same, []).warnings[0]


def test_truncation_is_flagged() -> None:
    cut = [gen(r, i, "x", "length") for r in ("base", "candidate") for i in "ab"]
    warnings = summarize(["s"], cut, []).warnings
    assert any("base hit max_tokens on 2/2" in w for w in warnings)


UNGATED = decide([], run_stats({}), {})
NAMES = manifest("r1").model_copy(update={"checkpoints": {
    role: manifest().checkpoints[role].model_copy(update={"name": name}) for role, name in (("base", "b0"),
                                                                                            ("candidate", "c1"))}})


def stats_of(checks: list[CheckRecord]) -> RunStats:
    return apply_holm(RunStats(seed=0, suites=suite_stats(["s"], checks, 0)))


def test_verdict_and_markdown() -> None:
    summary = summarize(["s"], GENS, CHECKS)
    result = verdict(summary, {}, UNGATED, stats_of(CHECKS))
    assert result.outcome == "ungated" and result.exit_code == 0 and result.gates == []
    assert result.suites["s"].base_pass_rate == 0.5
    text = markdown(summary, NAMES, UNGATED, {}, stats_of(CHECKS))
    assert "| s | 2 | 50.0% | 50.0% | +0.0 pts | [-100.0, +100.0] | 1.000 |" in text
    assert "| s | a | fail: sorry 1 | pass: one |" in text
    assert "Verdict: **ungated** (exit code 0)" in text


def test_markdown_shows_gates_and_forgetting() -> None:
    from harness.config.schema import GateConfig

    summary = summarize(["s"], GENS, CHECKS)
    task = {"n": 200, "base_rate": 0.8, "candidate_rate": 0.7, "base_stderr": 0.028, "candidate_stderr": 0.032,
            "delta": -0.1, "delta_ci": [-0.15, -0.05], "delta_lower_one_sided": -0.14, "p_value": 0.0004,
            "p_holm": 0.0008, "mde": 0.07, "flag": "fail"}
    stats = run_stats({"forgetting": {"tasks": {"cloze": task}}})
    stats.forgetting.lm_eval_version = "0.4.13"  # type: ignore[union-attr]
    gate = GateConfig(name="no-forgetting", metric="forgetting.delta", test="non_inferiority", margin=0.05)
    decision = decide([gate], stats, {})
    text = markdown(summary, NAMES, decision, {}, stats)
    assert "Verdict: **FAIL** (exit code 1): failed: no-forgetting[cloze]." in text
    assert "| no-forgetting[cloze] | forgetting.delta (non_inferiority) | FAIL | -0.100 | 0.05 |" in text
    assert "| cloze | 200 | 80.0% ± 2.8% | 70.0% ± 3.2% | -10.0 pts | [-15.0, -5.0] | <0.001 | **FAIL** |" in text


def test_markdown_escapes_table_breakers() -> None:
    gens = [gen("base", "a", "x | y\nz"), gen("candidate", "a", "ok")]
    checks = [chk("base", "a", "c", False), chk("candidate", "a", "c", True)]
    text = markdown(summarize(["s"], gens, checks), NAMES, UNGATED, {}, stats_of(checks))
    assert "fail: x \\| y z" in text


def test_every_pass_rate_printed_is_the_paired_one_the_gates_decide_on() -> None:
    """An item checked on one side only counts on neither: the table, verdict.json and the gate agree."""
    checks = CHECKS + [chk("base", "c", "number", True)]  # the candidate's answer c has no check
    stats = stats_of(checks)
    assert (stats.suites["s"].n, stats.suites["s"].base_rate) == (2, 0.5)  # not 2 of 3
    summary = summarize(["s"], GENS, checks)
    assert (summary.suites[0].base.checked, summary.suites[0].base.passed) == (3, 2)  # described per side
    result = verdict(summary, {}, UNGATED, stats)
    assert (result.suites["s"].base_pass_rate, result.suites["s"].delta) == (0.5, 0.0)
    assert "| s | 2 | 50.0% | 50.0% | +0.0 pts |" in markdown(summary, NAMES, UNGATED, {}, stats)


def test_checked_answers_give_the_summary_and_stats_of_the_records() -> None:
    # The pipeline hands the summary and the statistics each answer's checks (gathered by the checks
    # stage) instead of the check records: the same figures, from one pass over the records.
    from harness.records.outcomes import CheckedAnswers, answer_outcomes, paired_outcomes

    checked = CheckedAnswers.of(CHECKS)
    assert summarize(["s"], GENS, checked) == summarize(["s"], GENS, CHECKS)
    assert suite_stats(["s"], checked, 0) == suite_stats(["s"], CHECKS, 0)
    assert answer_outcomes(checked) == answer_outcomes(CHECKS)
    assert checked.paired()["s"] == paired_outcomes(answer_outcomes(CHECKS), "s")
    assert checked.sides[("s", "base")][("a", 0)] == {"no_apology": False, "number": True}


def test_the_summary_counts_every_changed_answer_and_keeps_a_few() -> None:
    gens = [gen(role, f"i{k}", "x") for role in ("base", "candidate") for k in range(12)]
    checks = [chk(role, f"i{k}", "c", (role == "candidate") == (k % 2 == 0)) for role in ("base", "candidate")
              for k in range(12)]
    summary = summarize(["s"], gens, checks)
    assert summary.changed == 12 and [e.item_id for e in summary.examples] == ["i0", "i1", "i2", "i3", "i4"]
