"""Offline judges: no model, decided from the suite item's reference and rule checks.

reference: the answer that matches the item's reference wins. "Matches" is the
item's own reference checks (equals_reference, number_matches_reference) when
it has any, else the normalised reference contained in the answer as whole
words. Items without a reference are decided by the rules judge, and the
record says so.

rules: the answer that passes more of the item's checks wins.

Both: a non-answer (empty, or only the question repeated) never matches the
reference and loses to any real answer, however many checks it passes
vacuously ("no apology" holds for an empty string; "Calculate 60% of $100"
holds the reference $60).

Both are symmetric, so their two orders always agree; they are still recorded
in both orders like any judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.config.checks import normalize
from harness.config.suites import Suite, SuiteItem

REFERENCE_CHECKS = ("equals_reference", "number_matches_reference")
Side = Literal["base", "candidate", "tie"]


@dataclass(frozen=True)
class Decision:
    preference: Side
    decided_by: Literal["reference", "rules"]
    reason: str


def check_outcomes(suite: Suite, item: SuiteItem, text: str) -> dict[str, bool]:
    """Every check of the item on one answer, named as run_checks names them."""
    seen: dict[str, int] = {}
    outcomes = {}
    for check in suite.checks_for(item):
        seen[check.type] = seen.get(check.type, 0) + 1
        name = check.type if seen[check.type] == 1 else f"{check.type}#{seen[check.type]}"
        outcomes[name] = check.run(text, item.reference)[0]
    return outcomes


def _contains(text: str, phrase: str) -> bool:
    folded = " ".join(text.casefold().split())
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", folded) is not None


def non_answer(text: str, question: str) -> bool:
    return not normalize(text) or normalize(text) == normalize(question)


def _matches_reference(item: SuiteItem, text: str, outcomes: dict[str, bool]) -> bool:
    named = [n for n in outcomes if n.split("#")[0] in REFERENCE_CHECKS]
    if named:
        return all(outcomes[n] for n in named)
    return _contains(text, normalize(item.reference or ""))


def _no_answer_decision(question: str, base: str, cand: str,
                        judge: Literal["reference", "rules"]) -> Decision | None:
    """A non-answer loses to any real answer; None when both or neither answered."""
    silent_b, silent_c = non_answer(base, question), non_answer(cand, question)
    if silent_b == silent_c:
        return None
    return Decision("base" if silent_c else "candidate", judge,
                    f"the {'candidate' if silent_c else 'base'} gave no answer (empty, or the question repeated)")


def rules_decision(question: str, base: tuple[str, dict[str, bool]], cand: tuple[str, dict[str, bool]],
                   why: str = "") -> Decision:
    prefix = f"{why}; " if why else ""
    silent = _no_answer_decision(question, base[0], cand[0], "rules")
    if silent:
        return Decision(silent.preference, "rules", prefix + silent.reason)
    base_checks, cand_checks = base[1], cand[1]
    if not base_checks and not cand_checks:
        return Decision("tie", "rules", prefix + "item has no checks")
    b, c = sum(base_checks.values()), sum(cand_checks.values())
    side: Side = "candidate" if c > b else "base" if b > c else "tie"
    return Decision(side, "rules", f"{prefix}checks passed: base {b}/{len(base_checks)}, "
                    f"candidate {c}/{len(cand_checks)}")


def decide(kind: Literal["reference", "rules"], item: SuiteItem, question: str,
           base: tuple[str, dict[str, bool]], cand: tuple[str, dict[str, bool]]) -> Decision:
    """base and cand: (answer text, check outcomes of that answer)."""
    if kind == "rules":
        return rules_decision(question, base, cand)
    if item.reference is None or not normalize(item.reference):
        return rules_decision(question, base, cand, "item has no reference")
    silent = _no_answer_decision(question, base[0], cand[0], "reference")
    if silent:
        return silent
    b, c = _matches_reference(item, *base), _matches_reference(item, *cand)
    side: Side = "candidate" if c and not b else "base" if b and not c else "tie"
    said = {True: "matches", False: "does not match"}
    return Decision(side, "reference", f"base {said[b]} the reference; candidate {said[c]} it")
