"""Typed per-item records that stages write and read.

Stages talk only through these records (and the files that hold them), so
any stage can be re-run alone. Each record carries a schema version; bump it
when a field changes meaning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["base", "candidate"]
ROLES: tuple[Role, Role] = ("base", "candidate")

_FIELDS_SETS: dict[tuple[type, int], set[str]] = {}


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_post_init(self, context: Any, /) -> None:
        """Records of a class that were given the same fields share one set of those names. Pydantic
        gives every instance its own (728 bytes for a record's dozen fields, more than a check record's
        values), and a run of 100,000 items holds a million records. A record is frozen and never
        adds to its set (model_copy copies it before updating), so sharing changes nothing else.
        One set is kept per class and number of fields given (a stage gives the same fields to all its
        records); a record given other fields of that number keeps its own."""
        given = self.__pydantic_fields_set__
        key = (type(self), len(given))
        shared = _FIELDS_SETS.setdefault(key, given)
        if shared is not given and shared == given:
            object.__setattr__(self, "__pydantic_fields_set__", shared)


class GenerationRecord(Record):
    schema_version: Literal[1] = 1
    role: Role
    checkpoint: str
    """The checkpoint's name from its config."""
    suite: str
    item_id: str
    sample_index: int
    text: str
    finish_reason: str
    """stop (the model ended its turn) or length (max_tokens reached)."""
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    """Wall time of the engine call that produced this answer (batched calls share it)."""
    prompt_hash: str
    """sha256 of the rendered prompt (or of the messages, when the server renders)."""
    cache_key: str
    cached: bool
    """True when this run served the answer from the cache instead of the engine."""


class CheckRecord(Record):
    schema_version: Literal[1] = 1
    role: Role
    suite: str
    item_id: str
    sample_index: int
    check: str
    """The check's type, with its position when an item has several of one type."""
    passed: bool
    detail: str


class TrainStepRecord(Record):
    schema_version: Literal[1] = 1
    role: Role | None = None
    """Which checkpoint of a comparison this run produced (set when copied into a run dir)."""
    step: int
    loss: float
    grad_norm: float | None = None
    learning_rate: float
    epoch: float
    eval_loss: float | None = None
    reward_margin: float | None = None
    """DPO (TRL's rewards/margins): beta x (log ratio to the reference of chosen - of rejected), batch mean."""
    reward_accuracy: float | None = None
    """DPO: share of the batch whose chosen answer out-rewards its rejected one."""
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    """DPO: beta x (log pi - log pi_ref) of the chosen / rejected answers, summed over tokens, batch mean."""
    chosen_logp: float | None = None
    rejected_logp: float | None = None
    """DPO: log pi of the chosen / rejected answers, summed over tokens, batch mean."""


class ForgettingRecord(Record):
    """One lm-eval document scored for one checkpoint (multiple choice: correct when the gold
    choice has the highest log-likelihood)."""

    schema_version: Literal[1] = 1
    role: Role
    checkpoint: str
    task: str
    doc_id: int
    correct: bool
    target: str
    """The gold answer's text."""
    prediction: str
    """The choice the model ranked first."""
    prompt: str
    """The context lm-eval scored the choices after (few-shot examples included)."""
    cached: bool


Preference = Literal["candidate", "base", "tie", "unparsed", "failed"]
Verdict = Literal["A", "B", "tie"]


class JudgmentRecord(Record):
    """One base/candidate answer pair (or a canary against the base's answer) judged in both orders.

    Order AB shows the base as answer A and the candidate as B; order BA swaps them. A single-answer
    grader makes one call per answer instead: its `_ab` fields hold the base's grading, `_ba` the
    candidate's."""

    schema_version: Literal[1] = 1
    judge: str
    """The judge's name: its definition's name for kind llm, else reference or rules."""
    kind: Literal["llm", "reference", "rules"]
    model: str | None
    """The judge model (kind llm); None for the offline judges."""
    decided_by: str
    """Which judge decided this pair: `judge`, or rules where the reference judge had no reference to go by."""
    suite: str
    item_id: str
    sample_index: int
    canary: str | None = None
    """The canary answer in the candidate's seat (empty, injection, question, padded); None for a real pair."""
    raw_ab: str | None = None
    """The judge's first reply in order AB (None for offline judges or when the call failed)."""
    raw_ba: str | None = None
    reask_raw_ab: str | None = None
    """The reply to the re-ask, when the first reply was not in the required format."""
    reask_raw_ba: str | None = None
    verdict_ab: Verdict | None = None
    """Parsed verdict by position; None when unparsed or failed."""
    verdict_ba: Verdict | None = None
    reasked_ab: bool = False
    reasked_ba: bool = False
    reason_ab: str = ""
    reason_ba: str = ""
    score_base: int | None = None
    """Single-answer grader: the base answer's 1-10 grade."""
    score_candidate: int | None = None
    preference: Preference
    """A side wins only when both orders agree; disagreement is a tie (and inconsistent)."""
    consistent: bool | None
    """Both orders agreed; None when an order is unparsed or failed, or for a single-answer grader."""
    error: str | None = None
    """Why a call failed (preference failed); failures are never cached."""
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    """Judge calls that produced this judgment, re-asks included (0 for offline judges)."""
    cached: bool
    """True when every call's result came from the cache in this run."""
    base_words: int
    candidate_words: int
