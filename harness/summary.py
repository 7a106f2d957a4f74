"""Pure summaries of a run's records: pass rates side by side, warnings,
and the markdown and verdict files built from them. No I/O here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.records import ROLES, CheckRecord, GenerationRecord
from harness.sftdata import removed_summary

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
    warnings: list[str] = field(default_factory=list)


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

    suites, examples = [], []
    total_pairs = total_identical = 0
    for name in suite_names:
        base, cand = gens[(name, "base")], gens[(name, "candidate")]
        identical = sum(texts.get(("candidate", name, g.item_id, g.sample_index)) == g.text for g in base)
        total_pairs += min(len(base), len(cand))
        total_identical += identical
        suites.append(SuiteSummary(name, _rates(base, chks[(name, "base")]),
                                   _rates(cand, chks[(name, "candidate")]), identical))
        for g in base:
            key = (name, g.item_id, g.sample_index)
            b, c = outcome.get(("base", *key)), outcome.get(("candidate", *key))
            if b is not None and c is not None and b != c and len(examples) < EXAMPLES:
                examples.append(Example(name, g.item_id, g.text, texts[("candidate", *key)], b, c))
    warnings = []
    if total_pairs and total_identical == total_pairs:
        warnings.append("the candidate's answers equal the base's on every item: an adapter that did not "
                        "load, or the same weights twice, is the usual cause")
    for s in suites:
        for role in ROLES:
            rates: RoleRates = getattr(s, role)
            if rates.answers and rates.truncated / rates.answers > 0.5:
                warnings.append(f"{s.suite}: {role} hit max_tokens on {rates.truncated}/{rates.answers} answers")
    return RunSummary(suites, examples, warnings)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def delta_pts(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f} pts"


def verdict(summary: RunSummary, training: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """First verdict: no gates are defined yet, so the outcome says exactly that."""
    return {
        "train": {role: {"smoke_passed": t["smoke"]["passed"], "reasons": t["smoke"]["reasons"]}
                  for role, t in (training or {}).items()},
        "schema_version": 1,
        "outcome": "ungated",
        "reason": "no release gates are configured; the run reports pass rates only",
        "exit_code": 0,
        "suites": {s.suite: {"base_pass_rate": s.base.pass_rate, "candidate_pass_rate": s.candidate.pass_rate,
                             "delta": s.delta, "base": asdict(s.base), "candidate": asdict(s.candidate),
                             "identical_answers": s.identical} for s in summary.suites},
        "warnings": summary.warnings,
    }


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return (flat[:limit] + "…") if len(flat) > limit else flat or "(empty)"


def markdown(summary: RunSummary, manifest: dict[str, Any], training: dict[str, dict[str, Any]] | None = None) -> str:
    base, cand = manifest["checkpoints"]["base"], manifest["checkpoints"]["candidate"]
    lines = [f"# {base['name']} vs {cand['name']}", "",
             f"Run `{manifest['run_id']}`. Verdict: **ungated** (no release gates configured).", ""]
    lines += [w for warning in summary.warnings for w in (f"> **Warning:** {warning}", "")]
    for role, result in (training or {}).items():
        lines += training_lines(manifest["checkpoints"][role]["name"], result)
    lines += ["## Pass rates", "", f"| suite | answers | {base['name']} | {cand['name']} | delta |",
              "|---|---:|---:|---:|---:|"]
    for s in summary.suites:
        lines.append(f"| {s.suite} | {s.base.answers} | {pct(s.base.pass_rate)} | "
                     f"{pct(s.candidate.pass_rate)} | {delta_pts(s.delta)} |")
    lines += ["", "## Checks", "", f"| suite | check | {base['name']} | {cand['name']} |", "|---|---|---:|---:|"]
    for s in summary.suites:
        for check in sorted(set(s.base.checks) | set(s.candidate.checks)):
            lines.append(f"| {s.suite} | {check} | {pct(s.base.checks.get(check))} | "
                         f"{pct(s.candidate.checks.get(check))} |")
    if summary.examples:
        lines += ["", "## Answers that changed outcome", "",
                  f"| suite | item | {base['name']} | {cand['name']} |", "|---|---|---|---|"]
        for e in summary.examples:
            mark = {True: "pass", False: "fail"}
            lines.append(f"| {e.suite} | {e.item_id} | {mark[e.base_passed]}: {_cell(e.base)} | "
                         f"{mark[e.candidate_passed]}: {_cell(e.candidate)} |")
    return "\n".join(lines) + "\n"


def training_lines(name: str, result: dict[str, Any]) -> list[str]:
    """The smoke verdict of one SFT run, as markdown."""
    smoke, data = result["smoke"], result["data"]
    state = "passed" if smoke["passed"] else "FAILED"
    lines = [f"## Smoke-test SFT of {name}: {state}", "",
             f"{result['steps']} steps in {result['seconds']} s ({result['tokens_per_second']} tokens/s), "
             f"peak memory {result['peak_memory_mib']} MiB, final eval loss {result['eval_loss']}.", "",
             "| check | result | measured |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'pass' if c['passed'] else 'FAIL'} | {_cell(c['detail'])} |" for c in smoke["checks"]]
    removed = removed_summary(data["curation"])
    lines += ["", f"Data: {data['rows']} rows, {data['bad_rows']} unparsable, curation removed {removed}; "
              f"{data['train']} train / {data['validation']} validation; "
              f"{data['flagged_refusals']} flagged refusals.", ""]
    return lines
