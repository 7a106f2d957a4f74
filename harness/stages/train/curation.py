"""Curation of SFT data: drop empty, too short or long, truncated, repetitive, refused (optionally)
and duplicate conversations, and count what each filter removed.

Pure Python, like data.py: it runs before any training, and its counts go into the run's report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from harness.config.training import CurationSettings
from harness.stages.train.data import Conversation

# Fixed order: cheap structural checks first, then content checks, duplicates
# last so that a duplicate of a dropped example does not count as a duplicate.
# A conversation is counted once, by the first filter that catches it.
FILTER_ORDER = ("empty_response", "too_short", "too_long", "truncated", "repetitive", "refusal",
                "exact_duplicate", "near_duplicate")

# Endings that close a sentence or a block: punctuation, quotes, brackets,
# a code fence (`), markdown emphasis (*), a colon before a list, a table row
# (|), an HTML tag (>) and CJK full stops. Anything else looks cut off.
_CLOSING = set(".!?\"')]}`*:|>") | set("。！？」』”’")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+\S")
_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can'?t|i cannot|i can not|"
                      r"i'?m (?:unable|not able)|i am (?:unable|not able)|i won'?t be able|as an ai|"
                      r"as a (?:large )?language model)(?!\w)")


@dataclass
class CurationResult:
    kept: list[Conversation]
    counts: dict[str, int]
    """Filter name -> conversations it removed; every name in FILTER_ORDER is present."""
    flagged_refusals: int
    """Refusals that reached the refusal step (dropped or not)."""
    total: int


def _answers(conv: Conversation) -> list[str]:
    return [turn["content"] for turn in conv if turn["role"] == "assistant"]


def is_truncated(text: str) -> bool:
    stripped = text.rstrip()
    if not stripped or stripped[-1] in _CLOSING:
        return False
    # Lists commonly end without a full stop; that is not a cut-off answer.
    return not _LIST_ITEM.match(stripped.rsplit("\n", 1)[-1])


def is_repetitive(text: str, min_ratio: float) -> bool:
    words = text.casefold().split()
    # Short answers repeat words naturally ("yes, yes"); only judge 8+ words.
    return len(words) >= 8 and len(set(words)) / len(words) < min_ratio


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text.strip().casefold().replace("\u2019", "'")))


def _normalise(text: str) -> str:
    no_punct = "".join(ch for ch in text.casefold() if not unicodedata.category(ch).startswith("P"))
    return " ".join(no_punct.split())


def _content_filter(conv: Conversation, settings: CurationSettings,
                    count_tokens: Callable[[str], int]) -> str | None:
    """The first content filter (in FILTER_ORDER) that removes the conversation, if any."""
    answers = _answers(conv)
    if any(len(a.strip()) < settings.min_response_chars for a in answers):
        return "empty_response"
    tokens = count_tokens("\n".join(turn["content"] for turn in conv))
    if tokens < settings.min_tokens:
        return "too_short"
    if tokens > settings.max_tokens:
        return "too_long"
    if settings.drop_truncated and any(is_truncated(a) for a in answers):
        return "truncated"
    if is_repetitive("\n".join(answers), settings.min_unique_word_ratio):
        return "repetitive"
    return None


def curate(conversations: list[Conversation], settings: CurationSettings,
           count_tokens: Callable[[str], int]) -> CurationResult:
    counts = dict.fromkeys(FILTER_ORDER, 0)
    kept: list[Conversation] = []
    flagged = 0  # refusals that reach their step, whether dropped or not
    seen_exact: set[tuple[tuple[str, str], ...]] = set()
    seen_instructions: set[str] = set()
    for conv in conversations:
        reason = _content_filter(conv, settings, count_tokens)
        if reason is None and any(is_refusal(a) for a in _answers(conv)):
            flagged += 1
            reason = "refusal" if settings.drop_refusals else None
        if reason is None and settings.drop_exact_duplicates:
            key = tuple((turn["role"], turn["content"]) for turn in conv)
            reason = "exact_duplicate" if key in seen_exact else None
            seen_exact.add(key)
        if reason is None and settings.drop_near_duplicates:
            instruction = _normalise(next((t["content"] for t in conv if t["role"] == "user"), ""))
            reason = "near_duplicate" if instruction in seen_instructions else None
            seen_instructions.add(instruction)
        if reason is None:
            kept.append(conv)
        else:
            counts[reason] += 1
    return CurationResult(kept, counts, flagged, len(conversations))
