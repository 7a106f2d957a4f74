"""SFT training data: load alpaca / sharegpt / OpenAI-messages files, split (curation is curation.py).

Pure Python on purpose (no torch, no datasets): these checks run before any
training and in CI, and their counts go into the run's report. Everything is
normalised to OpenAI form, a list of {"role", "content"} dicts.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError

Conversation = list[dict[str, str]]
FormatName = Literal["auto", "alpaca", "sharegpt", "messages"]
FORMATS = ("alpaca", "sharegpt", "messages")
# The key that identifies each format. Detection looks only at keys (not at
# whether the row is valid), so a broken first row still fixes the format.
_FORMAT_KEYS = {"messages": "messages", "sharegpt": "conversations", "alpaca": "instruction"}
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
_GAP = re.compile(r"[\s,]*")


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int
    """1-based line the row starts on (also for pretty-printed .json lists)."""
    reason: str


@dataclass
class LoadedData:
    conversations: list[Conversation]
    bad_rows: list[BadRow]
    formats: dict[str, str]
    """File -> the format it was read as."""


class Bad(Exception):
    """A row that cannot be used; the message is the reason."""


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(line, row) pairs; a JSONL line that is not JSON becomes a Bad value."""
    file = str(path)
    if not path.is_file():
        raise ConfigError(file, None, "file not found")
    if path.suffix not in (".jsonl", ".json"):
        raise ConfigError(file, None, "expected a .jsonl or .json file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(file, None, "not UTF-8 text") from None
    rows = _json_list_rows(file, text) if path.suffix == ".json" else [
        # One broken line should not cost the whole file; it counts against max_bad_share.
        # split("\n"), not splitlines(): JSON strings may hold a raw U+2028.
        (n, _loads_or_bad(line)) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not rows:
        raise ConfigError(file, None, "file has no rows")
    return rows


def _loads_or_bad(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return Bad(f"invalid JSON ({exc.msg})")


def _json_list_rows(file: str, text: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(file, f"line {exc.lineno}", f"invalid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise ConfigError(file, None, "expected a JSON list of rows")
    # Re-scan the (valid) text for where each element starts, so that bad rows
    # of a pretty-printed list are named by line, like JSONL rows.
    decoder, pos, last, line, rows = json.JSONDecoder(), text.index("[") + 1, 0, 1, []
    for item in data:
        pos = _GAP.match(text, pos).end()  # type: ignore[union-attr]  # always matches
        line, last = line + text.count("\n", last, pos), pos
        rows.append((line, item))
        pos = decoder.raw_decode(text, pos)[1]
    return rows


def _text(obj: dict[str, Any], key: str, where: str = "", optional: bool = False) -> str:
    value = obj.get(key)
    if value is None and optional:
        return ""
    if key not in obj:
        raise Bad(f"missing key '{where}{key}'")
    if not isinstance(value, str):
        raise Bad(f"'{where}{key}' must be a string, not {type(value).__name__}")
    return value


def _alpaca(row: dict[str, Any]) -> Conversation:
    instruction, output = _text(row, "instruction"), _text(row, "output")
    extra, system = _text(row, "input", optional=True), _text(row, "system", optional=True)
    head = [{"role": "system", "content": system}] if system else []
    user = instruction + ("\n\n" + extra if extra else "")
    return head + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def turns(row: dict[str, Any], key: str, role_key: str, text_key: str, roles: dict[str, str]) -> Conversation:
    turns = row.get(key)
    if not isinstance(turns, list):
        raise Bad(f"'{key}' must be a list, not {type(turns).__name__}" if key in row else f"missing key '{key}'")
    out: Conversation = []
    for index, turn in enumerate(turns):
        where = f"{key}[{index}]."
        if not isinstance(turn, dict):
            raise Bad(f"'{key}[{index}]' must be an object")
        role = _text(turn, role_key, where)
        if role not in roles:
            raise Bad(f"'{where}{role_key}' is {role!r}; expected one of: {', '.join(roles)}")
        out.append({"role": roles[role], "content": _text(turn, text_key, where)})
    return out


def check_roles(conv: Conversation) -> None:
    """Optional leading system, then user/assistant alternating, ending with the assistant."""
    offset = 1 if conv and conv[0]["role"] == "system" else 0
    body = conv[offset:]
    if not any(turn["role"] == "assistant" for turn in body):
        raise Bad("no assistant turn")
    for index, turn in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn["role"] != expected:
            raise Bad(f"roles must alternate user/assistant after an optional system turn "
                       f"(turn {index + offset + 1} is {turn['role']!r}, expected {expected!r})")
    if body[-1]["role"] != "assistant":
        raise Bad("last turn is not from the assistant")


def _parse(row: Any, fmt: str) -> Conversation:
    if isinstance(row, Bad):
        raise row
    if not isinstance(row, dict):
        raise Bad(f"expected a JSON object, not {type(row).__name__}")
    conv = (_alpaca(row) if fmt == "alpaca" else
            turns(row, "conversations", "from", "value", _SHAREGPT_ROLES) if fmt == "sharegpt" else
            turns(row, "messages", "role", "content", OPENAI_ROLES))
    check_roles(conv)
    return conv


def _keyed_format(row: Any) -> str | None:
    return next((f for f, key in _FORMAT_KEYS.items() if key in row), None) if isinstance(row, dict) else None


def _detect(file: str, rows: list[tuple[int, Any]]) -> tuple[str, int]:
    """The format of the first row that has a format's key, and that row's line."""
    found = next(((fmt, line) for line, row in rows if (fmt := _keyed_format(row))), None)
    if found is not None:
        return found
    raise ConfigError(file, None, "unknown format: no row has 'instruction' (alpaca), "
                                  "'conversations' (sharegpt) or 'messages' (messages)")


def load_conversations(paths: list[Path], fmt: FormatName = "auto",
                       max_bad_share: float = 0.05) -> LoadedData:
    """Read every row of every file; bad rows are collected, too many is an error."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(None, "format", f"unknown format {fmt!r}; expected auto, {', '.join(FORMATS)}")
    if not paths:
        raise ConfigError(None, None, "no training data files given")
    data = LoadedData([], [], {})
    total = 0
    for path in paths:
        file, rows = str(path), read_rows(path)
        file_fmt, first_line = (fmt, 0) if fmt != "auto" else _detect(file, rows)
        data.formats[file] = file_fmt
        for line, row in rows:
            total += 1
            other = _keyed_format(row)
            # With an explicit format a foreign row is just a bad row; in auto mode
            # a second format in one file is almost surely two files pasted together.
            if fmt == "auto" and other is not None and other != file_fmt:
                raise ConfigError(file, f"line {line}", f"row is {other} but line {first_line} is "
                                                        f"{file_fmt}; use one format per file")
            try:
                data.conversations.append(_parse(row, file_fmt))
            except Bad as exc:
                data.bad_rows.append(BadRow(file, line, str(exc)))
    check_bad_share(data.bad_rows, data.formats, total, max_bad_share)
    return data


def check_bad_share(bad_rows: list[BadRow], formats: dict[str, str], total: int, max_bad_share: float) -> None:
    """A ConfigError naming the first bad row when more than max_bad_share of the rows are bad."""
    bad = len(bad_rows)
    # A ratio, not bad <= share * total: 29 / 100 == 0.29 exactly, 0.29 * 100 is not 29.
    if bad == 0 or (bad < total and bad / total <= max_bad_share):
        return
    first = bad_rows[0]
    label = " or ".join(sorted(set(formats.values())))
    tail = "no row is usable" if bad == total else f"at most {max_bad_share * 100:g}% may be"
    raise ConfigError(first.file, f"line {first.line}", f"{bad} of {total} rows are not valid {label} "
                                                        f"(first: line {first.line}: {first.reason}); {tail}")


def split(conversations: list[Conversation], validation_share: float,
          seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """(train, validation), shuffled with random.Random(seed) so reruns match."""
    field = "train.validation_share"
    if not 0.0 <= validation_share < 1.0:
        raise ConfigError(None, field, f"must be at least 0 and below 1 (got {validation_share:g})")
    n = len(conversations)
    n_val = int(n * validation_share + 0.5)
    if validation_share > 0 and n >= 2:
        n_val = max(1, n_val)  # a validation share the user asked for should never silently be empty
    if n - n_val < 1:
        raise ConfigError(None, field, f"a validation share of {validation_share:g} of {n} "
                                       "conversation(s) leaves no training data")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [conversations[i] for i in order[n_val:]], [conversations[i] for i in order[:n_val]]
