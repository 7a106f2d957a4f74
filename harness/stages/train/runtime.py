"""What SFT and DPO runs share around TRL: the environment a trainer is built in, the callbacks that
stop a run that cannot recover, and how a run's log and memory are read."""

from __future__ import annotations

import contextlib
import math
import os
import resource
from collections.abc import Iterator
from typing import Any

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
