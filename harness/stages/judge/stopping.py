"""judge.stop_early: judge the items in a seeded random order and stop once every judge win-rate gate
is settled (harness/verdict/sequential.py has the statistics and why they survive optional stopping).

The unit is the item: an item's outcome is the mean score of its judged pairs (candidate 1, tie 0.5,
base 0), the figure the judge summary's win rate averages when an item has several samples, and a
single pair's score otherwise. Canaries are judged first, all of them, so the canary gate sees what
it would see in a full run; then the real pairs, item by item, in `judging_order`.

The stage asks for conversations in that order and, after each batch of answers, looks at the
longest prefix of items whose pairs are all judged. As soon as every rule has settled on that
prefix, nothing more is asked (the calls already in flight finish and are cached) and the stage
keeps the records of the items up to where the last rule settled. Where that is depends on the
outcomes alone, not on which call finished first, so a rerun or a resumed run stops at the same item.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.config.schema import GateConfig, JudgeConfig, StopEarly
from harness.errors import ConfigError
from harness.records.run_results import SequentialGate, SequentialSummary
from harness.records.stage_records import JudgmentRecord
from harness.stages.judge.pairs import Pair
from harness.verdict.judge_stats import SCORE
from harness.verdict.sequential import SequentialRule, StoppingDecision, judging_order

WIN_RATE_TESTS = ("superiority", "at_least", "at_most")
"""Tests on the win rate a confidence sequence can settle: each asks on which side of a threshold it lies."""
CONFIG_FIELD = "judge.stop_early"


def win_rate_gates(gates: Sequence[GateConfig]) -> list[GateConfig]:
    return [g for g in gates if g.metric == "judge.win_rate" and g.test in WIN_RATE_TESTS]


def check_stop_early(judge: JudgeConfig | None, gates: Sequence[GateConfig], file: str, policy: str) -> None:
    """A ConfigError unless stop_early has a win-rate gate to settle, each with a threshold inside (0, 1)."""
    if judge is None or judge.stop_early is None:
        return
    chosen = win_rate_gates(gates)
    if not chosen:
        raise ConfigError(file, CONFIG_FIELD, f"there is nothing to settle: the policy ({policy}) has no "
                          "judge.win_rate gate with test superiority, at_least or at_most; add one or drop stop_early")
    for gate in chosen:
        if gate.threshold is None or not 0.0 < gate.threshold < 1.0:
            raise ConfigError(file, CONFIG_FIELD, f"gate {gate.name!r} has threshold {gate.threshold}; a win rate "
                              "can only be settled against a threshold strictly between 0 and 1")


@dataclass(frozen=True)
class GateRule:
    gate: GateConfig
    rule: SequentialRule


def gate_rules(stop: StopEarly, gates: Sequence[GateConfig], items: int) -> list[GateRule]:
    """One rule per win-rate gate. superiority asks whether the candidate is better in general, the
    population the items are drawn from (as the gate's bootstrap CI does); at_least and at_most are
    about these items' own win rate, a sequence for sampling without replacement from the N items."""
    return [GateRule(g, SequentialRule(threshold=float(g.threshold or 0.5), alpha=stop.alpha, min_items=stop.min_items,
                                       population=None if g.test == "superiority" else items))
            for g in win_rate_gates(gates)]


@dataclass(frozen=True)
class JudgingPlan:
    order: list[int]
    """Pair indices in judging order: the canaries first, as built; then each item's pairs together,
    the items in judging_order(items, seed)."""
    spans: list[tuple[int, int]]
    """Each item's positions in `order` (start, end), in judging order."""


def judging_plan(pairs: Sequence[Pair], seed: int) -> JudgingPlan:
    order = [i for i, p in enumerate(pairs) if p.canary is not None]
    items: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(pairs):
        if p.canary is None:
            items.setdefault((p.suite.name, p.item.id), []).append(i)
    groups = list(items.values())
    spans = []
    for g in judging_order(len(groups), seed):
        spans.append((len(order), len(order) + len(groups[g])))
        order.extend(groups[g])
    return JudgingPlan(order, spans)


class Stopper:
    """Watches the judged prefix (in judging order) and says where to stop once every rule has settled."""

    def __init__(self, rules: Sequence[GateRule], spans: Sequence[tuple[int, int]], stop: StopEarly) -> None:
        self.rules, self.stop = list(rules), stop
        self._spans = list(spans)
        self._ends = [end for _, end in spans]
        self._scored: list[float] = []
        """Each complete, scored item's outcome, in judging order."""
        self._scored_items: list[int] = []
        """Which item (position in judging order) each of those is."""
        self._complete = 0
        """Items whose pairs are all judged (a prefix)."""
        self.cap: int | None = None
        """Once settled: the ordered pairs to keep (canaries, then the items up to the last settling one)."""
        self.calls = self.calls_saved = 0

    @property
    def settled(self) -> bool:
        return self.cap is not None

    @property
    def looked_at(self) -> int:
        """How far (pairs in judging order) the records may be written: the items looked at, and the
        canaries before them. Past that, an item may yet turn out to lie beyond where judging stops."""
        if self.cap is not None:
            return self.cap
        return self._spans[self._complete][0] if self._complete < len(self._spans) else self._ends[-1]

    def update(self, whole: int, record: Sequence[JudgmentRecord | None]) -> bool:
        """`whole`: length of the judged prefix in judging order; `record[k]`: the k-th ordered pair's record.
        True once every rule has settled (then `cap` says how many ordered pairs to keep)."""
        if self.settled:
            return True
        complete = bisect_right(self._ends, whole)
        # Look again once the complete items grew by 1% (each look is a pass over them all): where the
        # rule settles depends on the outcomes alone, so looking less often only lets a few more calls start.
        if complete - self._complete < max(1, self._complete // 100) and complete < len(self._ends):
            return False
        for item in range(self._complete, complete):
            start, end = self._spans[item]
            scores = [SCORE[r.preference] for r in record[start:end]
                      if r is not None and r.preference in SCORE]
            if scores:  # every pair failed or unparsed: no outcome, as the win rate leaves it out
                self._scored.append(sum(scores) / len(scores))
                self._scored_items.append(item)
        self._complete = complete
        stops = [int(rule.rule.settle(np.asarray(self._scored))[0][0]) if self._scored else 0 for rule in self.rules]
        if not self.rules or min(stops) == 0:
            return False
        self.cap = self._ends[self._scored_items[max(stops) - 1]]
        return True

    def account(self, calls: int, calls_saved: int) -> None:
        """The judge conversations the kept pairs needed, and those the rest needed that nobody made."""
        self.calls, self.calls_saved = calls, calls_saved

    def summary(self) -> SequentialSummary:
        """Where judging stopped and each gate's sequence there (or after the last item judged)."""
        items = len(self._spans)
        n_items = self._complete if self.cap is None else bisect_right(self._ends, self.cap)
        used = [s for s, item in zip(self._scored, self._scored_items) if item < n_items]
        gates = []
        for gate_rule in self.rules:
            d: StoppingDecision = gate_rule.rule.decide(used)
            outcome: Literal["above", "below"] | None = (
                None if d.outcome is None else "above" if d.outcome == "pass" else "below")
            gates.append(SequentialGate(gate=gate_rule.gate.name, test=gate_rule.gate.test,
                                        threshold=gate_rule.rule.threshold, population=gate_rule.rule.population,
                                        outcome=outcome, lower=d.lower, upper=d.upper, n=d.n))
        return SequentialSummary(items=items, judged_items=n_items, stopped_early=n_items < items, calls=self.calls,
                                 calls_saved=self.calls_saved, alpha=self.stop.alpha, min_items=self.stop.min_items,
                                 gates=gates)
