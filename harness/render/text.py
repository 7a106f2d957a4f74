"""Untrusted text (model answers, judge reasons) made inert wherever the harness shows it.

Two hazards: markup and control characters.

- Markup: markdown and HTML in an answer must not become links, images or tags in
  summary.md (which CI pages render) or in the report. Every ASCII punctuation character is
  backslash-escaped, which CommonMark defines as "show this character literally", so no
  emphasis, link, heading, list, code, LaTeX (`$`), colour directive (`:red[...]`), emoji or
  icon shortcode, entity or tag can come from an answer. GFM still links bare URLs, `www.` names
  and e-mail addresses found in plain text (escapes do not stop it), so those are broken with an
  invisible word joiner.
- Control characters: ANSI escape sequences could recolour or rewrite a terminal, and they are
  invalid in XML. They are shown as visible `\\xNN` escapes instead.
"""

from __future__ import annotations

import re
import string

_PUNCT = frozenset(string.punctuation)
_WORD_JOINER = "\u2060"
# What GFM's autolink-literal extension looks for: scheme separators, www. and e-mail @.
_AUTOLINK = re.compile(r"(:)(//)|(www)(\.)|()(@)", re.IGNORECASE)
_LEADING_SPACE = re.compile(r"^[ \t]+", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """Control characters (ESC, BEL, NUL, C1, ...) as visible `\\xNN`; newlines and tabs stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape_markdown(text: str) -> str:
    """Text that markdown shows exactly as written (line breaks kept), control characters visible."""
    text = _AUTOLINK.sub(lambda m: _WORD_JOINER.join(g for g in m.groups() if g is not None), inert(text))
    # Leading spaces would start a code block or be dropped; keep the indentation visible instead.
    text = _LEADING_SPACE.sub(lambda m: "\u00a0" * len(m.group().expandtabs(4)), text)
    escaped = "".join("\\" + ch if ch in _PUNCT else ch for ch in text)
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def markdown_cell(text: str, limit: int = 160) -> str:
    """One table cell of summary.md: on one line, cut at `limit` characters, inert."""
    flat = " ".join(text.split())
    cut = (flat[:limit] + "…") if len(flat) > limit else flat
    return escape_markdown(cut) if cut else "(empty)"
