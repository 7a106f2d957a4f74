"""pass@k and majority vote over several samples per item (sampling.n > 1), and the plan checks
that keep them meaningful.

- pass@k of one item with n samples of which c pass every check: the unbiased estimator of Chen et
  al. 2021 (Codex), 1 - C(n - c, k) / C(n, k): the chance that at least one of k samples drawn
  without replacement from the n passes. Computed as the product 1 - prod_{i = n-c+1}^{n} (1 - k/i),
  as in the paper's numpy code, which never forms a large binomial coefficient. A suite's pass@k
  is the mean over items (every item weighs the same).
- Majority vote of one item: right when more than half of its samples pass the item's reference
  checks (checks that compare the answer to the item's reference). A tie (possible with an even
  number of samples) counts as wrong: the vote did not settle on the right answer. This is the
  vote over "right / wrong", a lower bound of the vote over distinct answers (several wrong
  answers may split a vote the right one wins by plurality).

Differences between base and candidate are paired by item; run_stats.sampled_stats computes them
with the cluster bootstrap and the sign-flip test of harness/verdict/clustered.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.config.schema import PlanConfig
from harness.config.suites import Suite
from harness.errors import ConfigError

REFERENCE_CHECKS = ("equals_reference", "number_matches_reference")
"""Check types that compare an answer to the item's reference (harness/config/checks.py)."""


def is_reference_check(name: str) -> bool:
    """A check record's name (its type, `type#2` for a second one of a type) names a reference check."""
    return name.split("#", 1)[0] in REFERENCE_CHECKS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k), product form."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a passing sample
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def majority_right(n: int, c: int) -> bool:
    """More than half of the n samples passed; a tie counts as wrong."""
    return 2 * c > n


def check_sampled_plan(plan: PlanConfig, n_base: int, n_candidate: int, suites: Sequence[Suite],
                       file: str | None, prefix: str = "plan.") -> None:
    """Refuse pass@k and majority-vote settings that cannot mean anything: a k above either side's
    samples per item (sampling.n), a majority vote over a single sample, or a majority vote on an
    item that has no reference or no check comparing to it. prefix: how the plan's fields are named
    in `file` ("plan." inside a checkpoint file, "" in a plan file)."""
    fewest, role = min((n_base, "base"), (n_candidate, "candidate"))
    for k in plan.pass_at_k:
        if k > fewest:
            raise ConfigError(file, f"{prefix}pass_at_k", f"k = {k} needs at least {k} samples per item; "
                                                          f"sampling.n is {fewest} for the {role}")
    if not plan.majority_vote:
        return
    field = f"{prefix}majority_vote"
    if fewest < 2:
        raise ConfigError(file, field, f"a vote needs several samples per item; sampling.n is {fewest} for the {role}")
    for suite in suites:
        for item in suite.items:
            if not any(check.type in REFERENCE_CHECKS for check in suite.checks_for(item)):
                raise ConfigError(file, field, f"suite {suite.name!r} item {item.id!r} has no check that compares to "
                                               f"a reference ({', '.join(REFERENCE_CHECKS)})")
            if item.reference is None:
                raise ConfigError(file, field, f"suite {suite.name!r} item {item.id!r} has no reference")
