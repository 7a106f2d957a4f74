"""The smoke verdict on made-up curves: each check passes and fails where it should."""

from __future__ import annotations

import math

from harness.stages.train.smoke import smoke_verdict

FALLING = [4.0 - 0.1 * i for i in range(30)]  # 4.0 -> 1.1


def failed(verdict) -> set[str]:  # noqa: ANN001
    return {c.name for c in verdict.checks if not c.passed}


def test_healthy_curve_passes() -> None:
    verdict = smoke_verdict(FALLING, [1.0] * 30, eval_loss=1.3)
    assert verdict.passed and verdict.reasons == []


def test_nan_loss_is_named_with_its_step() -> None:
    verdict = smoke_verdict(FALLING[:5] + [math.nan], [1.0] * 6, eval_loss=1.3)
    assert "finite_loss" in failed(verdict)
    assert "finite_loss: loss is nan at step 6" in verdict.reasons


def test_infinite_grad_norm_fails() -> None:
    assert failed(smoke_verdict(FALLING, [1.0] * 29 + [math.inf], eval_loss=1.3)) == {"finite_grad_norm"}


def test_flat_or_rising_loss_fails() -> None:
    assert "loss_falling" in failed(smoke_verdict([2.0] * 30, [1.0] * 30, eval_loss=2.0))
    assert "loss_falling" in failed(smoke_verdict(FALLING[::-1], [1.0] * 30, eval_loss=4.0))


def test_eval_far_above_train_fails_both_eval_checks() -> None:
    # final train loss: mean of the last 5 steps = 1.3; eval 1.8 is +38% and a gap of 0.5
    assert failed(smoke_verdict(FALLING, [1.0] * 30, eval_loss=1.8)) == {"eval_within_10pct", "train_eval_gap"}
    assert failed(smoke_verdict(FALLING, [1.0] * 30, eval_loss=1.42)) == set()  # +9.2%


def test_eval_below_train_is_not_a_fault() -> None:
    assert smoke_verdict(FALLING, [1.0] * 30, eval_loss=0.9).passed


def test_missing_eval_crash_and_empty_log() -> None:
    assert failed(smoke_verdict(FALLING, [1.0] * 30, eval_loss=None)) == {"eval_loss"}
    crashed = smoke_verdict(FALLING, [1.0] * 30, eval_loss=1.3, crashed="out of memory: CUDA")
    assert crashed.reasons == ["completed: out of memory: CUDA"]
    empty = smoke_verdict([], [], eval_loss=None)
    assert not empty.passed and "steps: no training step was logged" in empty.reasons


def test_a_scored_train_sample_is_the_reference_when_given() -> None:
    # The last steps average 1.3, but the train sample scored like validation is 1.05: eval 1.3 is +23.8%.
    verdict = smoke_verdict(FALLING, [1.0] * 30, eval_loss=1.3, final_train_loss=1.05)
    assert failed(verdict) == {"eval_within_10pct"}
    assert "vs final train loss 1.05 (+23.8%)" in verdict.reasons[0]
