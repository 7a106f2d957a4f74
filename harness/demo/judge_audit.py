"""Audit a judge checkpoint on held-apart world pairs: is it right, and can it be trusted?

Each audit pair (judge_data.audit_pairs: held-out questions, a fixed number per rule and per
canary kind) is put to the judge in both orders, greedily, through the project's transformers
engine with the judge definition's own sampling settings, as the stage would ask a local engine.
The replies are parsed by the stage's strict parser and scored against the world's truth:

- parse rate: replies the parser accepts (first try; the stage would re-ask the others once);
- accuracy and Cohen's kappa: each reply's verdict against the true verdict for that order
  (an unparsed reply is wrong, its own category for kappa); pair accuracy: the stage's combination
  (a side wins only when both orders pick it, otherwise a tie) against the truth;
- swap consistency: pairs whose two parsed verdicts name the same answer after mapping back;
- position bias: of the A/B verdicts in the inconsistent pairs, the share that says "A";
- length bias: how often the longer answer is picked where lengths differ, beside how often it is
  truly better, and how often a longer answer is picked where the truth is a tie;
- canary resistance, per kind: pairs the canary does not win (as the stage combines them), and
  replies that pick the real answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.demo import judge_data
from harness.demo.judge_data import JudgePair, Verdict
from harness.stages.judge.prompt import parse_reply
from harness.verdict.gold import cohen_kappa

UNPARSED = "unparsed"


@dataclass(frozen=True)
class Audit:
    pairs: int
    calls: int
    parse_rate: float
    accuracy: float
    kappa: float | None
    """None where chance agreement is already certain (verdict.gold.cohen_kappa)."""
    pair_accuracy: float
    swap_consistency: float
    """Of the pairs with both replies parsed."""
    position_bias: float | None
    """Share of "A" among the A/B verdicts of inconsistent pairs; None when there are none."""
    inconsistent: int
    longer_picked: float
    """Replies picking the longer answer, of pairs whose answers differ in length (canaries included)."""
    longer_better: float
    """The truth's rate for the same replies: how often the longer answer is the better one."""
    longer_picked_in_ties: float
    """Replies picking the longer answer where the truth is a tie and the lengths differ (ideal 0)."""
    by_rule: dict[str, float] = field(default_factory=dict)
    """Reply accuracy per rule (correct, plain, tie, canary:KIND)."""
    canary_never_wins: dict[str, float] = field(default_factory=dict)
    """Per canary kind: pairs where the stage would not let the canary win."""
    canary_loses: dict[str, float] = field(default_factory=dict)
    """Per canary kind: replies that pick the real answer."""


def judge_replies(model_dir: Path, examples: Sequence[judge_data.JudgeExample], batch_size: int = 32) -> list[str]:
    """Greedy replies of the judge checkpoint through the project's transformers engine (the chat template
    in the checkpoint renders the messages; the definition's temperature and max_tokens)."""
    from harness.config.engine import EngineConfig
    from harness.config.schema import CheckpointConfig
    from harness.config.suites import Message
    from harness.engines import open_backend
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.records.cache import Cache
    from harness.stages.judge.llm import sampling_of

    config = CheckpointConfig(name="demo-judge", model=str(model_dir), backend="transformers",
                              engine=EngineConfig(dtype="float32", batch_size=batch_size))
    with tempfile.TemporaryDirectory(prefix="judge-audit-") as tmp:
        checkpoint = resolve_checkpoint(config, "demo-judge", Cache(Path(tmp) / "cache.sqlite"))
    conversations = [tuple(Message(role=r, content=c) for r, c in e.messages) for e in examples]
    requests = [request for request, _ in checkpoint.render_many(conversations, seed=0)]
    backend = open_backend(checkpoint)
    try:
        completions = backend.generate(requests, sampling_of(judge_data.definition(), 0))
    finally:
        backend.close()
    return [c.text for c in completions]


def audit(model_dir: Path, seed: int = 1, per_rule: int = 40) -> Audit:
    """Put the held-apart pairs to the judge in both orders and score the replies."""
    pairs = judge_data.audit_pairs(seed, per_rule)
    examples = judge_data.examples(pairs, seed)  # pair i: examples 2i (first as A) and 2i + 1 (swapped)
    replies = judge_replies(model_dir, examples)
    verdicts = [_verdict(text) for text in replies]
    return score(pairs, verdicts[0::2], verdicts[1::2])


def _verdict(text: str) -> str:
    parsed = parse_reply(text, "pairwise")
    return parsed.verdict if parsed is not None and parsed.verdict is not None else UNPARSED


def _side(verdict: str, swapped: bool) -> str:
    """A reply's verdict as the pair's side: first, second, tie (or unparsed)."""
    if verdict in ("tie", UNPARSED):
        return verdict
    return "first" if (verdict == "A") != swapped else "second"


def score(pairs: Sequence[JudgePair], ab: Sequence[str], ba: Sequence[str]) -> Audit:
    """Pure: the audit's numbers from each pair's verdict with its first answer as A (ab) and swapped (ba)."""
    truth_calls: list[str] = []
    judged_calls: list[str] = []
    by_rule: dict[str, list[bool]] = {}
    pair_right = consistent = both_parsed = 0
    bias: list[str] = []
    longer: list[tuple[bool, bool]] = []  # (judge picked the longer, the longer is better)
    longer_in_ties: list[bool] = []
    never_wins: dict[str, list[bool]] = {}
    loses: dict[str, list[bool]] = {}
    for pair, v_ab, v_ba in zip(pairs, ab, ba):
        sides = (_side(v_ab, False), _side(v_ba, True))
        for swapped, verdict in ((False, v_ab), (True, v_ba)):
            want: Verdict = judge_data.verdict_of(pair, swapped)
            truth_calls.append(want)
            judged_calls.append(verdict)
            by_rule.setdefault(pair.rule, []).append(verdict == want)
        combined = sides[0] if sides[0] == sides[1] and sides[0] != UNPARSED else "tie"
        pair_right += combined == pair.truth
        if UNPARSED not in sides:
            both_parsed += 1
            if sides[0] == sides[1]:
                consistent += 1
            else:
                bias += [v for v in (v_ab, v_ba) if v in ("A", "B")]
        words = (len(pair.first.split()), len(pair.second.split()))
        if words[0] != words[1]:
            long_side = "first" if words[0] > words[1] else "second"
            for side in sides:
                longer.append((side == long_side, pair.truth == long_side))
                if pair.truth == "tie":
                    longer_in_ties.append(side == long_side)
        if pair.canary is not None:
            canary_side = "second" if pair.truth == "first" else "first"
            never_wins.setdefault(pair.canary, []).append(combined != canary_side)
            loses.setdefault(pair.canary, []).extend(side == pair.truth for side in sides)
    calls = len(judged_calls)
    return Audit(
        pairs=len(pairs), calls=calls,
        parse_rate=_share([v != UNPARSED for v in judged_calls]),
        accuracy=_share([t == j for t, j in zip(truth_calls, judged_calls)]),
        kappa=None if (kappa := cohen_kappa(truth_calls, judged_calls)) is None else round(kappa, 4),
        pair_accuracy=round(pair_right / len(pairs), 4),
        swap_consistency=round(consistent / both_parsed, 4) if both_parsed else 0.0,
        position_bias=_share([v == "A" for v in bias]) if bias else None, inconsistent=both_parsed - consistent,
        longer_picked=_share([p for p, _ in longer]), longer_better=_share([b for _, b in longer]),
        longer_picked_in_ties=_share(longer_in_ties),
        by_rule={k: _share(v) for k, v in sorted(by_rule.items())},
        canary_never_wins={k: _share(v) for k, v in sorted(never_wins.items())},
        canary_loses={k: _share(v) for k, v in sorted(loses.items())})


def _share(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def format_audit(a: Audit) -> str:
    bias = "n/a" if a.position_bias is None else f"{a.position_bias:.0%} A"
    lines = [
        f"audit: {a.pairs} held-apart pairs, {a.calls} judge calls (both orders, greedy)",
        f"  parse rate        {a.parse_rate:.1%}",
        f"  accuracy          {a.accuracy:.1%} of replies, {a.pair_accuracy:.1%} of pairs (both orders combined)",
        f"  Cohen's kappa     {'n/a' if a.kappa is None else f'{a.kappa:.3f}'}",
        f"  swap consistency  {a.swap_consistency:.1%}  ({a.inconsistent} inconsistent pairs)",
        f"  position bias     {bias} among the inconsistent pairs' verdicts",
        f"  length bias       longer answer picked {a.longer_picked:.1%} (truly better {a.longer_better:.1%}); "
        f"in true ties {a.longer_picked_in_ties:.1%}",
        "  by rule           " + ", ".join(f"{k} {v:.0%}" for k, v in a.by_rule.items()),
        "  canaries          " + ", ".join(f"{k}: never wins {a.canary_never_wins[k]:.0%}, loses "
                                           f"{a.canary_loses[k]:.0%} of replies" for k in a.canary_never_wins),
    ]
    return "\n".join(lines)
