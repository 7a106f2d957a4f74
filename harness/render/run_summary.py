"""Pure summaries of a run's records: pass rates side by side, warnings,
and the markdown and verdict files built from them. No I/O here."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from harness.records.answers import AnswerRow
from harness.records.manifest import Manifest, StageEntry
from harness.records.outcomes import CheckedAnswers
from harness.records.run_results import (
    ForgettingStats,
    JudgeSummary,
    RoleRates,
    RunStats,
    SampledSuite,
    SmokeOutcome,
    SuiteVerdict,
    TrainingResult,
    Verdict,
)
from harness.records.stage_records import ROLES, CheckRecord
from harness.render.formatting import ci_pts, ci_raw, delta_pts, fraction, loss, p_value, pct, removed_summary, value
from harness.render.text import markdown_cell
from harness.verdict.gate import Decision

EXAMPLES = 5


@dataclass(frozen=True)
class SuiteSummary:
    """What the two sides' answers in one suite look like (the paired pass rates are in stats.json)."""

    suite: str
    base: RoleRates
    candidate: RoleRates
    identical: int
    """Answers where the candidate's text equals the base's."""


@dataclass(frozen=True)
class Example:
    suite: str
    item_id: str
    base: str
    candidate: str
    base_passed: bool
    candidate_passed: bool


@dataclass(frozen=True)
class RunSummary:
    suites: list[SuiteSummary]
    examples: list[Example]
    """Up to EXAMPLES answers that changed outcome, taken from each suite in turn."""
    warnings: list[str] = field(default_factory=list)
    changed: int = 0
    """All answers whose pass/fail differs between base and candidate."""


@dataclass
class _Tally:
    """One side of one suite's answers, counted as they go by."""

    answers: int = 0
    truncated: int = 0
    tokens: int = 0

    def add(self, answer: AnswerRow) -> None:
        self.answers += 1
        self.truncated += answer.finish_reason == "length"
        self.tokens += answer.completion_tokens


def _rates(tally: _Tally, answers: dict[tuple[str, int], dict[str, bool]]) -> RoleRates:
    """One side of one suite: its answers, and its checked answers' checks by name ((item, sample) -> checks)."""
    by_check: dict[str, list[int]] = {}
    passed = 0
    for named in answers.values():
        passed += all(named.values())
        for name, ok in named.items():
            count = by_check.setdefault(name, [0, 0])
            count[0] += ok
            count[1] += 1
    return RoleRates(
        answers=tally.answers, checked=len(answers), passed=passed, truncated=tally.truncated,
        mean_completion_tokens=tally.tokens / tally.answers if tally.answers else 0.0,
        checks={name: ok / total for name, (ok, total) in sorted(by_check.items())})


def summarize(suite_names: Sequence[str], generations: Iterable[AnswerRow],
              checks: Sequence[CheckRecord] | CheckedAnswers) -> RunSummary:
    """`generations` (an Answers, or records) is walked twice: the base's texts are kept for the second walk,
    which compares the candidate's answers with them."""
    if iter(generations) is generations:  # a one-shot iterator
        generations = list(generations)
    checked = CheckedAnswers.of(checks)
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    base_texts: dict[tuple[str, str, int], str] = {}
    for g in generations:
        tallies[(g.suite, g.role)].add(g)
        if g.role == "base":
            base_texts[(g.suite, g.item_id, g.sample_index)] = g.text
    nothing: dict[tuple[str, int], bool] = {}
    identical: dict[str, int] = defaultdict(int)
    flipped: dict[str, list[Example]] = defaultdict(list)
    """Each suite's first EXAMPLES answers that changed outcome (all the round-robin below can take)."""
    changed = 0
    names = set(suite_names)
    for g in generations:
        if g.role != "candidate" or g.suite not in names:
            continue
        base_text = base_texts.get((g.suite, g.item_id, g.sample_index))
        identical[g.suite] += base_text == g.text
        before = checked.passed.get((g.suite, "base"), nothing).get((g.item_id, g.sample_index))
        after = checked.passed.get((g.suite, "candidate"), nothing).get((g.item_id, g.sample_index))
        if before is not None and after is not None and before != after and base_text is not None:
            changed += 1
            if len(flipped[g.suite]) < EXAMPLES:
                flipped[g.suite].append(Example(g.suite, g.item_id, base_text, g.text, before, after))
    suites = [SuiteSummary(name, _rates(tallies[(name, "base")], checked.sides.get((name, "base"), {})),
                           _rates(tallies[(name, "candidate")], checked.sides.get((name, "candidate"), {})),
                           identical[name]) for name in suite_names]
    total_pairs = sum(min(s.base.answers, s.candidate.answers) for s in suites)
    total_identical = sum(s.identical for s in suites)
    # Round-robin over the suites, so a suite that changed little still shows what did.
    queues = [list(v) for v in flipped.values()]
    examples: list[Example] = []
    while len(examples) < EXAMPLES and any(queues):
        for queue in queues:
            if queue and len(examples) < EXAMPLES:
                examples.append(queue.pop(0))
    warnings = []
    if total_pairs and total_identical == total_pairs:
        warnings.append("the candidate's answers equal the base's on every item: an adapter that did not "
                        "load, or the same weights twice, is the usual cause")
    for s in suites:
        for role in ROLES:
            rates: RoleRates = getattr(s, role)
            if rates.answers and rates.truncated / rates.answers > 0.5:
                warnings.append(f"{s.suite}: {role} hit max_tokens on {rates.truncated}/{rates.answers} answers")
    return RunSummary(suites, examples, warnings, changed)


def verdict(summary: RunSummary, training: dict[str, TrainingResult], decision: Decision,
            run_stats: RunStats) -> Verdict:
    """verdict.json: the gate decision, the per-suite paired rates and the smoke verdicts."""
    def suite(s: SuiteSummary) -> SuiteVerdict:
        paired = run_stats.suites.get(s.suite)
        return SuiteVerdict(base_pass_rate=paired.base_rate if paired else None,
                            candidate_pass_rate=paired.candidate_rate if paired else None,
                            delta=paired.delta if paired else None, base=s.base, candidate=s.candidate,
                            identical_answers=s.identical)

    return Verdict(outcome=decision.outcome, exit_code=decision.exit_code, reason=decision.reason,
                   policy=decision.policy, gates=decision.gates,
                   train={role: SmokeOutcome(smoke_passed=t.smoke.passed, reasons=t.smoke.reasons)
                          for role, t in training.items()},
                   suites={s.suite: suite(s) for s in summary.suites}, warnings=summary.warnings)


OUTCOME_TEXT = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "skipped": "skipped",
                "ungated": "ungated"}


def gate_lines(decision: Decision) -> list[str]:
    """The gates table of summary.md."""
    lines = [f"Verdict: **{OUTCOME_TEXT[decision.outcome]}** (exit code {decision.exit_code}): {decision.reason}.", "",
             f"Policy: {decision.policy}.", ""]
    if not decision.gates:
        return lines
    lines += ["## Gates", "", "| gate | metric | outcome | value | threshold | 95% CI | p | reason |",
              "|---|---|---|---:|---:|---|---:|---|"]
    for g in decision.gates:
        threshold = "" if g.threshold is None else f"{g.threshold:g}"
        lines.append(f"| {g.label} | {g.metric} ({g.test}) | {OUTCOME_TEXT[g.outcome]} | {value(g.value)} | "
                     f"{threshold} | {ci_raw(g.ci)} | {p_value(g.p_value)} | {_cell(g.reason, 200)} |")
    return lines + [""]


def junit_xml(decision: Decision, run_id: str) -> str:
    """One test case per gate and subject: a failing gate is a <failure>, an inconclusive one an
    <error> (never green), a skipped one <skipped>; the message is the gate's reason."""
    suites = ET.Element("testsuites", name="harness")
    gate_suite(suites, f"harness gates ({run_id})", decision, "harness.gates")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def gate_suite(parent: ET.Element, name: str, decision: Decision, classname: str) -> None:
    """A <testsuite> of one decision's gates under `parent` (junit.xml's <testsuites>)."""
    counts = {o: sum(g.outcome == o for g in decision.gates) for o in ("fail", "inconclusive", "skipped")}
    suite = ET.SubElement(parent, "testsuite", name=name, tests=str(len(decision.gates)),
                          failures=str(counts["fail"]), errors=str(counts["inconclusive"]),
                          skipped=str(counts["skipped"]))
    for g in decision.gates:
        case = ET.SubElement(suite, "testcase", classname=f"{classname}.{g.metric}", name=g.label)
        tag = {"fail": "failure", "inconclusive": "error", "skipped": "skipped"}.get(g.outcome)
        if tag:
            element = ET.SubElement(case, tag, message=g.reason, type=g.outcome)
            element.text = g.reason


FLAG_TEXT = {"ok": "ok", "warn": "**warn**", "fail": "**FAIL**"}


def forgetting_lines(forgetting: ForgettingStats | None, base: str, cand: str) -> list[str]:
    """The forgetting table: per lm-eval task, both accuracies and the paired drop."""
    if forgetting is None:
        return []
    lines = ["", "## Forgetting (lm-eval)", "",
             f"Accuracy on the same items; a drop beyond {100 * forgetting.warn_drop:.0f} points warns, beyond "
             f"{100 * forgetting.fail_drop:.0f} fails. lm-eval {forgetting.lm_eval_version}.", "",
             f"| task | items | {base} | {cand} | delta | 95% CI | p (Holm) | flag |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    for task, t in forgetting.tasks.items():
        lines.append(f"| {task} | {t.n} | {pct(t.base_rate)} ± {pct(t.base_stderr)} | "
                     f"{pct(t.candidate_rate)} ± {pct(t.candidate_stderr)} | {delta_pts(t.delta)} | "
                     f"{ci_pts(t.delta_ci)} | {p_value(t.p_holm)} | {FLAG_TEXT[t.flag]} |")
    return lines


def sampled_lines(sampled: dict[str, SampledSuite] | None, base: str, cand: str) -> list[str]:
    """pass@k and majority vote per suite (plan.pass_at_k, plan.majority_vote), when the run has them."""
    if not sampled:
        return []
    lines = ["", "## Sampled", "",
             "Several samples per item: pass@k by the unbiased estimator (Chen et al. 2021), majority vote (an item "
             "is right when more than half of its samples pass its reference checks; a tie is wrong). Means over "
             "items; 95% cluster bootstrap CI of the difference, sign-flip permutation p (Holm-adjusted with the "
             "run's other tests).", "",
             f"| suite | figure | items | {base} | {cand} | delta | 95% CI | p (Holm) |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for name, s in sampled.items():
        rows = [(f"pass@{k}", d) for k, d in s.pass_at_k.items()]
        rows += [("majority vote", s.majority_vote)] if s.majority_vote is not None else []
        for figure, d in rows:
            lines.append(f"| {name} | {figure} | {d.n} | {pct(d.base)} | {pct(d.candidate)} | {delta_pts(d.delta)} | "
                         f"{ci_pts(d.delta_ci)} | {p_value(d.p_holm if d.p_holm is not None else d.p_value)} |")
    return lines


def judge_lines(judge: JudgeSummary | None, stage: StageEntry | None = None) -> list[str]:
    """Win / tie / loss with the judge named, its reliability figures and the canary outcome."""
    if judge is None:
        return []
    who = f"{judge.judge} ({judge.kind}" + (f", model {judge.model})" if judge.model else ", offline: no model)")
    won = ", ".join(judge.canaries.won) or "none"
    note = judge.length_control.fallback
    fallback = f" ({note})" if note else ""
    return ["", "## Pairwise judge", "",
            f"Judge: {who}. Each pair is judged in both orders; a side wins only when both agree. "
            f"p: {judge.significance_test}.", "",
            "| pairs | candidate wins | base wins | ties | inconsistent | unparsed | failed | win rate (ties half) "
            "| 95% CI | p |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            f"| {judge.n} | {judge.wins} | {judge.losses} | {judge.ties} | {judge.inconsistent} | "
            f"{judge.unparsed} | {judge.failed} | {fraction(judge.win_rate)} | "
            f"{ci_raw(judge.win_rate_ci)} | {p_value(judge.sign_test_p)} |", "",
            f"Reliability: swap consistency {fraction(judge.swap_consistency)} (on the {judge.decisive_pairs} pairs "
            f"some order decided: {fraction(judge.decisive_consistency)}){_position(judge)}, parse failures "
            f"{fraction(judge.parse_failure_rate)}, call failures {fraction(judge.failure_rate)}, ties "
            f"{fraction(judge.tie_rate)}. Length: base {_words(judge.base_words_mean)} words, candidate "
            f"{_words(judge.candidate_words_mean)}; length-controlled win rate "
            f"{fraction(judge.length_controlled_win_rate)}{fallback}. Canaries: {judge.canaries.wins} of "
            f"{judge.canaries.total} beat the base (won: {won}). Judge calls: {judge.calls} "
            f"({judge.cached} pairs from cache){_requests(stage)}.", *_stopping(judge), *_gold(judge)]


def gold_line(judge: JudgeSummary) -> str | None:
    """judge.gold: how often the judge agreed with people before it judged the run."""
    gold = judge.gold
    if gold is None:
        return None
    kappa = "n/a" if gold.kappa is None else f"{gold.kappa:.3f}"
    line = (f"Gold set: the judge agreed with the human label on {gold.agreed} of {gold.items} pairs "
            f"({fraction(gold.agreement)}), Cohen's kappa {kappa}, swap consistency {fraction(gold.swap_consistency)}"
            f", unparsed {gold.unparsed}, failed {gold.failed}.")
    if gold.position_bias is not None:
        flips = gold.position_bias
        line += (f" Position: {flips['first'] + flips['second']} pairs went to the same position in both orders "
                 f"(A {flips['first']}, B {flips['second']}).")
    if (length := gold.length_bias) is not None:
        ties = "" if length.judge_longer_in_ties is None else \
            f"; in pairs labelled a tie {fraction(length.judge_longer_in_ties)}"
        line += (f" Length: of {length.pairs} pairs whose answers differ in length, the judge gave "
                 f"{fraction(length.judge_longer)} to the longer answer, the labels {fraction(length.label_longer)}"
                 f"{ties}.")
    return line


def _gold(judge: JudgeSummary) -> list[str]:
    line = gold_line(judge)
    return ["", line] if line else []


def stopping_line(judge: JudgeSummary) -> str | None:
    """judge.stop_early: how far judging went, what it saved and why it stopped (or did not)."""
    seq = judge.sequential
    if seq is None:
        return None
    settled = "; ".join(f"{g.gate}: [{g.lower:.3f}, {g.upper:.3f}] {g.outcome} {g.threshold:g}" if g.outcome
                        else f"{g.gate}: not settled" for g in seq.gates)
    if not seq.stopped_early:
        return (f"Stopping early: every one of the {seq.items} items was judged; the win-rate gates were not settled "
                f"sooner ({settled}), so the full-run test decides.")
    return (f"Stopped early: {seq.judged_items} of {seq.items} items judged in a random order, "
            f"{seq.calls_saved} judge calls saved ({seq.calls} made or cached). {1 - seq.alpha:.0%} confidence "
            f"sequences, valid at every stopping point: {settled}. The win rate and its statistics above cover the "
            "items judged.")


def _stopping(judge: JudgeSummary) -> list[str]:
    line = stopping_line(judge)
    return ["", line] if line else []


def _requests(stage: StageEntry | None) -> str:
    """What this run sent over the wire, retries included (the calls above are the verdicts' cost)."""
    counters = stage.counters if stage is not None else {}
    if "requests" not in counters:
        return ""
    return (f"; this run sent {counters['requests']} requests to the judge, {counters.get('retries', 0)} of them "
            "retries")


def _position(judge: JudgeSummary) -> str:
    bias = judge.position_bias
    if not bias.first + bias.second:
        return ""
    return (f", inconsistent pairs won by the first answer {bias.first}, by the second {bias.second} "
            f"(binomial p {p_value(bias.p_value)})")


def _words(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _cell(text: str, limit: int = 160) -> str:
    return markdown_cell(text, limit)


def markdown(summary: RunSummary, manifest: Manifest, decision: Decision, training: dict[str, TrainingResult],
             run_stats: RunStats) -> str:
    base, cand = manifest.checkpoints["base"].name, manifest.checkpoints["candidate"].name
    lines = [f"# {base} vs {cand}", "", f"Run `{manifest.run_id}`.", ""]
    lines += gate_lines(decision)
    lines += [w for warning in summary.warnings for w in (f"> **Warning:** {warning}", "")]
    for role, result in training.items():
        lines += training_lines(manifest.checkpoints[role].name, result)
    lines += ["## Pass rates", "", "Paired on the same items (answered and checked on both sides): 95% bootstrap "
              "CI of the difference, exact McNemar p-value (Holm-adjusted across suites and tasks; with several "
              "samples per item, a cluster bootstrap over items and a per-item permutation test).", "",
              f"| suite | items | {base} | {cand} | delta | 95% CI | p (Holm) |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for name, st in run_stats.suites.items():
        lines.append(f"| {name} | {st.n} | {pct(st.base_rate)} | {pct(st.candidate_rate)} | {delta_pts(st.delta)} | "
                     f"{ci_pts(st.delta_ci)} | {p_value(st.p_holm)} |")
    lines += sampled_lines(run_stats.sampled, base, cand)
    lines += judge_lines(run_stats.judge, manifest.stage("judge"))
    lines += forgetting_lines(run_stats.forgetting, base, cand)
    lines += ["", "## Checks", "", f"| suite | check | {base} | {cand} |", "|---|---|---:|---:|"]
    for s in summary.suites:
        for check in sorted(set(s.base.checks) | set(s.candidate.checks)):
            lines.append(f"| {s.suite} | {check} | {pct(s.base.checks.get(check))} | "
                         f"{pct(s.candidate.checks.get(check))} |")
    if summary.examples:
        lines += ["", "## Answers that changed outcome", "",
                  f"{len(summary.examples)} of the {summary.changed} answers whose pass/fail changed, from each suite "
                  "in turn; `harness report` lists them all.", "",
                  f"| suite | item | {base} | {cand} |", "|---|---|---|---|"]
        for e in summary.examples:
            mark = {True: "pass", False: "fail"}
            lines.append(f"| {e.suite} | {e.item_id} | {mark[e.base_passed]}: {_cell(e.base)} | "
                         f"{mark[e.candidate_passed]}: {_cell(e.candidate)} |")
    return "\n".join(lines) + "\n"


def training_lines(name: str, result: TrainingResult) -> list[str]:
    """The smoke verdict of one SFT run, as markdown."""
    smoke, data = result.smoke, result.data
    state = "passed" if smoke.passed else "FAILED"
    lines = [f"## Smoke-test SFT of {name}: {state}", "",
             f"{result.steps} steps in {result.seconds} s ({result.tokens_per_second} tokens/s), "
             f"peak memory {result.peak_memory_mib} MiB, final eval loss {loss(result.eval_loss)}.", "",
             "| check | result | measured |", "|---|---|---|"]
    lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {_cell(c.detail)} |" for c in smoke.checks]
    removed = removed_summary(data.curation)
    lines += ["", f"Data: {data.rows} rows, {data.bad_rows} unparsable, curation removed {removed}; "
              f"{data.train} train / {data.validation} validation; {data.flagged_refusals} flagged refusals.", ""]
    return lines
