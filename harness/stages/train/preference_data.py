"""DPO training data: preference pairs (a prompt, a chosen and a rejected answer) in the common forms.

- explicit prompt: `{"prompt": ..., "chosen": ..., "rejected": ...}`, each a string or a list of
  OpenAI messages (TRL's standard and conversational forms; `harness export --format preferences`
  writes the conversational one). A string prompt is one user turn, a string answer one assistant turn.
- implicit prompt: `{"chosen": [messages], "rejected": [messages]}`, two whole conversations that
  share everything but their last assistant turn (Anthropic HH's layout, as messages).

Everything is normalised to the conversational form. As with SFT data (data.py), a row that cannot be
used is a bad row named by file and line, and too many of them stop the run before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.stages.train.data import OPENAI_ROLES, Bad, BadRow, Conversation, check_bad_share, read_rows, turns

FORMATS = ("preference", "preference-implicit")


@dataclass(frozen=True)
class PreferencePair:
    prompt: Conversation
    """Optional system turn, then user/assistant turns alternating, ending with the user."""
    chosen: Conversation
    rejected: Conversation
    """One assistant turn each."""

    def row(self) -> dict[str, Conversation]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


@dataclass
class LoadedPreferences:
    pairs: list[PreferencePair] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)


def _messages(row: dict[str, Any], key: str, single_role: str) -> Conversation:
    value = row.get(key)
    if isinstance(value, str):
        return [{"role": single_role, "content": value}]
    if key not in row:
        raise Bad(f"missing key '{key}'")
    return turns(row, key, "role", "content", OPENAI_ROLES)


def _check_prompt(prompt: Conversation) -> None:
    offset = 1 if prompt and prompt[0]["role"] == "system" else 0
    body = prompt[offset:]
    if not body or body[-1]["role"] != "user":
        raise Bad("the prompt must end with a user turn")
    for index, turn in enumerate(body):
        if turn["role"] != ("user" if index % 2 == 0 else "assistant"):
            raise Bad(f"prompt roles must alternate user/assistant after an optional system turn (turn "
                      f"{index + offset + 1} is {turn['role']!r})")


def _answer(messages: Conversation, key: str) -> Conversation:
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise Bad(f"'{key}' must be one assistant answer (a string, or one assistant message)")
    if not messages[0]["content"].strip():
        raise Bad(f"'{key}' is empty")
    return messages


def _explicit(row: dict[str, Any]) -> PreferencePair:
    prompt = _messages(row, "prompt", "user")
    _check_prompt(prompt)
    return PreferencePair(prompt, _answer(_messages(row, "chosen", "assistant"), "chosen"),
                          _answer(_messages(row, "rejected", "assistant"), "rejected"))


def _implicit(row: dict[str, Any]) -> PreferencePair:
    chosen, rejected = (turns(row, key, "role", "content", OPENAI_ROLES) for key in ("chosen", "rejected"))
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or len(chosen) != len(rejected):
        raise Bad("'chosen' and 'rejected' must be the same conversation up to their last turn")
    _check_prompt(chosen[:-1])
    return PreferencePair(chosen[:-1], _answer(chosen[-1:], "chosen"), _answer(rejected[-1:], "rejected"))


def parse_pair(row: Any) -> tuple[PreferencePair, str]:
    """One row -> (the pair, its form); Bad with the reason when it cannot be used."""
    if isinstance(row, Bad):
        raise row
    if not isinstance(row, dict):
        raise Bad(f"expected a JSON object, not {type(row).__name__}")
    if "messages" in row or "conversations" in row or "instruction" in row:
        raise Bad("an SFT row (messages, conversations or instruction); DPO needs prompt, chosen and rejected")
    pair, form = (_explicit(row), FORMATS[0]) if "prompt" in row else (_implicit(row), FORMATS[1])
    if pair.chosen == pair.rejected:
        raise Bad("'chosen' and 'rejected' are the same answer")
    return pair, form


def load_preferences(paths: list[Path], max_bad_share: float = 0.05) -> LoadedPreferences:
    """Read every row of every file; bad rows are collected, too many is an error."""
    data = LoadedPreferences()
    total = 0
    for path in paths:
        file = str(path)
        for line, row in read_rows(path):
            total += 1
            try:
                pair, form = parse_pair(row)
            except Bad as exc:
                data.bad_rows.append(BadRow(file, line, str(exc)))
                continue
            data.pairs.append(pair)
            data.formats.setdefault(file, form)
        data.formats.setdefault(file, FORMATS[0])
    check_bad_share(data.bad_rows, data.formats, total, max_bad_share)
    return data
