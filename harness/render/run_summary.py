"""Pure summaries of a run's records: pass rates side by side, warnings,
and the markdown and verdict files built from them. No I/O here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.records.stage_records import ROLES, CheckRecord, GenerationRecord
from harness.render.formatting import ci_pts, ci_pts_raw, delta_pts, p_value, pct, removed_summary
from harness.verdict.gate import Decision

EXAMPLES = 5


@dataclass(frozen=True)
class RoleRates:
    answers: int
    checked: int
    """Answers with at least one check."""
    passed: int
    """Answers that passed every check."""
    truncated: int
    """Answers cut by max_tokens (finish_reason length)."""
    mean_completion_tokens: float
    checks: dict[str, float]
    """Pass rate of each check type."""

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


@dataclass(frozen=True)
class SuiteSummary:
    suite: str
    base: RoleRates
    candidate: RoleRates
    identical: int
    """Answers where the candidate's text equals the base's."""

    @property
    def delta(self) -> float | None:
        b, c = self.base.pass_rate, self.candidate.pass_rate
        return None if b is None or c is None else c - b


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


def _rates(gens: Sequence[GenerationRecord], checks: Sequence[CheckRecord]) -> RoleRates:
    by_answer: dict[tuple[str, int], list[bool]] = defaultdict(list)
    by_check: dict[str, list[bool]] = defaultdict(list)
    for c in checks:
        by_answer[(c.item_id, c.sample_index)].append(c.passed)
        by_check[c.check].append(c.passed)
    tokens = [g.completion_tokens for g in gens]
    return RoleRates(
        answers=len(gens), checked=len(by_answer), passed=sum(all(v) for v in by_answer.values()),
        truncated=sum(g.finish_reason == "length" for g in gens),
        mean_completion_tokens=sum(tokens) / len(tokens) if tokens else 0.0,
        checks={name: sum(v) / len(v) for name, v in sorted(by_check.items())})


def summarize(suite_names: Sequence[str], generations: Sequence[GenerationRecord],
              checks: Sequence[CheckRecord]) -> RunSummary:
    gens: dict[tuple[str, str], list[GenerationRecord]] = defaultdict(list)
    for g in generations:
        gens[(g.suite, g.role)].append(g)
    chks: dict[tuple[str, str], list[CheckRecord]] = defaultdict(list)
    outcome: dict[tuple[str, str, str, int], bool] = {}
    for c in checks:
        chks[(c.suite, c.role)].append(c)
        key = (c.role, c.suite, c.item_id, c.sample_index)
        outcome[key] = outcome.get(key, True) and c.passed
    texts = {(g.role, g.suite, g.item_id, g.sample_index): g.text for g in generations}

    suites: list[SuiteSummary] = []
    flipped: dict[str, list[Example]] = defaultdict(list)
    total_pairs = total_identical = 0
    for name in suite_names:
        base, cand = gens[(name, "base")], gens[(name, "candidate")]
        identical = sum(texts.get(("candidate", name, g.item_id, g.sample_index)) == g.text for g in base)
        total_pairs += min(len(base), len(cand))
        total_identical += identical
        suites.append(SuiteSummary(name, _rates(base, chks[(name, "base")]),
                                   _rates(cand, chks[(name, "candidate")]), identical))
        for g in base:
            before = outcome.get(("base", name, g.item_id, g.sample_index))
            after = outcome.get(("candidate", name, g.item_id, g.sample_index))
            if before is not None and after is not None and before != after:
                answer = texts[("candidate", name, g.item_id, g.sample_index)]
                flipped[name].append(Example(name, g.item_id, g.text, answer, before, after))
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
    return RunSummary(suites, examples, warnings, sum(len(v) for v in flipped.values()))


def verdict(summary: RunSummary, training: dict[str, dict[str, Any]] | None, decision: Decision) -> dict[str, Any]:
    """verdict.json: the gate decision, the per-suite rates and the smoke verdicts."""
    return {
        "schema_version": 2,
        **decision.as_json(),
        "train": {role: {"smoke_passed": t["smoke"]["passed"], "reasons": t["smoke"]["reasons"]}
                  for role, t in (training or {}).items()},
        "suites": {s.suite: {"base_pass_rate": s.base.pass_rate, "candidate_pass_rate": s.candidate.pass_rate,
                             "delta": s.delta, "base": asdict(s.base), "candidate": asdict(s.candidate),
                             "identical_answers": s.identical} for s in summary.suites},
        "warnings": summary.warnings,
    }


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
        value = "n/a" if g.value is None else (str(g.value).lower() if isinstance(g.value, bool) else f"{g.value:.3f}")
        ci = "n/a" if g.ci is None else f"[{g.ci[0]:.3f}, {g.ci[1]:.3f}]"
        threshold = "" if g.threshold is None else f"{g.threshold:g}"
        lines.append(f"| {g.label} | {g.metric} ({g.test}) | {OUTCOME_TEXT[g.outcome]} | {value} | {threshold} | "
                     f"{ci} | {p_value(g.p_value)} | {_cell(g.reason, 200)} |")
    return lines + [""]


def junit_xml(decision: Decision, run_id: str) -> str:
    """One test case per gate and subject: a failing gate is a <failure>, an inconclusive one an
    <error> (never green), a skipped one <skipped>; the message is the gate's reason."""
    import xml.etree.ElementTree as ET

    counts = {o: sum(g.outcome == o for g in decision.gates) for o in ("fail", "inconclusive", "skipped")}
    suites = ET.Element("testsuites", name="harness")
    suite = ET.SubElement(suites, "testsuite", name=f"harness gates ({run_id})", tests=str(len(decision.gates)),
                          failures=str(counts["fail"]), errors=str(counts["inconclusive"]),
                          skipped=str(counts["skipped"]))
    for g in decision.gates:
        case = ET.SubElement(suite, "testcase", classname=f"harness.gates.{g.metric}", name=g.label)
        tag = {"fail": "failure", "inconclusive": "error", "skipped": "skipped"}.get(g.outcome)
        if tag:
            element = ET.SubElement(case, tag, message=g.reason, type=g.outcome)
            element.text = g.reason
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


FLAG_TEXT = {"ok": "ok", "warn": "**warn**", "fail": "**FAIL**"}


def forgetting_lines(forgetting: dict[str, Any] | None, base: str, cand: str) -> list[str]:
    """The forgetting table: per lm-eval task, both accuracies and the paired drop."""
    if not forgetting:
        return []
    lines = ["", "## Forgetting (lm-eval)", "",
             f"Accuracy on the same items; a drop beyond {100 * forgetting['warn_drop']:.0f} points warns, beyond "
             f"{100 * forgetting['fail_drop']:.0f} fails. lm-eval {forgetting.get('lm_eval_version')}.", "",
             f"| task | items | {base} | {cand} | delta | 95% CI | p (Holm) | flag |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    for task, t in forgetting["tasks"].items():
        lines.append(f"| {task} | {t['n']} | {pct(t['base_rate'])} ± {pct(t['base_stderr'])} | "
                     f"{pct(t['candidate_rate'])} ± {pct(t['candidate_stderr'])} | {delta_pts(t['delta'])} | "
                     f"{ci_pts(t['delta_ci'])} | {p_value(t.get('p_holm', t['p_value']))} | {FLAG_TEXT[t['flag']]} |")
    return lines


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def judge_lines(judge: dict[str, Any] | None) -> list[str]:
    """Win / tie / loss with the judge named, its reliability figures and the canary outcome."""
    if not judge:
        return []
    who = f"{judge['judge']} ({judge['kind']}" + (f", model {judge['model']})" if judge.get("model") else
                                                   ", offline: no model)")
    ci = judge.get("win_rate_ci") or [None, None]
    canaries = judge.get("canaries") or {}
    won = ", ".join(canaries.get("won") or []) or "none"
    note = (judge.get("length_control") or {}).get("fallback")
    fallback = f" ({note})" if note else ""
    return ["", "## Pairwise judge", "",
            f"Judge: {who}. Each pair is judged in both orders; a side wins only when both agree.", "",
            "| pairs | candidate wins | base wins | ties | inconsistent | unparsed | failed | win rate (ties half) "
            "| 95% CI | sign test p |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            f"| {judge['n']} | {judge['wins']} | {judge['losses']} | {judge['ties']} | {judge['inconsistent']} | "
            f"{judge['unparsed']} | {judge['failed']} | {_rate(judge.get('win_rate'))} | "
            f"{ci_pts_raw(ci)} | {p_value(judge.get('sign_test_p'))} |", "",
            f"Reliability: swap consistency {_rate(judge.get('swap_consistency'))}, parse failures "
            f"{_rate(judge.get('parse_failure_rate'))}, call failures {_rate(judge.get('failure_rate'))}, ties "
            f"{_rate(judge.get('tie_rate'))}. Length: base {_words(judge.get('base_words_mean'))} words, candidate "
            f"{_words(judge.get('candidate_words_mean'))}; length-controlled win rate "
            f"{_rate(judge.get('length_controlled_win_rate'))}{fallback}. Canaries: {canaries.get('wins', 0)} of "
            f"{canaries.get('total', 0)} beat the base (won: {won}). Judge calls: {judge.get('calls', 0)} "
            f"({judge.get('cached', 0)} pairs from cache)."]


def _words(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return (flat[:limit] + "…") if len(flat) > limit else flat or "(empty)"


def markdown(summary: RunSummary, manifest: dict[str, Any], decision: Decision,
             training: dict[str, dict[str, Any]] | None = None, run_stats: dict[str, Any] | None = None) -> str:
    base, cand = manifest["checkpoints"]["base"], manifest["checkpoints"]["candidate"]
    lines = [f"# {base['name']} vs {cand['name']}", "", f"Run `{manifest['run_id']}`.", ""]
    lines += gate_lines(decision)
    lines += [w for warning in summary.warnings for w in (f"> **Warning:** {warning}", "")]
    for role, result in (training or {}).items():
        lines += training_lines(manifest["checkpoints"][role]["name"], result)
    paired = (run_stats or {}).get("suites", {})
    lines += ["## Pass rates", "", "Paired on the same items: 95% bootstrap CI of the difference, exact McNemar "
              "p-value (Holm-adjusted across suites and tasks).", "",
              f"| suite | answers | {base['name']} | {cand['name']} | delta | 95% CI | p (Holm) |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for s in summary.suites:
        st = paired.get(s.suite, {})
        lines.append(f"| {s.suite} | {s.base.answers} | {pct(s.base.pass_rate)} | "
                     f"{pct(s.candidate.pass_rate)} | {delta_pts(s.delta)} | {ci_pts(st.get('delta_ci'))} | "
                     f"{p_value(st.get('p_holm'))} |")
    lines += judge_lines((run_stats or {}).get("judge"))
    lines += forgetting_lines((run_stats or {}).get("forgetting"), base["name"], cand["name"])
    lines += ["", "## Checks", "", f"| suite | check | {base['name']} | {cand['name']} |", "|---|---|---:|---:|"]
    for s in summary.suites:
        for check in sorted(set(s.base.checks) | set(s.candidate.checks)):
            lines.append(f"| {s.suite} | {check} | {pct(s.base.checks.get(check))} | "
                         f"{pct(s.candidate.checks.get(check))} |")
    if summary.examples:
        lines += ["", "## Answers that changed outcome", "",
                  f"{len(summary.examples)} of the {summary.changed} answers whose pass/fail changed, from each suite "
                  "in turn; `harness report` lists them all.", "",
                  f"| suite | item | {base['name']} | {cand['name']} |", "|---|---|---|---|"]
        for e in summary.examples:
            mark = {True: "pass", False: "fail"}
            lines.append(f"| {e.suite} | {e.item_id} | {mark[e.base_passed]}: {_cell(e.base)} | "
                         f"{mark[e.candidate_passed]}: {_cell(e.candidate)} |")
    return "\n".join(lines) + "\n"


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def training_lines(name: str, result: dict[str, Any]) -> list[str]:
    """The smoke verdict of one SFT run, as markdown."""
    smoke, data = result["smoke"], result["data"]
    state = "passed" if smoke["passed"] else "FAILED"
    lines = [f"## Smoke-test SFT of {name}: {state}", "",
             f"{result['steps']} steps in {result['seconds']} s ({result['tokens_per_second']} tokens/s), "
             f"peak memory {result['peak_memory_mib']} MiB, final eval loss {_loss(result['eval_loss'])}.", "",
             "| check | result | measured |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'pass' if c['passed'] else 'FAIL'} | {_cell(c['detail'])} |" for c in smoke["checks"]]
    removed = removed_summary(data["curation"])
    lines += ["", f"Data: {data['rows']} rows, {data['bad_rows']} unparsable, curation removed {removed}; "
              f"{data['train']} train / {data['validation']} validation; "
              f"{data['flagged_refusals']} flagged refusals.", ""]
    return lines
