"""Typed configuration: the models of checkpoint files and of the evaluation plan.

Unknown keys are errors (a typo must not silently become a default). Reading
the files, with their relative paths, is harness/config/loading.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from harness.config.engine import EndpointConfig, EngineConfig, SamplingConfig, Strict
from harness.config.training import TrainConfig
from harness.resources import shipped_dir

DEFAULT_SUITES_DIR = shipped_dir("suites") / "demo"
DEFAULT_FORGETTING_DIR = shipped_dir("suites") / "forgetting"
DEMO_SCHEME = "demo:"
DEMO_MODELS = ("base", "candidate", "judge")


class ForgettingConfig(Strict):
    """lm-evaluation-harness tasks run on both checkpoints to measure forgetting."""

    tasks: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: [str(DEFAULT_FORGETTING_DIR)])
    """lm-eval task names (mmlu, hellaswag, ...; need the hub) and/or directories or files of task YAMLs."""
    limit: Annotated[int, Field(ge=1)] | None = None
    """Items per task (the first N); all when left out."""
    num_fewshot: Annotated[int, Field(ge=0, le=50)] | None = None
    """Few-shot examples per item; each task's own default when left out."""
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    engine: Literal["auto", "hf", "vllm", "local-completions"] = "auto"
    """auto: local-completions for a checkpoint behind an endpoint, vllm where the GPU package and a GPU
    are present, else hf (transformers)."""
    request_cache: bool = False
    """Also keep lm-eval's per-request cache (one file per checkpoint fingerprint), so a run killed inside a
    task resumes mid-task. Finished tasks are always cached; this costs a SQLite write per request."""
    warn_drop: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Flag a task whose accuracy drops by more than this (2 points)."""
    fail_drop: Annotated[float, Field(ge=0, le=1)] = 0.05
    """Flag a task as failing when its accuracy drops by more than this (5 points)."""

    @model_validator(mode="after")
    def _thresholds(self) -> ForgettingConfig:
        if self.fail_drop < self.warn_drop:
            raise ValueError("fail_drop must be at least warn_drop")
        return self


class StopEarly(Strict):
    """Stop judging once the judge win-rate gates are settled (harness/stages/judge/stopping.py)."""

    min_items: Annotated[int, Field(ge=1)] = 20
    """No decision before this many items are judged: the judge's own gates (parse failures,
    consistency) need a few judged pairs to mean something."""
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    """Error of the confidence sequence, half to each side (a 95% two-sided sequence by default)."""


class JudgeConfig(Strict):
    """The pairwise judge. The default needs no model: the offline rules judge."""

    kind: Literal["reference", "rules", "llm"] = "rules"
    """reference: prefer the answer that matches the item's reference (rules decide items without one);
    rules: prefer the answer that passes more of the item's checks; llm: a model judges with `definition`."""
    definition: str = "pairwise"
    """kind llm: a judge in judges/ by name (pairwise, pairwise-reference, single-grade) or a judge YAML file."""
    endpoint: EndpointConfig | None = None
    """kind llm: an OpenAI-compatible server (chat API); endpoint.model names the judge model."""
    checkpoint: str | None = None
    """kind llm, instead of endpoint: a checkpoint file the stage serves itself with vLLM's server on 127.0.0.1."""
    canaries: Annotated[int, Field(ge=0, le=10_000)] = 8
    """Items whose base answer is judged against each canary (empty, injected instruction, the question
    repeated, padded) in the candidate's seat; 0 turns canaries off."""
    chunk_size: Annotated[int, Field(ge=1)] = 32
    """Judged pairs written to the run's records at a time (or every 0.5 s). The cache takes each judge
    call as it finishes, so an interrupted stage loses at most the calls in flight (endpoint.max_concurrency)."""
    startup_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    """kind llm with checkpoint: how long to wait for the server to answer."""
    stop_early: StopEarly | None = None
    """kind llm: judge items in a random order and stop once every judge.win_rate gate's outcome is settled
    by an anytime-valid confidence sequence; `true` for the defaults. Off (null) judges every pair."""
    gold: str | None = None
    """kind llm: a human-labelled gold set (JSONL: question, answer_a, answer_b, label A | B | tie, optional
    reference and id) the judge is scored on before it judges the run: agreement and Cohen's kappa with the
    labels in stats.json, and the judge.gold_agreement gate."""

    @field_validator("stop_early", mode="before")
    @classmethod
    def _stop_early_flag(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="after")
    def _kind_fields(self) -> JudgeConfig:
        if self.kind != "llm":
            given = [f for f in ("definition", "endpoint", "checkpoint", "stop_early", "gold")
                     if f in self.model_fields_set and (f != "stop_early" or self.stop_early is not None)]
            if given:
                raise ValueError(f"'{given[0]}' is only used with kind 'llm' (kind is {self.kind!r})")
            return self
        if (self.endpoint is None) == (self.checkpoint is None):
            raise ValueError("kind 'llm' needs exactly one of 'endpoint' or 'checkpoint'")
        if self.endpoint is not None:
            if self.endpoint.model is None:
                raise ValueError("endpoint.model must name the judge model")
            if self.endpoint.api != "chat":
                raise ValueError("a judge talks to its endpoint through the chat API; set endpoint.api to 'chat'")
        return self


GATE_METRICS: dict[str, str] = {
    "suite.pass_rate_delta": "per suite: candidate minus base pass rate (paired; McNemar p, bootstrap CI)",
    "suite.candidate_pass_rate": "per suite: the candidate's pass rate (Wilson CI)",
    "suite.pass_at_k_delta": "per suite and k of plan.pass_at_k (subject suite@kK): candidate minus base pass@k "
                             "(unbiased estimator over the samples per item; cluster bootstrap CI, sign-flip p)",
    "suite.majority_vote_delta": "per suite, with plan.majority_vote: candidate minus base majority-vote accuracy "
                                 "(cluster bootstrap CI, sign-flip p)",
    "forgetting.delta": "per lm-eval task: candidate minus base accuracy (paired; McNemar p, bootstrap CI)",
    "judge.win_rate": "the candidate's pairwise win rate, ties counted half (CI from the judge summary)",
    "judge.parse_failure_rate": "share of judged items whose verdict could not be parsed",
    "judge.failure_rate": "share of judged items whose judge call failed",
    "judge.swap_consistency": "share of parsed items where both answer orders agree",
    "judge.gold_agreement": "with judge.gold: share of the gold set's pairs where the judge's verdict (both orders "
                            "combined) equals the human label",
    "judge.decisive_consistency": "share of the items some order decided where both orders agree (ties alone "
                                  "decide nothing, so an always-tie judge has no value)",
    "judge.canary_wins": "number of canary answers (empty, injected, padded, ...) that beat the base",
    "train.smoke_passed": "per trained checkpoint: the smoke-test SFT verdict",
}
"""Metrics a gate may name; harness.verdict.gate reads each from stats.json and the training results."""
PAIRED_DIFFERENCES = ("suite.pass_rate_delta", "suite.pass_at_k_delta", "suite.majority_vote_delta",
                      "forgetting.delta")
"""Metrics that are a paired candidate - base difference (what non_inferiority tests)."""
WITH_INTERVAL = ("suite.pass_rate_delta", "suite.candidate_pass_rate", "suite.pass_at_k_delta",
                 "suite.majority_vote_delta", "forgetting.delta", "judge.win_rate")


class GateConfig(Strict):
    """One release gate: a named metric, a test and its threshold."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[\w.-]+$")]
    metric: str
    """suite.pass_rate_delta, suite.candidate_pass_rate, suite.pass_at_k_delta, suite.majority_vote_delta,
    forgetting.delta, judge.win_rate,
    judge.parse_failure_rate, judge.failure_rate, judge.swap_consistency, judge.decisive_consistency,
    judge.canary_wins, judge.gold_agreement or
    train.smoke_passed (the README's metric table says what each is)."""
    test: Literal["superiority", "non_inferiority", "at_most", "at_least", "is_true"]
    """superiority: the CI's lower bound must clear `threshold` (and p < alpha where the metric has a p-value);
    non_inferiority: the one-sided lower bound of a difference must stay above -`margin`;
    at_most / at_least: the value against `threshold`; is_true: a yes/no metric must be yes."""
    threshold: float | None = None
    """superiority, at_most, at_least (required there): the bound (0.5 for a win rate, 0 for a difference)."""
    margin: Annotated[float, Field(ge=0, le=1)] = 0.0
    """non_inferiority: the largest drop that still counts as no worse (0.02 = 2 points)."""
    min_effect: Annotated[float, Field(gt=0, le=1)] = 0.1
    """superiority: the smallest improvement worth detecting; when the sample cannot detect it (its minimum
    detectable effect is larger) an unproven improvement is inconclusive rather than a failure."""
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    subjects: Annotated[list[str], Field(min_length=1)] | None = None
    """Suites, tasks or roles the gate covers; all of them when left out."""
    required: bool = True
    """When the run has no value for the metric (the stage was skipped): inconclusive if required, else skipped."""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in GATE_METRICS:
            raise ValueError(f"unknown metric {value!r}; expected one of {', '.join(GATE_METRICS)}")
        return value

    @model_validator(mode="after")
    def _test_fits(self) -> GateConfig:
        given = self.model_fields_set
        if self.test == "non_inferiority" and self.metric not in PAIRED_DIFFERENCES:
            raise ValueError(f"non_inferiority applies to a paired difference ({', '.join(PAIRED_DIFFERENCES)})")
        if self.test == "superiority" and self.metric not in WITH_INTERVAL:
            raise ValueError(f"superiority needs a metric with a confidence interval ({', '.join(WITH_INTERVAL)}); "
                             "use at_most or at_least")
        if (self.test == "is_true") != (self.metric == "train.smoke_passed"):
            raise ValueError("train.smoke_passed takes test is_true, and is_true only train.smoke_passed")
        needs_threshold = self.test in ("superiority", "at_most", "at_least")
        if needs_threshold and self.threshold is None:
            raise ValueError(f"test {self.test} needs a threshold (e.g. 0.5 for a win rate, 0 for a difference)")
        unused = {"threshold": not needs_threshold, "margin": self.test != "non_inferiority",
                  "min_effect": self.test != "superiority", "alpha": self.test != "superiority"}
        wrong = [f for f, is_unused in unused.items() if is_unused and f in given]
        if wrong:
            raise ValueError(f"'{wrong[0]}' is not used by test {self.test}")
        if self.subjects is not None and self.metric.startswith("judge."):
            raise ValueError("judge metrics have no subjects (one value per run)")
        return self


class PolicyFile(Strict):
    """A policy given in its own file (`--policy FILE`)."""

    gates: list[GateConfig]


class PlanConfig(Strict):
    """What to run on both checkpoints. Later stages add their own blocks."""

    suites: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: [str(DEFAULT_SUITES_DIR)])
    """Suite files (.yaml, .yml, .jsonl) or directories of them."""
    seed: int = 0
    """Seed for everything in the plan that draws random numbers."""
    forgetting: ForgettingConfig | None = Field(default_factory=ForgettingConfig)
    """Forgetting tasks; `forgetting: null` skips the stage."""
    judge: JudgeConfig | None = Field(default_factory=JudgeConfig)
    """Pairwise judge; `judge: null` skips the stage."""
    gates: list[GateConfig] | None = None
    """Release gates; the shipped default policy (harness/verdict/default_policy.yaml) when left out, [] for none."""
    pass_at_k: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=list)
    """With several samples per item (sampling.n): the k of pass@k to report per suite (unbiased estimator;
    each k at most both checkpoints' sampling.n)."""
    pairs: Literal["base", "all"] = "base"
    """With three or more checkpoints (`harness compare base.yaml a.yaml b.yaml`): which pairs are compared.
    base: each candidate against the base (the first file); all: every pair, so that each pair of candidates
    is judged directly too (for the ranking; only comparisons with the base are gated)."""
    majority_vote: bool = False
    """With several samples per item: report majority-vote accuracy per suite (an item is right when more than
    half of its samples pass its reference checks; a tie is wrong). Every item needs a reference and a check that
    compares to it (equals_reference, number_matches_reference)."""

    @field_validator("pass_at_k")
    @classmethod
    def _unique_k(cls, value: list[int]) -> list[int]:
        repeated = sorted({k for k in value if value.count(k) > 1})
        if repeated:
            raise ValueError(f"k = {repeated[0]} is given more than once")
        return value

    @model_serializer(mode="wrap")
    def _without_unused_sampling(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave pass_at_k, majority_vote and pairs out while unused, so that a plan without them dumps (and
        hashes into the run's inputs) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        if not self.pass_at_k:
            data.pop("pass_at_k", None)
        if not self.majority_vote:
            data.pop("majority_vote", None)
        if self.pairs == "base":
            data.pop("pairs", None)
        return data


class CheckpointConfig(Strict):
    """One checkpoint: which weights, which engine, how to sample."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[\w.@+-]+$")]
    """Short label used in the run (letters, digits, . _ - + @)."""
    model: Annotated[str, Field(min_length=1)] | None = None
    """Local directory, hub id, `demo:base` / `demo:candidate` / `demo:judge`, or (backend openai) the served name.
    Left out when `train:` produces the checkpoint."""
    revision: str | None = None
    """Hub revision, or a label that changes the fingerprint of a remote model."""
    adapter: str | None = None
    """Directory of a LoRA adapter (peft) applied on top of `model`."""
    tokenizer: str | None = None
    """Tokenizer directory or hub id when it differs from the model's."""
    chat_template: str | None = None
    """Path to a Jinja chat template that replaces the tokenizer's own."""
    backend: Literal["auto", "vllm", "transformers", "openai"] = "auto"
    engine: EngineConfig = Field(default_factory=EngineConfig)
    endpoint: EndpointConfig | None = None
    """Required when backend is openai."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    plan: PlanConfig | None = None
    """The evaluation plan, when not given in a separate file."""
    train: TrainConfig | None = None
    """Produce this checkpoint by a smoke-test SFT run before evaluating it."""

    @model_validator(mode="after")
    def _backend_fields(self) -> CheckpointConfig:
        if self.train is not None:
            if self.model is not None or self.adapter is not None:
                raise ValueError("'train' produces the model; leave out 'model' and 'adapter'")
            if self.backend == "openai":
                raise ValueError("a trained checkpoint is served locally; backend 'openai' cannot train")
        elif self.model is None:
            raise ValueError("give 'model' (or a 'train' block that produces it)")
        if self.backend == "openai":
            if self.endpoint is None:
                raise ValueError("backend 'openai' needs an 'endpoint' block with base_url")
            if self.endpoint.api == "completions" and self.tokenizer is None and not self.is_local:
                raise ValueError("endpoint.api 'completions' renders prompts here and needs 'tokenizer'")
            if self.adapter is not None:
                raise ValueError("an endpoint serves its own weights; 'adapter' needs backend vllm or transformers")
            if self.chat_template is not None and self.endpoint.api == "chat":
                raise ValueError("with endpoint.api 'chat' the server applies its template; use api 'completions' "
                                 "to render with 'chat_template' here")
        elif self.endpoint is not None:
            raise ValueError(f"'endpoint' is only used with backend 'openai' (backend is {self.backend!r})")
        if self.backend == "vllm" and self.engine.data_parallel_size > 1:
            raise ValueError("engine.data_parallel_size > 1 needs vLLM's server (harness serve) or Ray; "
                             "the offline engine runs one replica")
        return self

    @property
    def is_demo(self) -> bool:
        return (self.model or "").startswith(DEMO_SCHEME)

    @property
    def is_local(self) -> bool:
        return self.model is not None and Path(self.model).is_absolute()
