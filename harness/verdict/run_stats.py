"""Records in, the run's statistics out (stats.json): pure functions over the
stage records, calling harness.verdict.stats for every test. No I/O, no models.

Every comparison is paired on the same items: pass rates by exact McNemar
and a paired bootstrap of the difference, never an unpaired z-test (on paired
data that throws away the pairing; lm-eval #3831). p-values are Holm-adjusted
across all suites and forgetting tasks of one run.

With several samples per item (sampling.n > 1) the item is the unit: per-item rates, a cluster
bootstrap over items and a sign-flip permutation test on the per-item differences
(paired_binary_clustered; harness/verdict/clustered.py says why). One sample per item keeps the
per-answer McNemar path above unchanged.

pass@k and majority vote (plan.pass_at_k, plan.majority_vote; harness/verdict/passk.py defines
them) are per-item figures too: sampled_stats pairs them by item and reports their differences
with the same cluster bootstrap and sign-flip test.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from operator import itemgetter

import numpy as np

from harness.config.schema import ForgettingConfig
from harness.records.outcomes import CheckedAnswers, Paired, SampleKey, Side, pair_sides
from harness.records.run_results import (
    ForgettingStats,
    ForgettingTask,
    PairedDelta,
    PairedRates,
    RunStats,
    SampledSuite,
)
from harness.records.stage_records import CheckRecord, ForgettingRecord
from harness.verdict import clustered, stats
from harness.verdict.passk import is_reference_check, majority_right, pass_at_k

CONFIDENCE = 0.95
NOTHING_PAIRED = Paired([], [], [])


def subject_rng(seed: int, subject: str) -> np.random.Generator:
    """One generator per (seed, subject): a suite's interval does not depend on which others ran."""
    digest = int.from_bytes(hashlib.sha256(subject.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def paired_binary(base: Sequence[bool], cand: Sequence[bool], rng: np.random.Generator) -> PairedRates:
    """Both sides' rates with Wilson intervals, the paired difference with a bootstrap CI, the one-sided
    95% bounds non-inferiority gates read, the exact McNemar p-value and the smallest difference this
    many items can detect.

    The one-sided bounds are Newcombe's paired score interval, not the bootstrap's: a percentile
    bootstrap collapses to [0, 0] when no item changed, which would let 3 items prove "no drop"."""
    n = len(base)
    b_arr, c_arr = np.asarray(base), np.asarray(cand)  # once, not in each test
    mc = stats.mcnemar_exact(b_arr, c_arr)
    two_sided = stats.paired_bootstrap(b_arr, c_arr, rng, confidence=CONFIDENCE)
    one_sided = stats.newcombe_paired_interval(b_arr, c_arr, confidence=1 - 2 * (1 - CONFIDENCE))
    b_ci = stats.wilson_interval(int(np.count_nonzero(b_arr)), n)
    c_ci = stats.wilson_interval(int(np.count_nonzero(c_arr)), n)
    return PairedRates(
        n=n, base_rate=_finite(mc.base_rate), candidate_rate=_finite(mc.cand_rate),
        base_ci=(b_ci.low, b_ci.high), candidate_ci=(c_ci.low, c_ci.high),
        base_stderr=_stderr(mc.base_rate, n), candidate_stderr=_stderr(mc.cand_rate, n),
        delta=_finite(mc.delta), delta_ci=(_finite(two_sided.low), _finite(two_sided.high)),
        delta_lower_one_sided=_finite(one_sided.low) if n else None,
        delta_upper_one_sided=_finite(one_sided.high) if n else None,
        p_value=mc.p_value, mid_p_value=mc.mid_p_value, test="mcnemar_exact",
        base_only=mc.b, candidate_only=mc.c,
        mde=_finite(_mde(n, (mc.b + mc.c) / n if n else 0.0)),
        cohens_h=_finite(stats.cohens_h(mc.cand_rate, mc.base_rate)) if n else None)


def _mde(n: int, discordant: float) -> float:
    """The smallest difference detectable at 80% power. With the observed share of disagreeing items
    when that resolves; when it is too small to (Connor's equation has no solution below it), with the
    planning value 0.5, so that more agreement never reads as less power."""
    observed = stats.min_detectable_effect_paired_binary(n, discordant) if discordant > 0 else math.inf
    return observed if math.isfinite(observed) else stats.min_detectable_effect_paired_binary(n, None)


def _stderr(rate: float, n: int) -> float | None:
    """Standard error of a mean of 0/1 items (ddof 1, as lm-eval reports it)."""
    return math.sqrt(rate * (1 - rate) / (n - 1)) if n > 1 else None


def paired_binary_clustered(items: Sequence[str], base: Sequence[bool], cand: Sequence[bool],
                            rng: np.random.Generator,
                            resamples: int = 10_000) -> PairedRates:
    """paired_binary with several samples per item: items[i] names the item of the i-th pair.

    n counts items. Each side's rate is the mean over items of the item's pass rate (its share of
    passing samples); delta the mean of the per-item differences. Two-sided intervals of the rates
    and of delta: percentile cluster bootstrap over items. p-value: paired sign-flip permutation
    test on the per-item differences (exact up to clustered.EXACT_MAX non-zero ones, else Monte
    Carlo with this rng); a permutation test has no mid-p, so mid_p_value repeats it. One-sided 95%
    bounds: the wider of the cluster bootstrap's (5th / 95th percentile) and Newcombe's over all
    samples: the bootstrap carries the correlation, Newcombe keeps the bounds from collapsing to
    [0, 0] when no item moved. base_only / candidate_only count items whose base / candidate rate
    is the higher. MDE: normal approximation on the per-item differences' SD (ddof 1) at 80% power;
    with no spread (or one item), Connor's planning value over the items, as for one sample."""
    if not len(items) == len(base) == len(cand):
        raise ValueError(f"items, base and cand must align: {len(items)}, {len(base)}, {len(cand)}")
    names, base_rates = clustered.item_means(items, base)
    _, cand_rates = clustered.item_means(items, cand)
    n = len(names)
    boot = clustered.cluster_bootstrap(base_rates, cand_rates, rng, resamples, CONFIDENCE)
    diffs = cand_rates - base_rates
    p = clustered.sign_flip_p(diffs, rng)
    pooled = stats.newcombe_paired_interval(base, cand, confidence=1 - 2 * (1 - CONFIDENCE))
    base_rate = float(base_rates.mean()) if n else math.nan
    cand_rate = float(cand_rates.mean()) if n else math.nan
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    mde = clustered.normal_mde(sd, n) if sd > 0 else stats.min_detectable_effect_paired_binary(n, None)
    return PairedRates(
        n=n, base_rate=_finite(base_rate), candidate_rate=_finite(cand_rate),
        base_ci=(_finite(boot.base_ci[0]), _finite(boot.base_ci[1])),
        candidate_ci=(_finite(boot.cand_ci[0]), _finite(boot.cand_ci[1])),
        base_stderr=_item_stderr(base_rates), candidate_stderr=_item_stderr(cand_rates),
        delta=_finite(boot.delta), delta_ci=(_finite(boot.low), _finite(boot.high)),
        delta_lower_one_sided=_finite(min(boot.lower_one_sided, pooled.low)) if n else None,
        delta_upper_one_sided=_finite(max(boot.upper_one_sided, pooled.high)) if n else None,
        p_value=p, mid_p_value=p, test="cluster_permutation",
        base_only=int((diffs < 0).sum()), candidate_only=int((diffs > 0).sum()),
        mde=_finite(mde), cohens_h=_finite(stats.cohens_h(cand_rate, base_rate)) if n else None,
        samples_per_item=len(base) / n if n else None)


def _item_stderr(rates: np.ndarray) -> float | None:
    """Standard error of a mean over items (ddof 1); for 0/1 rates it equals _stderr."""
    return float(rates.std(ddof=1) / math.sqrt(len(rates))) if len(rates) > 1 else None


def paired_by_item(keys: Sequence[tuple[str, int]], base: Sequence[bool], cand: Sequence[bool],
                   rng: np.random.Generator) -> PairedRates:
    """paired_binary when every item has one sample (today's figures, bit for bit), else
    paired_binary_clustered. keys: (item_id, sample_index) of each pair."""
    items = list(map(itemgetter(0), keys))
    if len(set(items)) == len(items):
        return paired_binary(base, cand, rng)
    return paired_binary_clustered(items, base, cand, rng)


# ---------------------------------------------------------------------------- suites
def suite_stats(suite_names: Sequence[str], checks: Sequence[CheckRecord] | CheckedAnswers,
                seed: int) -> dict[str, PairedRates]:
    """Per suite, the paired pass rates (records/outcomes.py says what passing and pairing mean)."""
    paired = CheckedAnswers.of(checks).paired()
    result = {}
    for name in suite_names:
        pairs = paired.get(name, NOTHING_PAIRED)
        result[name] = paired_by_item(pairs.keys, pairs.base, pairs.candidate, subject_rng(seed, f"suite:{name}"))
    return result


# ---------------------------------------------------------------------------- pass@k, majority vote
def paired_delta(base: Sequence[float], cand: Sequence[float], rng: np.random.Generator) -> PairedDelta:
    """Means over items of per-item values paired item by item, their difference with a two-sided 95%
    cluster bootstrap interval and the sign-flip p-value. The one-sided lower bound is the bootstrap's,
    except when no item moved, where the bootstrap collapses to 0: then the exact one-sided bound
    -(1 - 0.05^(1/n)) (how large a share of items could each have dropped by one, unseen in n), so a
    handful of unchanged items cannot prove "no drop". MDE: normal approximation on the differences'
    SD (ddof 1) at 80% power; with no spread, Connor's planning value over the items."""
    b, c = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    n = len(b)
    if n == 0:
        return PairedDelta(n=0, base=None, candidate=None, delta=None, delta_ci=(None, None),
                           delta_lower_one_sided=None, p_value=None, mde=None)
    boot = clustered.cluster_bootstrap(b, c, rng, confidence=CONFIDENCE)
    diffs = c - b
    p = clustered.sign_flip_p(diffs, rng)
    lower = boot.lower_one_sided if diffs.any() else -(1 - (1 - CONFIDENCE) ** (1 / n))
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    mde = clustered.normal_mde(sd, n) if sd > 0 else stats.min_detectable_effect_paired_binary(n, None)
    return PairedDelta(n=n, base=_finite(float(b.mean())), candidate=_finite(float(c.mean())),
                       delta=_finite(boot.delta), delta_ci=(_finite(boot.low), _finite(boot.high)),
                       delta_lower_one_sided=_finite(lower), p_value=p, mde=_finite(mde))


def _counts(pairs: Paired) -> dict[str, tuple[int, int, int]]:
    """Per item: paired samples, base passes, candidate passes."""
    counts: dict[str, tuple[int, int, int]] = {}
    for (item, _), b, c in zip(pairs.keys, pairs.base, pairs.candidate):
        m, cb, cc = counts.get(item, (0, 0, 0))
        counts[item] = (m + 1, cb + b, cc + c)
    return counts


def sampled_stats(suite_names: Sequence[str], checks: Sequence[CheckRecord] | CheckedAnswers, ks: Sequence[int],
                  majority: bool, seed: int) -> dict[str, SampledSuite] | None:
    """Per suite with several samples per item: pass@k for each k (an answer passes when every check
    passed; items with fewer than k paired samples are left out of that k) and, with `majority`, the
    majority-vote accuracy over the answers' reference checks (passk.py). None when nothing was asked,
    or no suite has an item sampled more than once (a one-sample run's stats.json keeps a null)."""
    if not ks and not majority:
        return None
    checked = CheckedAnswers.of(checks)
    reference: dict[Side, dict[SampleKey, bool]] = {
        side: {key: all(ok for name, ok in named.items() if is_reference_check(name))
               for key, named in answers.items() if any(is_reference_check(name) for name in named)}
        for side, answers in checked.sides.items()}
    every, voted_on = checked.paired(), pair_sides(reference)
    result = {}
    for name in suite_names:
        pairs = every.get(name, NOTHING_PAIRED)
        counts = _counts(pairs)
        if all(m == 1 for m, _, _ in counts.values()):
            continue
        by_k = {}
        for k in ks:
            used = [v for v in counts.values() if v[0] >= k]
            by_k[str(k)] = paired_delta([pass_at_k(m, cb, k) for m, cb, _ in used],
                                        [pass_at_k(m, cc, k) for m, _, cc in used],
                                        subject_rng(seed, f"pass_at_k:{name}@{k}"))
        vote = None
        if majority:
            voted = _counts(voted_on.get(name, NOTHING_PAIRED)).values()
            vote = paired_delta([float(majority_right(m, cb)) for m, cb, _ in voted],
                                [float(majority_right(m, cc)) for m, _, cc in voted],
                                subject_rng(seed, f"majority_vote:{name}"))
        result[name] = SampledSuite(samples_per_item=len(pairs.keys) / len(counts), pass_at_k=by_k,
                                    majority_vote=vote)
    return result or None


# ---------------------------------------------------------------------------- forgetting
def forgetting_stats(records: Sequence[ForgettingRecord], config: ForgettingConfig, seed: int) -> ForgettingStats:
    """Per task: both accuracies, the paired drop and a flag at the plan's warn/fail thresholds."""
    by_task: dict[str, dict[str, dict[int, bool]]] = defaultdict(lambda: {"base": {}, "candidate": {}})
    for r in records:
        by_task[r.task][r.role][r.doc_id] = r.correct
    tasks = {}
    for task, sides in sorted(by_task.items()):
        docs = sorted(set(sides["base"]) & set(sides["candidate"]))
        entry = paired_binary([sides["base"][d] for d in docs], [sides["candidate"][d] for d in docs],
                              subject_rng(seed, f"forgetting:{task}"))
        tasks[task] = ForgettingTask(**entry.model_dump(), flag=forgetting_flag(entry.delta, config))
    return ForgettingStats(warn_drop=config.warn_drop, fail_drop=config.fail_drop, tasks=tasks)


def forgetting_flag(delta: float | None, config: ForgettingConfig) -> str:
    """ok, warn (dropped more than warn_drop) or fail (more than fail_drop), on the point estimate."""
    if delta is None:
        return "ok"
    if -delta > config.fail_drop + 1e-12:
        return "fail"
    if -delta > config.warn_drop + 1e-12:
        return "warn"
    return "ok"


# ---------------------------------------------------------------------------- the run
def apply_holm(run_stats: RunStats) -> RunStats:
    """Holm-adjust the p-values of every suite and forgetting task of the run together (in place), with
    the pass@k and majority-vote differences when the run has them (run_stats.sampled)."""
    apply_holm_together([run_stats])
    return run_stats


def apply_holm_together(runs: Sequence[RunStats]) -> None:
    """apply_holm over several comparisons at once (a run of three or more checkpoints): one family of
    every test of every comparison, so the family-wise error rate holds across the whole run."""
    entries: list[PairedRates] = []
    sampled: list[PairedDelta] = []
    for run_stats in runs:
        entries += list(run_stats.suites.values())
        entries += list(run_stats.forgetting.tasks.values()) if run_stats.forgetting else []
        sampled += [d for s in (run_stats.sampled or {}).values()
                    for d in [*s.pass_at_k.values(), *([s.majority_vote] if s.majority_vote else [])]
                    if d.p_value is not None]
    adjusted = [float(p) for p in stats.holm([e.p_value for e in entries] + [d.p_value or 1.0 for d in sampled])]
    for entry, p in zip(entries, adjusted):
        entry.p_holm = p
    for delta, p in zip(sampled, adjusted[len(entries):]):
        delta.p_holm = p
