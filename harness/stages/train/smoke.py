"""The smoke verdict of a short SFT run: was the run itself healthy?

A pure function over the per-step log, so it can be tested on made-up curves
and re-decided from stored records. Each check says what it measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

EVAL_RATIO_LIMIT = 0.10
"""Eval loss may exceed the final train loss by at most 10%. The train loss compared is a
sample of training rows scored like the validation rows (final weights, eval mode); eval
below it is not a fault."""
GAP_LIMIT = 0.3
"""... and by at most 0.3 nats in absolute terms."""


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class SmokeVerdict:
    passed: bool
    checks: list[SmokeCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def smoke_verdict(losses: Sequence[float], grad_norms: Sequence[float], eval_loss: float | None,
                  crashed: str | None = None, final_train_loss: float | None = None) -> SmokeVerdict:
    """losses and grad_norms: one value per optimizer step; eval_loss: the final validation loss;
    final_train_loss: training rows scored like the validation rows (else the last steps' mean)."""
    checks = [SmokeCheck("completed", crashed is None, crashed or "no crash or out-of-memory")]
    if not losses:
        checks.append(SmokeCheck("steps", False, "no training step was logged"))
        return SmokeVerdict(False, checks)
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    finite = "loss finite at every step" if bad is None else f"loss is {losses[bad]} at step {bad + 1}"
    checks.append(SmokeCheck("finite_loss", bad is None, finite))
    bad_grad = next((i for i, v in enumerate(grad_norms) if not math.isfinite(v)), None)
    checks.append(SmokeCheck("finite_grad_norm", bad_grad is None, "grad norm finite at every step" if bad_grad is None
                             else f"grad norm is {grad_norms[bad_grad]} at step {bad_grad + 1}"))
    tenth = max(1, len(losses) // 10)
    first, last = _mean(losses[:tenth]), _mean(losses[-tenth:])
    falling = math.isfinite(first) and math.isfinite(last) and len(losses) >= 2 and last < first
    checks.append(SmokeCheck("loss_falling", falling,
                             f"mean loss of the first tenth {first:.4g}, of the last tenth {last:.4g}"))
    # Without a scored train sample, the mean over at least 5 final steps: one step's loss is noise.
    final = final_train_loss if final_train_loss is not None else _mean(losses[-max(tenth, min(5, len(losses))):])
    if eval_loss is None:
        checks.append(SmokeCheck("eval_loss", False, "no validation loss (validation_share is 0?)"))
    else:
        ratio = (eval_loss - final) / final if final > 0 and math.isfinite(final) else math.inf
        gap = eval_loss - final
        checks.append(SmokeCheck("eval_within_10pct", math.isfinite(eval_loss) and ratio <= EVAL_RATIO_LIMIT,
                                 f"eval loss {eval_loss:.4g} vs final train loss {final:.4g} ({100 * ratio:+.1f}%)"))
        checks.append(SmokeCheck("train_eval_gap", math.isfinite(gap) and gap < GAP_LIMIT,
                                 f"eval - train = {gap:.3g} (limit {GAP_LIMIT})"))
    return SmokeVerdict(all(c.passed for c in checks), checks)
