"""Word diffs of two answers, as markdown that shows model text only as text.

Model answers and judge reasons are untrusted. The report renders them with
Streamlit's markdown (which never renders raw HTML unless asked), escaped by
harness.render.text.escape_markdown (the same escaping summary.md uses). The
exact bytes are shown elsewhere with st.code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from harness.render.text import escape_markdown

__all__ = ["Segment", "diff_markdown", "escape_markdown", "word_diff"]

Op = Literal["equal", "delete", "insert"]
Side = Literal["base", "candidate"]

_TOKEN = re.compile(r"\s*\S+\s*|\s+")
_HIGHLIGHT: dict[Side, tuple[Op, str]] = {"base": ("delete", "red-background"),
                                          "candidate": ("insert", "green-background")}


@dataclass(frozen=True)
class Segment:
    op: Op
    base: str
    """The base's text of this run of words ("" for an insertion)."""
    candidate: str
    """The candidate's text ("" for a deletion); equal runs keep each side's own whitespace."""

    def text(self, side: Side) -> str:
        return self.base if side == "base" else self.candidate


def word_diff(base: str, candidate: str) -> list[Segment]:
    """Segments of both texts: equal runs, words only in the base, words only in the candidate.

    Words are compared without their surrounding whitespace, so a changed line
    break alone does not mark a word as changed.
    """
    a, b = _TOKEN.findall(base), _TOKEN.findall(candidate)
    matcher = SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(Segment("equal", "".join(a[i1:i2]), "".join(b[j1:j2])))
            continue
        if i2 > i1:
            segments.append(Segment("delete", "".join(a[i1:i2]), ""))
        if j2 > j1:
            segments.append(Segment("insert", "", "".join(b[j1:j2])))
    return segments


def _highlight(text: str, directive: str) -> str:
    """Wrap each line of a changed run separately: a directive cannot span a line break."""
    lines = text.replace("\r\n", "\n").split("\n")
    wrapped = [f":{directive}[{escape_markdown(line)}]" if line.strip() else escape_markdown(line) for line in lines]
    return "  \n".join(wrapped)


def diff_markdown(segments: list[Segment], side: Side) -> str:
    """One side of a word diff as safe markdown, its own changed words highlighted."""
    changed, directive = _HIGHLIGHT[side]
    parts = [escape_markdown(s.text(side)) if s.op == "equal" else _highlight(s.text(side), directive)
             for s in segments if s.op in ("equal", changed)]
    return "".join(parts) or "*(empty answer)*"
