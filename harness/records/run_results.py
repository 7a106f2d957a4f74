"""What a run decided and measured, as typed files: stats.json (RunStats), verdict.json
(Verdict) and a smoke-test SFT run's result (TrainingResult, train.json).

The verdict package computes them, the render and report packages read them through attributes.
A value that cannot be computed (no items, a diverging fit) is None, which JSON writes as null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 2
"""Of every run file (manifest, stats, verdict). 2: the run keeps a copy of its suites."""

Flag = Literal["ok", "warn", "fail"]
GateOutcome = Literal["pass", "fail", "inconclusive", "skipped"]
Interval = tuple[float | None, float | None]


class RunFile(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- stats.json
class PairedRates(RunFile):
    """Both sides' rates on the same items, and their paired difference (suites and forgetting tasks)."""

    n: int
    base_rate: float | None
    candidate_rate: float | None
    base_ci: Interval
    candidate_ci: Interval
    base_stderr: float | None
    candidate_stderr: float | None
    delta: float | None
    """candidate_rate - base_rate."""
    delta_ci: Interval
    """Two-sided 95%, paired bootstrap."""
    delta_lower_one_sided: float | None
    """One-sided 95% bounds (Newcombe's paired score interval): what non-inferiority gates read."""
    delta_upper_one_sided: float | None
    p_value: float
    mid_p_value: float
    test: Literal["mcnemar_exact", "cluster_permutation"]
    """mcnemar_exact with one sample per item; cluster_permutation (item-level sign-flip permutation
    test, cluster bootstrap intervals; harness/verdict/clustered.py) with several."""
    base_only: int
    """Items only the base got right (several samples: items where the base's pass rate is higher)."""
    candidate_only: int
    mde: float | None
    """Smallest difference detectable at 80% power with this many items."""
    cohens_h: float | None
    p_holm: float | None = None
    """Holm-adjusted across every suite and forgetting task of the run."""
    samples_per_item: float | None = None
    """Mean paired samples per item when items were sampled several times (n then counts items);
    None with one sample per item."""


class ForgettingTask(PairedRates):
    flag: Flag
    """ok, warn or fail at the plan's thresholds, on the point estimate."""


class ForgettingStats(RunFile):
    lm_eval_version: str | None = None
    warn_drop: float
    fail_drop: float
    tasks: dict[str, ForgettingTask]


class DecisiveRate(RunFile):
    estimate: float | None
    low: float | None
    high: float | None
    method: str


class LengthControl(RunFile):
    n: int
    raw_win_rate: float | None
    win_rate: float | None
    intercept: float | None
    length_coef: float | None
    length_sd: float | None
    separable: bool
    fallback: str | None


class CanaryWin(RunFile):
    kind: str
    suite: str
    item_id: str


class KindCount(RunFile):
    total: int
    wins: int


class CanarySummary(RunFile):
    total: int = 0
    wins: int = 0
    won: list[str] = []
    won_items: list[CanaryWin] = []
    unparsed: int = 0
    failed: int = 0
    by_kind: dict[str, KindCount] = {}


class JudgeCounts(RunFile):
    n: int
    wins: int
    losses: int
    ties: int
    unparsed: int
    failed: int


class SuiteJudgeCounts(JudgeCounts):
    win_rate: float | None


class PositionBias(RunFile):
    """Inconsistent pairs that both orders decided, by the position that won both times."""

    first: int = 0
    second: int = 0
    p_value: float | None = None
    """Exact two-sided binomial test of first against second (None with no such pair)."""


class SequentialGate(RunFile):
    """One judge.win_rate gate's confidence sequence when judging stopped (or ran out of pairs)."""

    gate: str
    test: Literal["superiority", "at_least", "at_most"]
    threshold: float
    population: int | None
    """N items: a sequence for these items' own win rate (at_least, at_most); None: for the population
    they are drawn from (superiority)."""
    outcome: Literal["above", "below"] | None
    """The whole sequence lies above or below the threshold; None: not settled by the last item."""
    lower: float
    upper: float
    n: int
    """Items its decision rests on (where it settled, else all judged)."""


class SequentialSummary(RunFile):
    """judge.stop_early: items judged in a seeded random order until every win-rate gate was settled."""

    items: int
    """Real items (suite item, judged over its samples) the full run would judge."""
    judged_items: int
    """Items judged before stopping, in the order; the win rate and its statistics cover these."""
    stopped_early: bool
    """Some items were left unjudged: the gates listed decide from their sequences."""
    calls: int
    """Judge conversations the items judged needed (cached or asked)."""
    calls_saved: int
    """Judge conversations the full run would also have needed: not asked, nor taken from the cache."""
    alpha: float
    min_items: int
    gates: list[SequentialGate]


class GoldLengthBias(RunFile):
    """Over the gold pairs whose answers differ in length: how often the longer answer is picked."""

    pairs: int
    judge_longer: float
    """Share the judge's combined verdict gives to the longer answer."""
    label_longer: float
    """Share the labels give to the longer answer: what a judge without length bias would match."""
    judge_longer_in_ties: float | None
    """Of those pairs labelled a tie: share the judge gave to the longer answer (ideally 0)."""


class GoldAgreement(RunFile):
    """The judge scored on the plan's gold set (judge.gold) before it judged the run."""

    items: int
    agreed: int
    agreement: float | None
    """Share of gold pairs whose combined verdict equals the label (unparsed and failed count as disagreeing)."""
    kappa: float | None
    """Cohen's kappa between the verdicts (A, B, tie, none) and the labels."""
    swap_consistency: float | None
    """Of the gold pairs both orders parsed: both named the same answer."""
    unparsed: int
    failed: int
    confusion: dict[str, dict[str, int]]
    """By label: how many verdicts of each kind (A, B, tie, none)."""
    sha256: str
    """Of the gold set file."""
    position_bias: dict[str, int] | None = None
    """Inconsistent gold pairs whose two orders picked the same position: {"first": picked A both times,
    "second": picked B both times} (a judge that reads positions, not answers)."""
    length_bias: GoldLengthBias | None = None


class JudgeSummary(JudgeCounts):
    """A judge stage over real pairs (canaries apart); see harness/verdict/judge_stats.py."""

    judge: str | None
    kind: str | None
    model: str | None
    decided_by: dict[str, int]
    judged: int
    inconsistent: int
    win_rate: float | None
    win_rate_ci: Interval
    win_rate_ci_method: str
    min_detectable_win_rate: float | None
    decisive_win_rate: DecisiveRate
    sign_test_p: float | None
    sign_test_tie_split_p: float | None
    swap_consistency: float | None
    decisive_consistency: float | None = None
    """Among pairs some order decided (not a tie in both), the share both orders agree on."""
    decisive_pairs: int = 0
    position_bias: PositionBias = PositionBias()
    tie_rate: float | None
    parse_failure_rate: float | None
    failure_rate: float | None
    length_controlled_win_rate: float | None
    length_control: LengthControl
    base_words_mean: float | None
    candidate_words_mean: float | None
    canaries: CanarySummary
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached: int
    by_suite: dict[str, SuiteJudgeCounts]
    items: int | None = None
    """Items judged, when some item has several judged pairs (sampling.n > 1); None otherwise."""
    samples_per_item: float | None = None
    """Mean judged pairs per item in that case: win rates, CIs and tests are then per item."""
    significance_test: str = "exact sign test over decisive pairs"
    """What sign_test_p is: the exact sign test, or with several samples per item a permutation test."""
    sequential: SequentialSummary | None = None
    """judge.stop_early: where judging stopped, and why; None when every pair was judged by plan."""
    gold: GoldAgreement | None = None
    """judge.gold: the judge's agreement with the gold set's human labels; None without a gold set."""


class PairedDelta(RunFile):
    """A per-item figure of both sides (pass@k, majority vote) averaged over items, and its paired difference."""

    n: int
    """Items."""
    base: float | None
    candidate: float | None
    delta: float | None
    """candidate - base."""
    delta_ci: Interval
    """Two-sided 95%, cluster bootstrap over items."""
    delta_lower_one_sided: float | None
    """One-sided 95% lower bound (what non-inferiority gates read)."""
    p_value: float | None
    """Sign-flip permutation test on the per-item differences."""
    p_holm: float | None = None
    """Holm-adjusted together with the run's suites and forgetting tasks."""
    mde: float | None


class SampledSuite(RunFile):
    """One suite's figures over several samples per item (plan.pass_at_k, plan.majority_vote)."""

    samples_per_item: float | None
    """Mean paired samples per item."""
    pass_at_k: dict[str, PairedDelta] = {}
    """By k (as text: "1", "5")."""
    majority_vote: PairedDelta | None = None


class RunStats(RunFile):
    schema_version: int = SCHEMA_VERSION
    seed: int
    suites: dict[str, PairedRates]
    forgetting: ForgettingStats | None = None
    judge: JudgeSummary | None = None
    sampled: dict[str, SampledSuite] | None = None
    """pass@k and majority vote per suite when the plan asks for them and items were sampled several times."""
    holm_family: list[str] | None = None
    """In a run of three or more checkpoints: the comparisons (as "base vs candidate") whose p-values were
    Holm-adjusted together with this one's; None when this comparison's were adjusted alone."""


# ---------------------------------------------------------------------------- train.json
class SmokeCheckResult(RunFile):
    name: str
    passed: bool
    detail: str


class SmokeResult(RunFile):
    passed: bool
    checks: list[SmokeCheckResult]
    reasons: list[str]


class TrainData(RunFile):
    files: dict[str, str]
    """Each data file and the format it was read as."""
    rows: int
    bad_rows: int
    bad_examples: list[dict[str, Any]]
    curation: dict[str, int]
    """Rows each curation filter removed."""
    flagged_refusals: int
    kept: int
    train: int
    validation: int


class TrainingResult(RunFile):
    """One smoke-test SFT or DPO run: its verdict, data counts and timings."""

    method: Literal["sft", "dpo"] = "sft"

    smoke: SmokeResult
    data: TrainData
    preflight: dict[str, Any]
    steps: int
    eval_loss: float | None
    train_sample_loss: float | None
    seconds: float
    tokens_per_second: float | None
    peak_memory_mib: float | None
    device: str
    lora: bool
    train_hash: str | None = None
    output_dir: str | None = None
    """Where the trained weights are (set when a run records the result)."""
    reused: bool | None = None
    """The weights were already trained from the same inputs."""


# ---------------------------------------------------------------------------- verdict.json
class GateResult(RunFile):
    name: str
    metric: str
    test: str
    subject: str | None
    outcome: GateOutcome
    value: bool | int | float | None
    threshold: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    mde: float | None
    reason: str
    label: str
    """name, or name[subject]."""


class RoleRates(RunFile):
    """One side of a suite, described: answers, truncations, length and each check's pass rate."""

    answers: int
    checked: int
    """Answers with at least one check."""
    passed: int
    """Checked answers that passed every check."""
    truncated: int
    """Answers cut by max_tokens (finish_reason length)."""
    mean_completion_tokens: float
    checks: dict[str, float]


class SuiteVerdict(RunFile):
    base_pass_rate: float | None
    candidate_pass_rate: float | None
    delta: float | None
    """The paired rates the gates decide on (items answered and checked on both sides)."""
    base: RoleRates
    candidate: RoleRates
    identical_answers: int


class SmokeOutcome(RunFile):
    smoke_passed: bool
    reasons: list[str]


class Verdict(RunFile):
    schema_version: int = SCHEMA_VERSION
    outcome: Literal["pass", "fail", "inconclusive", "ungated"]
    exit_code: int
    reason: str
    policy: str
    gates: list[GateResult]
    train: dict[str, SmokeOutcome]
    suites: dict[str, SuiteVerdict]
    warnings: list[str]
