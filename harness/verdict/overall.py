"""The verdict of a run of three or more checkpoints: each candidate has its own (its comparison with
the reference, gated as a two-checkpoint run is); the overall one follows the policy.

require all (the default): every candidate must pass. Any failure fails the run; otherwise an
inconclusive candidate makes it inconclusive.
require any: one passing candidate passes the run (a sweep that picks the best one). Otherwise an
inconclusive candidate makes it inconclusive, and else it fails.
A run whose candidates are all ungated is ungated.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.records.group_results import CandidateVerdict, GroupVerdict, Require

EXIT = {"pass": 0, "fail": 1, "inconclusive": 3, "ungated": 0}


def overall(candidates: Sequence[CandidateVerdict], require: Require) -> GroupVerdict:
    by = {o: [c.name for c in candidates if c.outcome == o] for o in EXIT}
    if not any(by[o] for o in ("pass", "fail", "inconclusive")):
        outcome, reason = "ungated", "no candidate has gates"
    elif require == "all":
        if by["fail"]:
            outcome, reason = "fail", f"failed: {', '.join(by['fail'])} (every candidate must pass)"
        elif by["inconclusive"]:
            outcome = "inconclusive"
            reason = f"inconclusive: {', '.join(by['inconclusive'])} (every candidate must pass)"
        else:
            outcome, reason = "pass", "every candidate passed"
    elif by["pass"]:
        outcome, reason = "pass", f"passed: {', '.join(by['pass'])} (one passing candidate is enough)"
    elif by["inconclusive"]:
        outcome, reason = "inconclusive", f"none passed; inconclusive: {', '.join(by['inconclusive'])}"
    else:
        outcome, reason = "fail", "no candidate passed"
    return GroupVerdict(outcome=outcome, exit_code=EXIT[outcome], reason=reason, require=require,
                        candidates=list(candidates))
