"""How a smoke-test SFT run evaluates itself, in proportion to its training.

The smoke verdict needs two losses at the final weights: the validation set's and that of an equal
sample of training rows scored the same way (eval mode, final weights), whose gap measures
generalisation alone. The loss curve also gets the validation loss now and then. Both cost forward
passes over rows that are not trained on: this module sizes them to the run (`eval_plan`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from harness.config.training import TrainConfig
from harness.stages.train.data import Conversation

VALIDATION, TRAIN_SAMPLE = "validation", "train_sample"
EVAL_ROW_BUDGET = 0.3
"""Rows scored by the evaluations (the validation set at each periodic evaluation, the train sample once)
per row trained. A scored row costs a forward pass; a trained row a forward and a backward pass and its
share of the optimizer step: about 4 times as much on two CPU cores (bench/bench_train.py), 3 in theory.
So evaluation stays under 10% of the training time; the old default (both sets about ten times a run,
then both again) cost as much as the training itself on a 40-step run."""
MIN_EVAL_ROWS = 64
"""A set is never cut below this many rows: the smoke verdict compares mean losses, and a mean over fewer
rows is noise. (Tiny runs may so exceed the budget; their start-up dominates anyway.)"""
MAX_EVALS = 10


@dataclass(frozen=True)
class EvalPlan:
    every: int
    """Steps between evaluations of the validation set during training."""
    rows: int
    """Rows in each evaluated set (the validation rows scored, and the train sample)."""


def eval_plan(train: TrainConfig, total_steps: int, validation_rows: int) -> EvalPlan:
    """Evaluation in proportion to training: at most EVAL_ROW_BUDGET rows scored per row trained, the train
    sample scored once and the validation set as often as the rest of the budget allows (at least once, at
    the last step; at most MAX_EVALS times). A validation set larger than half the budget is cut to it
    (never below MIN_EVAL_ROWS). `eval_every` overrides the count, and `early_stopping_patience`, which
    counts evaluations, keeps the frequent default (about ten a run)."""
    budget = EVAL_ROW_BUDGET * total_steps * train.batch_size * train.gradient_accumulation
    rows = min(validation_rows, max(MIN_EVAL_ROWS, int(budget // 2)))
    if train.eval_every is not None:
        return EvalPlan(train.eval_every, rows)
    if train.early_stopping_patience is not None:
        return EvalPlan(max(1, total_steps // MAX_EVALS), rows)
    evaluations = min(MAX_EVALS, max(1, int(budget // max(1, rows)) - 1))  # less the train sample's share
    return EvalPlan(math.ceil(total_steps / evaluations), rows)


def periodic_eval_sets(eval_sets: dict[str, Any]) -> dict[str, Any]:
    """What the trainer scores every `every` steps: the validation set alone (the train sample only
    matters at the final weights)."""
    return {VALIDATION: eval_sets[VALIDATION]}


def final_losses(trainer: Any, eval_sets: dict[str, Any]) -> tuple[float, float]:
    """(validation loss, train sample loss) at the final weights. The validation loss is the periodic
    evaluation's when one ran at the last step (the same weights and rows give the same number), else
    scored now; the train sample is scored once, here."""
    step, key = trainer.state.global_step, f"eval_{VALIDATION}_loss"
    logged = [e[key] for e in trainer.state.log_history if key in e and e.get("step") == step]
    if logged:
        eval_loss = float(logged[-1])
    else:
        eval_loss = float(trainer.evaluate(eval_dataset={VALIDATION: eval_sets[VALIDATION]})[key])
    sample = trainer.evaluate(eval_dataset={TRAIN_SAMPLE: eval_sets[TRAIN_SAMPLE]})
    return eval_loss, float(sample[f"eval_{TRAIN_SAMPLE}_loss"])


def eval_sets(dataset_cls: Any, train_rows: list[Conversation], eval_rows: list[Conversation],
              seed: int) -> dict[str, Any]:
    """Validation rows, and as many training rows scored the same way (eval mode, final
    weights): their gap measures generalisation alone, not dropout or the loss still falling."""
    sample = random.Random(seed).sample(train_rows, min(len(train_rows), len(eval_rows)))
    return {VALIDATION: dataset_cls.from_list([{"messages": c} for c in eval_rows]),
            TRAIN_SAMPLE: dataset_cls.from_list([{"messages": c} for c in sample])}
