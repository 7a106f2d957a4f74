"""Release gates: a policy over the run's statistics decides pass, fail or
inconclusive. Pure: stats.json and the training results in, a Decision out.

Inconclusive is a first-class outcome and never green: a sample too small to
resolve the threshold (its minimum detectable effect is larger than the
effect the gate asks about) cannot pass a gate by luck nor fail it by noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.config.schema import GateConfig, PolicyFile
from harness.config.yamlio import read_yaml, validate
from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE_OR_INFRA, EXIT_PASS
from harness.records.run_results import GateOutcome as Outcome
from harness.records.run_results import GateResult, JudgeSummary, PairedDelta, PairedRates, RunStats, TrainingResult

DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
EXIT_CODES = {"pass": EXIT_PASS, "ungated": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE_OR_INFRA}


@dataclass(frozen=True)
class Observation:
    """One value a gate tests: a suite's delta, a task's delta, the judge's win rate, ..."""

    subject: str | None
    value: float | bool | None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    mde: float | None = None
    """Smallest effect this sample detects at 80% power (in the metric's units, from its null)."""
    lower_one_sided: float | None = None
    """95% one-sided lower bound of a difference (non-inferiority)."""
    n: int | None = None
    detail: str | None = None
    """Why a yes/no metric is what it is (the smoke test's failed checks)."""


@dataclass(frozen=True)
class Decision:
    outcome: Literal["pass", "fail", "inconclusive", "ungated"]
    exit_code: int
    reason: str
    gates: list[GateResult]
    policy: str = "none"
    """Where the gates came from: a policy file, the plan, or the shipped default."""


def load_policy(path: Path) -> list[GateConfig]:
    return validate(PolicyFile, read_yaml(path), str(path)).gates


def default_policy() -> list[GateConfig]:
    return load_policy(DEFAULT_POLICY)


# ---------------------------------------------------------------------------- observations
def _pair(value: tuple[float | None, float | None] | None) -> tuple[float, float] | None:
    if value is None or value[0] is None or value[1] is None:
        return None
    return float(value[0]), float(value[1])


def _paired(subject: str, entry: PairedRates) -> Observation:
    p = entry.p_holm if entry.p_holm is not None else entry.p_value
    return Observation(subject, entry.delta, _pair(entry.delta_ci), p, entry.mde, entry.delta_lower_one_sided,
                       entry.n)


def _delta(subject: str, entry: PairedDelta) -> Observation:
    p = entry.p_holm if entry.p_holm is not None else entry.p_value
    return Observation(subject, entry.delta, _pair(entry.delta_ci), p, entry.mde, entry.delta_lower_one_sided,
                       entry.n)


def sampled_observations(metric: str, run_stats: RunStats) -> list[Observation]:
    """suite.pass_at_k_delta (subject suite@kK) and suite.majority_vote_delta (subject suite)."""
    sampled = run_stats.sampled or {}
    if metric == "suite.pass_at_k_delta":
        return [_delta(f"{name}@k{k}", d) for name, s in sampled.items() for k, d in s.pass_at_k.items()]
    return [_delta(name, s.majority_vote) for name, s in sampled.items() if s.majority_vote is not None]


JUDGE_FIELDS = ("parse_failure_rate", "failure_rate", "swap_consistency", "decisive_consistency")
"""judge.* metrics read as they are from the judge summary."""


def observations(metric: str, run_stats: RunStats, training: dict[str, TrainingResult]) -> list[Observation]:
    """Every value the run holds for a metric; empty when the stage that makes it did not run."""
    tasks = run_stats.forgetting.tasks if run_stats.forgetting else {}
    judge = run_stats.judge
    if metric == "suite.pass_rate_delta":
        return [_paired(name, e) for name, e in run_stats.suites.items()]
    if metric == "suite.candidate_pass_rate":
        return [Observation(name, e.candidate_rate, _pair(e.candidate_ci), n=e.n)
                for name, e in run_stats.suites.items()]
    if metric == "forgetting.delta":
        return [_paired(name, e) for name, e in tasks.items()]
    if metric in ("suite.pass_at_k_delta", "suite.majority_vote_delta"):
        return sampled_observations(metric, run_stats)
    if metric == "train.smoke_passed":
        return [Observation(role, t.smoke.passed, detail="; ".join(t.smoke.reasons)) for role, t in training.items()]
    if judge is None:
        return []
    if metric == "judge.win_rate":
        mde = judge.min_detectable_win_rate
        return [Observation(None, judge.win_rate, _pair(judge.win_rate_ci), judge.sign_test_p,
                            None if mde is None else mde - 0.5, n=judge.judged, detail=bias_note(judge))]
    if metric == "judge.canary_wins":  # no canary judged: nothing was measured, not zero wins
        return [Observation(None, judge.canaries.wins if judge.canaries.total else None)]
    if metric == "judge.gold_agreement":  # no gold set: nothing was measured
        gold = judge.gold
        if gold is None:
            return [Observation(None, None)]
        kappa = "n/a" if gold.kappa is None else f"{gold.kappa:.3f}"
        return [Observation(None, gold.agreement, n=gold.items,
                            detail=f"{gold.agreed} of {gold.items} gold pairs agreed with the labels, kappa {kappa}")]
    field = metric.split(".", 1)[1]
    if field not in JUDGE_FIELDS:
        raise ValueError(f"no observation for metric {metric!r}")
    value: float | None = getattr(judge, field)
    return [Observation(None, value)]


def bias_note(judge: JudgeSummary) -> str | None:
    """Why a win rate may say little: the judge flipped with the order, or leaned to one position."""
    notes = []
    if judge.judged and judge.inconsistent / judge.judged > 0.5:
        notes.append(f"{judge.inconsistent} of {judge.judged} judged pairs were inconsistent: the judge flipped with "
                     "the order of the answers, and those pairs count as ties")
    bias = judge.position_bias
    if bias.p_value is not None and bias.p_value < 0.05:
        side, n = ("first", bias.first) if bias.first > bias.second else ("second", bias.second)
        notes.append(f"position bias: it picked the {side} answer in {n} of the {bias.first + bias.second} "
                     f"inconsistent pairs both orders decided (binomial p = {bias.p_value:.2g})")
    return "; ".join(notes) or None


# ---------------------------------------------------------------------------- tests
def _pts(value: float) -> str:
    return f"{value:.3f}"


def _superiority(gate: GateConfig, o: Observation) -> tuple[Outcome, str]:
    value, ci, threshold = float(o.value), o.ci, float(gate.threshold or 0.0)  # type: ignore[arg-type]
    if ci is None:
        return "inconclusive", f"{_pts(value)} has no confidence interval (too few items)"
    significant = o.p_value is None or o.p_value < gate.alpha
    span = f"95% CI [{_pts(ci[0])}, {_pts(ci[1])}]"
    if ci[0] > threshold and significant:
        return "pass", f"{span} lies above {threshold:g}"
    if ci[1] < threshold:
        return "fail", f"{span} lies below {threshold:g}"
    if ci[0] > threshold:  # the interval favours the candidate; the (Holm-adjusted) test does not yet
        return "inconclusive", (f"{span} lies above {threshold:g} but p = {o.p_value:.3g} is not below "
                                f"{gate.alpha} (Holm-adjusted across the run's suites and tasks)")
    why = f"{span} includes {threshold:g}"
    if o.mde is None or o.mde > gate.min_effect:
        can = ("cannot detect an effect of that size" if o.mde is None
               else f"detect only effects of {_pts(o.mde)} or more")
        return "inconclusive", (f"not shown: {why}; {o.n} items {can} (min_effect {gate.min_effect})")
    return "fail", f"not shown although {o.n} items could detect it: {why}"


def _non_inferiority(gate: GateConfig, o: Observation) -> tuple[Outcome, str]:
    value, bound, margin = float(o.value), o.lower_one_sided, gate.margin  # type: ignore[arg-type]
    if bound is not None and bound > -margin - 1e-12:
        return "pass", f"delta {value:+.3f}; its one-sided 95% lower bound {bound:+.3f} stays above -{margin}"
    if value < -margin - 1e-12:
        return "fail", f"dropped {-value:.3f}, more than the margin {margin}"
    low = "none" if bound is None else f"{bound:+.3f}"
    if o.mde is None or o.mde > margin:
        can = ("cannot resolve a difference that small" if o.mde is None
               else f"resolve only differences of {_pts(o.mde)} or more")
        return "inconclusive", f"delta {value:+.3f}, lower bound {low}: {o.n} items {can} (margin {margin})"
    return "fail", f"delta {value:+.3f}: a drop beyond {margin} is not ruled out (lower bound {low})"


def _bound(gate: GateConfig, o: Observation) -> tuple[Outcome, str]:
    value, threshold = float(o.value), float(gate.threshold or 0.0)  # type: ignore[arg-type]
    ok = value <= threshold if gate.test == "at_most" else value >= threshold
    word = "at most" if gate.test == "at_most" else "at least"
    return ("pass" if ok else "fail"), f"{value:g} {'is' if ok else 'is not'} {word} {threshold:g}"


def judge_gate(gate: GateConfig, o: Observation) -> tuple[Outcome, str]:
    if o.value is None:
        return "inconclusive", "no value (nothing was measured)"
    if gate.test == "is_true":
        return ("pass", "passed") if o.value else ("fail", f"failed: {o.detail}" if o.detail else "failed")
    if gate.test == "superiority":
        return _superiority(gate, o)
    if gate.test == "non_inferiority":
        return _non_inferiority(gate, o)
    return _bound(gate, o)


MISSING = {"suite.pass_at_k_delta": "the run has no pass@k (plan.pass_at_k with sampling.n > 1)",
           "suite.majority_vote_delta": "the run has no majority vote (plan.majority_vote with sampling.n > 1)",
           "suite": "the run has no suites", "forgetting": "the run has no forgetting stage",
           "judge": "the run has no judge stage", "train": "no checkpoint of the run was trained"}
HINT = " (a gate with required: false skips it; or leave the gate out of the plan's gates:)"


def evaluate_gate(gate: GateConfig, run_stats: RunStats, training: dict[str, TrainingResult]) -> list[GateResult]:
    found = observations(gate.metric, run_stats, training)
    threshold = gate.margin if gate.test == "non_inferiority" else (None if gate.test == "is_true" else gate.threshold)

    def result(o: Observation, outcome: Outcome, reason: str) -> GateResult:
        label = gate.name if o.subject is None else f"{gate.name}[{o.subject}]"
        if o.detail and gate.test != "is_true" and outcome != "pass":  # what the value cannot say by itself
            reason = f"{reason}; {o.detail}"
        return GateResult(name=gate.name, metric=gate.metric, test=gate.test, subject=o.subject, outcome=outcome,
                          value=o.value, threshold=threshold, ci=o.ci, p_value=o.p_value, mde=o.mde, reason=reason,
                          label=label)

    sequential = _sequential(gate, run_stats.judge)
    if sequential is not None:
        value = run_stats.judge.win_rate if run_stats.judge else None
        o = Observation(None, value, sequential[2], n=run_stats.judge.judged if run_stats.judge else None)
        return [result(o, *_unless_judge_failed(gate, run_stats, sequential[0], sequential[1]))]
    if gate.subjects is not None:
        named = {o.subject: o for o in found}
        have = ", ".join(str(s) for s in named) or "none"
        # A typo must not read as "nothing was measured": name it and what the run does have.
        return [result(named[s], *judge_gate(gate, named[s])) if s in named else
                result(Observation(s, None), "inconclusive", f"the run has no {s!r} for {gate.metric} (it has: {have})")
                for s in gate.subjects]
    if not found:
        missing = Observation(None, None)
        reason = MISSING.get(gate.metric) or MISSING[gate.metric.split(".")[0]]
        return [result(missing, "inconclusive", reason + HINT) if gate.required else result(missing, "skipped", reason)]
    return [result(o, *_unless_judge_failed(gate, run_stats, *judge_gate(gate, o))) for o in found]


def _sequential(gate: GateConfig, judge: JudgeSummary | None
                ) -> tuple[Outcome, str, tuple[float, float] | None] | None:
    """A win-rate gate when judging stopped early (judge.stop_early): its confidence sequence decides, the
    only test that stays valid after stopping on the data. None when every item was judged (the full-run
    test decides, as without stop_early)."""
    if gate.metric != "judge.win_rate" or judge is None or judge.sequential is None:
        return None
    seq = judge.sequential
    if not seq.stopped_early:
        return None
    where = f"judging stopped after {seq.judged_items} of {seq.items} items"
    entry = next((g for g in seq.gates if (g.gate, g.test, g.threshold) == (gate.name, gate.test, gate.threshold)),
                 None)
    if entry is None or entry.outcome is None:
        settled = ", ".join(g.gate for g in seq.gates) or "none"
        why = (f"{where}, when the win-rate gates of the run's policy were settled ({settled}); this gate was not "
               "one of them, and a fixed-sample test on the items judged is not valid after stopping on them: rerun "
               "with this gate in the policy, or without stop_early")
        return "inconclusive", why, None
    span = (f"{1 - seq.alpha:.0%} confidence sequence [{_pts(entry.lower)}, {_pts(entry.upper)}] lies "
            f"{entry.outcome} {entry.threshold:g}")
    passed = (entry.outcome == "above") != (gate.test == "at_most")
    return ("pass" if passed else "fail"), f"{span} ({where})", (entry.lower, entry.upper)


UNREACHED = ("judge.win_rate", "judge.failure_rate")
"""Metrics that judge calls which failed (no reply at all) leave undecided: a failure says nothing
about the candidate. Unparsed replies and canary wins are the judge's own answers and still fail."""


def _unless_judge_failed(gate: GateConfig, run_stats: RunStats, outcome: Outcome, reason: str) -> tuple[Outcome, str]:
    judge = run_stats.judge
    if outcome != "fail" or gate.metric not in UNREACHED or judge is None or not judge.failed:
        return outcome, reason
    return "inconclusive", (f"{reason}, but {judge.failed} of {judge.n} judge pairs failed (no reply after "
                            "retries): the judge could not evaluate them, which says nothing about the candidate")


def decide(gates: Sequence[GateConfig], run_stats: RunStats, training: dict[str, TrainingResult]) -> Decision:
    if not gates:
        return Decision("ungated", EXIT_CODES["ungated"], "no release gates are configured", [])
    results = [r for gate in gates for r in evaluate_gate(gate, run_stats, training)]
    failed = [r.label for r in results if r.outcome == "fail"]
    unsure = [r.label for r in results if r.outcome == "inconclusive"]
    if failed:
        return Decision("fail", EXIT_CODES["fail"], f"failed: {', '.join(failed)}", results)
    if unsure:
        return Decision("inconclusive", EXIT_CODES["inconclusive"], f"inconclusive: {', '.join(unsure)}", results)
    passed = sum(r.outcome == "pass" for r in results)
    return Decision("pass", EXIT_CODES["pass"], f"all {passed} gate checks passed", results)
