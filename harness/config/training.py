"""Typed configuration of a `train:` block: a smoke-test SFT or DPO run (harness/stages/train/).

Split from schema.py, which re-exports these models with the rest of the checkpoint file's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config.engine import Strict


class CurationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    min_response_chars: int = Field(1, ge=0)
    """Drop a conversation with an assistant turn shorter than this (after strip)."""
    min_tokens: int = Field(2, ge=0)
    """Drop a conversation whose whole text (all contents) has fewer tokens than this."""
    max_tokens: int = Field(2048, ge=1)
    """Drop a conversation whose whole text has more tokens than this (it would be cut in training)."""
    min_unique_word_ratio: float = Field(0.3, ge=0.0, le=1.0)
    """Drop assistant text of 8+ words whose distinct/total word ratio is below this (loops)."""
    drop_truncated: bool = True
    """Drop a conversation with an assistant turn that ends mid-sentence."""
    drop_exact_duplicates: bool = True
    """Drop later copies of an identical conversation."""
    drop_near_duplicates: bool = True
    """Drop later conversations whose first user turn matches an earlier one (case, spacing, punctuation ignored)."""
    drop_refusals: bool = False
    """Drop conversations with an assistant turn that opens with a refusal; otherwise only count them."""

    @model_validator(mode="after")
    def _token_range(self) -> CurationSettings:
        if self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens must not exceed max_tokens")
        return self


class LoraSettings(Strict):
    """LoRA through peft; the checkpoint becomes base + adapter."""

    r: Annotated[int, Field(ge=1, le=1024)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: str | list[str] = "all-linear"


class DpoSettings(Strict):
    """method dpo: TRL's DPOTrainer."""

    beta: Annotated[float, Field(gt=0, le=1000)] = 0.1
    """How strongly the policy is held to the reference (TRL's beta; smaller lets it move further)."""
    reference: str | None = None
    """The reference model: a local directory or hub id; the block's `base` when left out (with LoRA,
    the base with the adapter switched off, as TRL does)."""


class TrainConfig(Strict):
    """A smoke-test SFT or DPO run (TRL) that produces this checkpoint from a base."""

    base: Annotated[str, Field(min_length=1)]
    """The model to start from: local directory, hub id or demo:base."""
    data: Annotated[list[str], Field(min_length=1)]
    """Training data files (.jsonl or .json), relative to this file."""
    method: Literal["sft", "dpo"] = "sft"
    """sft: supervised fine-tuning on conversations; dpo: direct preference optimisation on preference pairs
    (prompt, chosen, rejected)."""
    dpo: DpoSettings = Field(default_factory=DpoSettings)
    format: Literal["auto", "alpaca", "sharegpt", "messages", "preference"] = "auto"
    """SFT data: alpaca, sharegpt or messages; DPO data: preference (auto detects either)."""
    output_dir: str | None = None
    """Where the trained checkpoint goes (default: under the cache dir, named by content hash)."""
    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 2e-5
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.03
    batch_size: Annotated[int, Field(ge=1)] = 8
    gradient_accumulation: Annotated[int, Field(ge=1)] = 1
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    max_length: Annotated[int, Field(ge=16)] = 1024
    """Longer conversations are dropped by curation, never silently cut."""
    seed: int = 0
    validation_share: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    eval_every: Annotated[int, Field(ge=1)] | None = None
    """Evaluate every N steps (default: about ten times per run)."""
    early_stopping_patience: Annotated[int, Field(ge=1)] | None = None
    """Stop when eval loss has not improved for this many evaluations."""
    lora: LoraSettings | None = None
    curation: CurationSettings = Field(default_factory=CurationSettings)
    max_bad_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    """Share of rows that may fail to parse before the run stops."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    report_to: list[Literal["azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte",
                            "mlflow", "neptune", "swanlab", "tensorboard", "trackio", "wandb"]] = Field(
        default_factory=list)
    """Experiment trackers TRL logs the run to as it trains (transformers' integrations), each installed
    and configured its own way (WANDB_PROJECT, MLFLOW_TRACKING_URI, ...). Where the run is logged does
    not change the weights, so it is not part of the result's hash: a reused result logs nothing."""

    @model_validator(mode="after")
    def _method_fields(self) -> TrainConfig:
        # Settings of the other method are refused when they differ from their defaults (not merely when
        # written): a dumped config, which spells out every default, must load again.
        changed = [name for name in ("dpo", "curation", "eval_every", "early_stopping_patience", "validation_share")
                   if getattr(self, name) != type(self).model_fields[name].get_default(call_default_factory=True)]
        if self.method == "sft":
            if "dpo" in changed:
                raise ValueError("'dpo' settings are only used with method 'dpo'")
            if self.format == "preference":
                raise ValueError("format 'preference' is DPO data; set method: dpo, or give SFT data")
        elif unused := [name for name in changed if name != "dpo"]:
            raise ValueError(f"'{unused[0]}' is only used with method 'sft' (a DPO smoke run does no evaluation "
                             "pass and no curation; its verdict reads the training curves)")
        elif self.format not in ("auto", "preference"):
            raise ValueError(f"method 'dpo' trains on preference pairs, not {self.format} data; set format: "
                             "preference (or auto)")
        return self
