"""The smoke verdict of a short SFT or DPO run: was the run itself healthy?

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


# ---------------------------------------------------------------------------- DPO
REWARD_ACCURACY_MIN = 0.6
"""By the end, the policy must rank the chosen answer above the rejected one on at least 60% of pairs
(chance is 50%; a mean over the last tenth of the steps)."""
CHOSEN_DROP_LIMIT = 0.5
"""DPO's known failure: the chosen answers' log-probability falls with the rejected ones' (both pushed
down, the margin growing anyway). The chosen answers may lose at most half of their log-probability
under the reference model (log pi(chosen) >= 1.5 log pi_ref(chosen), both negative)."""
LOG_RATIO_LIMIT = 1.0
"""How far the policy may move from the reference on the preference data: the mean |log pi - log pi_ref|
of an answer at most its reference log-probability's magnitude (an estimate of the KL on the data,
relative to the answers' own length; TRL's rewards are beta times these log ratios)."""


@dataclass(frozen=True)
class DpoStep:
    loss: float
    margin: float
    """rewards/margins: beta (log ratio of chosen - log ratio of rejected), mean over the batch."""
    accuracy: float
    """rewards/accuracies: share of the batch whose chosen reward is above its rejected one."""
    chosen_reward: float
    rejected_reward: float
    """beta (log pi - log pi_ref) of the chosen and the rejected answers, summed over tokens."""
    chosen_logp: float
    """log pi of the chosen answers, summed over tokens."""


def dpo_smoke_verdict(steps: Sequence[DpoStep], beta: float, crashed: str | None = None) -> SmokeVerdict:
    """Was a short DPO run healthy? Loss finite and falling, the reward margin growing, reward accuracy
    above chance by the end, the chosen answers' log-probability not collapsing, and the policy staying
    near the reference. Means over the first and the last tenth of the steps (one batch is noise)."""
    checks = [SmokeCheck("completed", crashed is None, crashed or "no crash or out-of-memory")]
    if not steps:
        checks.append(SmokeCheck("steps", False, "no training step was logged"))
        return SmokeVerdict(False, checks)
    bad = next((i for i, s in enumerate(steps) if not all(
        math.isfinite(v) for v in (s.loss, s.margin, s.chosen_reward, s.rejected_reward, s.chosen_logp))), None)
    checks.append(SmokeCheck("finite_loss", bad is None, "loss and rewards finite at every step" if bad is None
                             else f"loss {steps[bad].loss}, margin {steps[bad].margin} at step {bad + 1}"))
    if bad is not None:
        return SmokeVerdict(False, checks)
    tenth = max(1, len(steps) // 10)
    head, tail = steps[:tenth], steps[-tenth:]

    def mean(part: Sequence[DpoStep], key: str) -> float:
        return _mean([float(getattr(s, key)) for s in part])

    first, last = mean(head, "loss"), mean(tail, "loss")
    checks.append(SmokeCheck("loss_falling", len(steps) >= 2 and last < first,
                             f"mean loss of the first tenth {first:.4g}, of the last tenth {last:.4g}"))
    grew = mean(tail, "margin") - mean(head, "margin")
    checks.append(SmokeCheck("margin_growing", len(steps) >= 2 and grew > 0,
                             f"reward margin {mean(head, 'margin'):.3g} -> {mean(tail, 'margin'):.3g}"))
    accuracy = mean(tail, "accuracy")
    checks.append(SmokeCheck("reward_accuracy", accuracy >= REWARD_ACCURACY_MIN,
                             f"{accuracy:.0%} of the last tenth's pairs ranked right (at least "
                             f"{REWARD_ACCURACY_MIN:.0%})"))
    # log pi_ref(chosen) = log pi(chosen) - reward / beta; both are sums over the answer's tokens.
    chosen_shift = mean(tail, "chosen_reward") / beta
    reference = mean(tail, "chosen_logp") - chosen_shift
    scale = abs(reference) if reference else math.inf
    lost = -chosen_shift / scale
    checks.append(SmokeCheck("chosen_logp_kept", lost <= CHOSEN_DROP_LIMIT,
                             f"the chosen answers' log-probability moved {chosen_shift:+.3g} nats from the "
                             f"reference's {reference:.3g} ({-lost:+.0%}; at most -{CHOSEN_DROP_LIMIT:.0%})"))
    moved = (abs(mean(tail, "chosen_reward")) + abs(mean(tail, "rejected_reward"))) / (2 * beta)
    checks.append(SmokeCheck("near_reference", moved / scale <= LOG_RATIO_LIMIT,
                             f"mean |log pi - log pi_ref| {moved:.3g} nats per answer, {moved / scale:.0%} of "
                             f"the reference's log-probability (at most {LOG_RATIO_LIMIT:.0%})"))
    return SmokeVerdict(all(c.passed for c in checks), checks)
