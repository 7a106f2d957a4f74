"""SFT data: the three formats, bad rows and their threshold, curation filters, split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.config.training import CurationSettings
from harness.errors import ConfigError
from harness.stages.train.curation import FILTER_ORDER, curate
from harness.stages.train.data import BadRow, Conversation, load_conversations, split


def words(text: str) -> int:
    return len(text.split())


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def conv(*turns: tuple[str, str]) -> Conversation:
    return [{"role": role, "content": content} for role, content in turns]


def qa(question: str, answer: str) -> Conversation:
    return conv(("user", question), ("assistant", answer))


SYSTEM = "You are a careful accountant."
SINGLE = conv(("system", SYSTEM), ("user", "Sum these.\n\n2 and 3"), ("assistant", "It is 5."))
MULTI = conv(("system", SYSTEM), ("user", "Hi."), ("assistant", "Hello!"), ("user", "Sum 2 and 3."),
             ("assistant", "It is 5."))


def sharegpt(c: Conversation, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {"system": "system", "user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": names[t["role"]], "value": t["content"]} for t in c]}


def messages(c: Conversation) -> dict[str, Any]:
    return {"messages": c}


# ---------------------------------------------------------------- loading

def test_each_format_loads_to_the_same_conversations(tmp_path: Path) -> None:
    alpaca = write_jsonl(tmp_path / "a.jsonl", [
        {"system": SYSTEM, "instruction": "Sum these.", "input": "2 and 3", "output": "It is 5."},
        {"instruction": "Hi.", "input": "", "output": "Hello!"},
        {"instruction": "Hi.", "output": "Hello!"},
    ])
    plain_names = {"system": "system", "user": "user", "assistant": "assistant"}
    share = write_jsonl(tmp_path / "s.jsonl", [sharegpt(SINGLE), sharegpt(MULTI), sharegpt(MULTI, plain_names)])
    openai = write_jsonl(tmp_path / "m.jsonl", [messages(SINGLE), messages(MULTI)])
    assert load_conversations([alpaca]).conversations == [SINGLE, qa("Hi.", "Hello!"), qa("Hi.", "Hello!")]
    assert load_conversations([share]).conversations == [SINGLE, MULTI, MULTI]
    assert load_conversations([openai], fmt="messages").conversations == [SINGLE, MULTI]


def test_auto_detects_per_file_and_json_lists_load(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Hi.", "output": "Hello!"}])
    s = tmp_path / "s.json"
    s.write_text(json.dumps([sharegpt(SINGLE), sharegpt(MULTI)], indent=2))
    m = tmp_path / "m.json"
    m.write_text(json.dumps([messages(MULTI)]))
    data = load_conversations([a, s, m])
    assert data.formats == {str(a): "alpaca", str(s): "sharegpt", str(m): "messages"}
    assert data.conversations == [qa("Hi.", "Hello!"), SINGLE, MULTI, MULTI]
    assert data.bad_rows == []


def test_first_rows_without_format_keys_do_not_decide_the_format(tmp_path: Path) -> None:
    rows: list[Any] = ["{oops", {"id": 1}] + [messages(SINGLE)] * 40
    data = load_conversations([write_jsonl(tmp_path / "m.jsonl", rows)])
    assert data.formats[str(tmp_path / "m.jsonl")] == "messages"
    assert [(b.line, b.reason) for b in data.bad_rows] == [
        (1, "invalid JSON (Expecting property name enclosed in double quotes)"),
        (2, "missing key 'messages'")]


GOOD = messages(qa("Hi.", "Hello!"))


@pytest.mark.parametrize(("row", "reason"), [
    ("{not json", "invalid JSON (Expecting property name enclosed in double quotes)"),
    ({"messages": "hi"}, "'messages' must be a list, not str"),
    ({"messages": ["hi"]}, "'messages[0]' must be an object"),
    ({"messages": [{"role": "user"}]}, "missing key 'messages[0].content'"),
    ({"messages": [{"role": "user", "content": 3}]}, "'messages[0].content' must be a string, not int"),
    ({"messages": [{"role": "bot", "content": "x"}]},
     "'messages[0].role' is 'bot'; expected one of: system, user, assistant"),
    (messages(conv(("system", "s"), ("user", "q"))), "no assistant turn"),
    (messages(conv(("user", "q"), ("assistant", "a"), ("user", "q2"))), "last turn is not from the assistant"),
    (messages(conv(("assistant", "a"),)),
     "roles must alternate user/assistant after an optional system turn (turn 1 is 'assistant', expected 'user')"),
    (messages(conv(("system", "s"), ("user", "q"), ("user", "q"), ("assistant", "a"))),
     "roles must alternate user/assistant after an optional system turn (turn 3 is 'user', expected 'assistant')"),
    (messages(conv(("user", "q"), ("system", "s"), ("assistant", "a"))),
     "roles must alternate user/assistant after an optional system turn (turn 2 is 'system', expected 'assistant')"),
])
def test_bad_rows_under_the_threshold_are_reported(tmp_path: Path, row: Any, reason: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 10 + [row] + [GOOD] * 9)
    data = load_conversations([path], max_bad_share=0.05)
    assert data.bad_rows == [BadRow(str(path), 11, reason)]
    assert len(data.conversations) == 19


@pytest.mark.parametrize(("fmt", "row", "reason"), [
    ("alpaca", {"instruction": "q"}, "missing key 'output'"),
    ("alpaca", {"instruction": "q", "output": "a", "input": 5}, "'input' must be a string, not int"),
    ("sharegpt", {"conversations": [{"from": "bot", "value": "x"}]},
     "'conversations[0].from' is 'bot'; expected one of: system, human, user, gpt, assistant"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "x"}]}, "no assistant turn"),
])
def test_bad_rows_of_other_formats(tmp_path: Path, fmt: str, row: Any, reason: str) -> None:
    good = {"alpaca": {"instruction": "q", "output": "a"}, "sharegpt": sharegpt(qa("q", "a"))}[fmt]
    path = write_jsonl(tmp_path / "d.jsonl", [good] + [row] + [good] * 18)
    assert load_conversations([path]).bad_rows == [BadRow(str(path), 2, reason)]


def test_too_many_bad_rows_is_an_error_naming_the_first(tmp_path: Path) -> None:
    share = sharegpt(qa("Hi.", "Hello!"))
    bad = {"conversations": [{"from": "human", "value": "Hi."}]}
    rows = [share, share, bad] + [share] * 88 + [bad] * 9
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(ConfigError) as info:
        load_conversations([path])
    assert str(info.value) == (f"{path}: line 3: 10 of 100 rows are not valid sharegpt "
                               "(first: line 3: no assistant turn); at most 5% may be")
    # Exactly at the share is still fine; the threshold is inclusive.
    assert len(load_conversations([path], max_bad_share=0.1).bad_rows) == 10


def test_threshold_counts_rows_of_all_files(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [GOOD] * 99)
    b = write_jsonl(tmp_path / "b.jsonl", [GOOD, "[1"])
    assert load_conversations([a, b]).bad_rows == [BadRow(str(b), 2, "invalid JSON (Expecting ',' delimiter)")]


def test_threshold_is_compared_as_a_ratio(tmp_path: Path) -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; 29 bad rows of 100 must still pass at 29%.
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 71 + ["{"] * 29)
    assert len(load_conversations([path], max_bad_share=0.29).bad_rows) == 29


def test_all_rows_bad_is_an_error_whatever_the_threshold(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q"}, {"instruction": "q"}])
    with pytest.raises(ConfigError) as info:
        load_conversations([path], max_bad_share=1.0)
    assert str(info.value) == (f"{path}: line 1: 2 of 2 rows are not valid alpaca "
                               "(first: line 1: missing key 'output'); no row is usable")


def test_bad_rows_of_a_pretty_json_list_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, {"messages": []}, GOOD], indent=2))
    text = path.read_text().split("\n")
    expected = next(n for n, line in enumerate(text, start=1) if '"messages": []' in line) - 1
    with pytest.raises(ConfigError, match=rf"d.json: line {expected}: 1 of 3 rows .*no assistant turn"):
        load_conversations([path])


def test_a_file_mixing_formats_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD, {"instruction": "q", "output": "a"}])
    with pytest.raises(ConfigError) as info:
        load_conversations([path])
    assert str(info.value) == f"{path}: line 3: row is alpaca but line 1 is messages; use one format per file"
    # Named explicitly, the foreign row is one more bad row.
    data = load_conversations([path], fmt="messages", max_bad_share=0.5)
    assert data.bad_rows == [BadRow(str(path), 3, "missing key 'messages'")]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("none.jsonl", None, "file not found"),
    ("d.jsonl", "\n\n", "file has no rows"),
    ("d.json", "[]", "file has no rows"),
    ("d.json", '{"messages": []}', "expected a JSON list of rows"),
    ("d.json", "[\n{,", "line 2: invalid JSON (Expecting property name enclosed in double quotes)"),
    ("d.csv", "a,b\n", "expected a .jsonl or .json file"),
    ("d.jsonl", '{"prompt": "q", "completion": "a"}\n', "unknown format: no row has 'instruction'"),
])
def test_unusable_files(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_conversations([path])
    assert str(info.value).startswith(f"{path}: {message}")


def test_unknown_format_name() -> None:
    with pytest.raises(ConfigError, match="format: unknown format 'csv'"):
        load_conversations([Path("x.jsonl")], fmt="csv")  # type: ignore[arg-type]


# ---------------------------------------------------------------- curation

CLEAN = [qa(f"Question number {i} about ledgers?", f"Answer {i}: debit the cash account and credit revenue.")
         for i in range(5)]


@pytest.mark.parametrize(("name", "example"), [
    ("empty_response", qa("Explain double entry bookkeeping please.", "   ")),
    ("too_short", qa("Hi", "Hello.")),
    ("too_long", qa("Explain accruals.", " ".join(f"w{i}" for i in range(60)) + ".")),
    ("truncated", qa("Explain accruals.", "Accruals record revenue when it is earned and")),
    ("repetitive", qa("Explain accruals.", "debit credit " * 10 + "done.")),
    ("refusal", qa("Explain accruals.", "I'm sorry, but I can't help with that.")),
    ("exact_duplicate", CLEAN[2]),
    ("near_duplicate", qa("  QUESTION number 3, about ledgers ", "A different but complete answer.")),
])
def test_each_filter_removes_its_example(name: str, example: Conversation) -> None:
    settings = CurationSettings(min_tokens=3, max_tokens=50, drop_refusals=True)
    result = curate([*CLEAN, example], settings, words)
    assert result.kept == CLEAN
    assert result.counts == {f: int(f == name) for f in FILTER_ORDER}
    assert result.total == 6


def test_clean_examples_pass_every_filter() -> None:
    endings = ["It is 5.", "Use this:\n```\nx = 1\n```", "Steps:\n- open the ledger\n- post the entry",
               "1. debit cash\n2. credit revenue", "He said \"done\"", "(see above)", "总计为五。"]
    kept = [qa(f"Question {i}?", answer) for i, answer in enumerate(endings)]
    assert curate(kept, CurationSettings(), words).kept == kept


def test_an_example_caught_by_two_filters_counts_once_by_the_first() -> None:
    empty_and_short = qa("Hi", "")  # empty_response and too_short
    truncated_and_repetitive = qa("Explain.", "and and and and and and and and and")
    truncated_copy = qa("Explain.", "and and and and and and and and and")  # also an exact duplicate
    result = curate([*CLEAN, empty_and_short, truncated_and_repetitive, truncated_copy], CurationSettings(), words)
    assert result.kept == CLEAN
    assert {k: v for k, v in result.counts.items() if v} == {"empty_response": 1, "truncated": 2}


def test_disabled_filters_keep_their_examples() -> None:
    examples = [qa("Explain accruals.", "Accruals record revenue when it is earned and"),
                qa("q1", "Same answer."), qa("q1", "Same answer."), qa("Q1!", "Other answer.")]
    settings = CurationSettings(drop_truncated=False, drop_exact_duplicates=False, drop_near_duplicates=False)
    assert curate(examples, settings, words).kept == examples


@pytest.mark.parametrize("drop", [False, True])
def test_refusals_are_flagged_and_dropped_only_when_asked(drop: bool) -> None:
    refusals = [qa("Do my taxes.", "As an AI, I cannot file taxes for you."),
                qa("Hack the bank.", "I cannot help with that."),
                conv(("user", "Hi."), ("assistant", "Hello!"), ("user", "Steal?"), ("assistant", "I’m sorry, no."))]
    not_refusals = [qa("Why reconcile?", "I can see why: reconcile monthly."),
                    qa("Apologise?", "Sorry is not needed here.")]
    result = curate([*refusals, *not_refusals], CurationSettings(drop_refusals=drop), words)
    assert result.flagged_refusals == 3
    assert result.counts["refusal"] == (3 if drop else 0)
    assert result.kept == (not_refusals if drop else [*refusals, *not_refusals])


def test_curation_settings_are_strict() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CurationSettings(drop_dupes=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="min_tokens must not exceed max_tokens"):
        CurationSettings(min_tokens=10, max_tokens=5)


# ---------------------------------------------------------------- split

DATA = [qa(f"q{i}", f"a{i}.") for i in range(50)]


def test_split_is_deterministic_and_sized() -> None:
    train, val = split(DATA, 0.1, seed=7)
    assert (train, val) == split(DATA, 0.1, seed=7)
    assert split(DATA, 0.1, seed=8) != (train, val)
    assert (len(train), len(val)) == (45, 5)
    assert sorted(map(str, train + val)) == sorted(map(str, DATA))


@pytest.mark.parametrize(("n", "share", "sizes"), [(2, 0.01, (1, 1)), (10, 0.0, (10, 0)), (1, 0.2, (1, 0)),
                                                     (3, 0.5, (1, 2))])
def test_split_sizes(n: int, share: float, sizes: tuple[int, int]) -> None:
    train, val = split(DATA[:n], share, seed=0)
    assert (len(train), len(val)) == sizes


@pytest.mark.parametrize(("n", "share", "message"), [
    (1, 0.5, "train.validation_share: a validation share of 0.5 of 1 conversation(s) leaves no training data"),
    (0, 0.1, "train.validation_share: a validation share of 0.1 of 0 conversation(s) leaves no training data"),
    (10, 1.0, "train.validation_share: must be at least 0 and below 1 (got 1)"),
    (10, -0.1, "train.validation_share: must be at least 0 and below 1 (got -0.1)"),
])
def test_split_that_leaves_no_training_data_is_an_error(n: int, share: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        split(DATA[:n], share, seed=0)
    assert str(info.value) == message

