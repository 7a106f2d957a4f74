"""What a compare checks, and trains, before its run dir exists: a checkpoint to be trained must start from
the other side's tokenizer, and each `train:` block is trained (or found up to date) first, since the run
dir is named after the trained checkpoint and bad training input must leave nothing behind."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.engines.checkpoint import ResolvedCheckpoint, resolve_checkpoint
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.stages.train.sft import TrainOutcome, ensure_trained

if TYPE_CHECKING:
    from harness.stages.pipeline import Inputs, Progress


def _same_tokenizer(trained: ResolvedCheckpoint, other: ResolvedCheckpoint) -> None:
    """A candidate trained with another tokenizer than the base's is not the SFT of that base."""
    if trained.tokenizer_digest is not None and trained.tokenizer_digest == other.tokenizer_digest:
        return  # the same tokenizer files and template override (and transformers): nothing to load and compare
    if not (trained.has_tokenizer and other.has_tokenizer):
        return
    if trained.tokenizer.get_vocab() != other.tokenizer.get_vocab() or trained.template_hash != other.template_hash:
        raise ConfigError(trained.file, "train.base", f"the tokenizer or chat template {trained.name!r} is trained "
                          f"with differs from that of {other.name!r}; train from the same base")


def _check_tokenizers_before_training(inputs: Inputs, cache: Cache) -> None:
    """Preflight: a checkpoint to be trained must start from the other side's tokenizer and template."""
    trained = [role for role, cfg in inputs.configs.items() if cfg.train is not None]
    if not trained:
        return
    starts = {role: resolve_checkpoint(cfg.model_copy(update={"model": cfg.train.base, "train": None})
                                       if cfg.train else cfg, inputs.files[role], cache)
              for role, cfg in inputs.configs.items()}
    role = trained[0]
    _same_tokenizer(starts[role], starts["candidate" if role == "base" else "base"])


TrainedBefore = dict[str, tuple[TrainOutcome, float]]
"""By checkpoint name: the outcome of its training and the wall time it took."""


def preflight(inputs: Inputs, cache: Cache, progress: Progress | None, trained: TrainedBefore) -> None:
    """What a compare checks and trains before its run dir exists (a training's run dir is named after the
    trained checkpoint, and bad training input must leave nothing behind). `trained` gathers each training,
    so that a checkpoint in several comparisons of one run trains once."""
    _check_tokenizers_before_training(inputs, cache)
    for role, cfg in inputs.configs.items():
        if cfg.train is None or cfg.name in trained:
            continue
        if progress:
            progress(f"training {cfg.name}", 0, 1)
        started = time.perf_counter()
        outcome = ensure_trained(cfg, inputs.files[role], cache)
        trained[cfg.name] = (outcome, time.perf_counter() - started)
        if progress:
            progress(f"training {cfg.name}", 1, 1)
