"""Typed per-item records that stages write and read.

Stages talk only through these records (and the files that hold them), so
any stage can be re-run alone. Each record carries a schema version; bump it
when a field changes meaning.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["base", "candidate"]
ROLES: tuple[Role, Role] = ("base", "candidate")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
