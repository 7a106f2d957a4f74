"""What SFT and DPO runs share around TRL: the environment a trainer is built in, the callbacks that
stop a run that cannot recover, and how a run's log and memory are read."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.config.training import TrainConfig
from harness.errors import InfraError
from harness.records.stage_records import TrainStepRecord
from harness.stages.train.evaluation import VALIDATION

LOG_FILE = "train_log.jsonl"


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def to_float(value: Any) -> float | None:
    return None if value is None else float(value)


def peak_memory_mib(torch: Any, device: str) -> float:
    if device == "cuda":
        return round(float(torch.cuda.max_memory_allocated()) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def callbacks(patience: int | None) -> list[Any]:
    from transformers import TrainerCallback

    class StopOnNonFinite(TrainerCallback):  # type: ignore[misc]
        """A NaN or infinite loss will not recover: stop at once and let the verdict say why."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **_: Any) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                control.should_training_stop = True

    class EvalPatience(TrainerCallback):  # type: ignore[misc]
        """Early stopping on eval loss without saved checkpoints (transformers' own callback needs them)."""

        def __init__(self, patience: int) -> None:
            self.patience, self.best, self.bad = patience, math.inf, 0

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        **_: Any) -> None:
            loss = (metrics or {}).get(f"eval_{VALIDATION}_loss", math.inf)
            if loss < self.best:
                self.best, self.bad = loss, 0
            else:
                self.bad += 1
                if self.bad >= self.patience:
                    control.should_training_stop = True

    return [StopOnNonFinite()] + ([EvalPatience(patience)] if patience else [])


def device_and_dtype(train: TrainConfig, torch: Any) -> tuple[str, Any]:
    """Where to train and in what precision: bfloat16 on a GPU, float32 on the CPU unless the block says."""
    if train.device == "cuda" and not torch.cuda.is_available():
        raise InfraError("train.device is 'cuda' but torch sees no CUDA device on this machine")
    device = "cuda" if train.device == "cuda" or (train.device == "auto" and torch.cuda.is_available()) else "cpu"
    dtype = {"auto": torch.bfloat16 if device == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[train.dtype]
    return device, dtype


def total_steps(train: TrainConfig, rows: int) -> int:
    """Optimizer steps the run takes: max_steps, else its epochs over `rows`."""
    steps_per_epoch = math.ceil(rows / (train.batch_size * train.gradient_accumulation))
    return train.max_steps or max(1, math.ceil(steps_per_epoch * train.epochs))


def lora_config(train: TrainConfig) -> Any:
    """peft's LoraConfig for the block's lora settings (None: full fine-tuning)."""
    if train.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout,
                      target_modules=train.lora.target_modules, task_type="CAUSAL_LM")


def quiet_progress() -> None:
    """No progress bars from datasets or transformers: the run reports its own progress."""
    from datasets import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def save_run(trainer: Any, tok: Any, out: Path, steps: Sequence[TrainStepRecord]) -> None:
    """The trained weights (full, or the peft adapter for LoRA) and tokenizer into `out`, the trainer's
    scratch dir removed, and the per-step log beside them."""
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    shutil.rmtree(out / "trainer", ignore_errors=True)
    (out / LOG_FILE).write_text("".join(s.model_dump_json() + "\n" for s in steps), encoding="utf-8")
