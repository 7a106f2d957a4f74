"""Suite files: YAML and JSONL, hashes, and every way a suite can be broken."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.config.schema import DEFAULT_SUITES_DIR
from harness.config.suites import load_suite, load_suites
from harness.errors import ConfigError


def test_yaml_and_jsonl_load_the_same_items(tmp_path: Path) -> None:
    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("name: a\nitems:\n  - id: q1\n    prompt: hello\n    reference: hi\n    tags: [x]\n"
                         "    checks: [{type: contains, value: hi}]\n")
    jsonl_file = tmp_path / "b.jsonl"
    jsonl_file.write_text(json.dumps({"id": "q1", "messages": [{"role": "user", "content": "hello"}],
                                      "reference": "hi", "tags": ["x"],
                                      "checks": [{"type": "contains", "value": "hi"}]}) + "\n\n")
    a, b = load_suite(yaml_file), load_suite(jsonl_file)
    assert b.name == "b"
    assert a.items[0].conversation == b.items[0].conversation
    assert a.content_hash == hashlib.sha256(yaml_file.read_bytes()).hexdigest()


def test_shipped_demo_suites_load() -> None:
    suites = load_suites([str(DEFAULT_SUITES_DIR)], "plan")
    assert {s.name for s in suites} >= {"finance", "general"}
    assert all(len(s.items) >= 20 for s in suites)


@pytest.mark.parametrize(("text", "message"), [
    ("name: s\nitems: []\n", "items: List should have at least 1 item after validation, not 0"),
    ("name: s\nitems:\n  - id: a\n", "items[0]: give exactly one of 'messages' or 'prompt'"),
    ("name: s\nitems:\n  - {id: a, prompt: x}\n  - {id: a, prompt: y}\n", "items[1].id: duplicate item id 'a'"),
    ("name: s\nitems:\n  - {id: a, prompt: x, checks: [{type: contain, value: y}]}\n",
     "items[0].checks[0]: Input tag 'contain' found using 'type' does not match any of the expected tags"),
    ("name: s\nitems:\n  - {id: a, prompt: x, checks: [{type: regex, pattern: '('}]}\n",
     "items[0].checks[0].pattern: not a valid regular expression"),
    ("name: s\nitems:\n  - id: a\n    messages: [{role: assistant, content: hi}]\n",
     "items[0]: the last message must have role 'user'"),
])
def test_broken_suites(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": \n')
    with pytest.raises(ConfigError, match=r"s.jsonl: line 2: invalid JSON"):
        load_suite(path)


def test_missing_suite_and_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plan.yaml: plan.suites\[0\]: suite file .*/gone.yaml does not exist"):
        load_suites([str(tmp_path / "gone.yaml")], "plan.yaml")
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text("name: same\nitems: [{id: a, prompt: x}]\n")
    with pytest.raises(ConfigError, match=r"two.yaml: name: suite name 'same' is also used by"):
        load_suites([str(tmp_path)], "plan.yaml")


def test_items_with_equal_checks_share_one_list_of_them(tmp_path: Path) -> None:
    # A large JSONL suite repeats its checks on every line: held once, not once per item.
    checks = [{"type": "max_words", "limit": 30}, {"type": "number_matches_reference"}]
    rows = [{"id": f"q{i}", "prompt": f"question {i}", "reference": "1", "checks": checks} for i in range(3)]
    rows.append({"id": "own", "prompt": "q", "reference": "1", "checks": [{"type": "max_words", "limit": 5}]})
    rows.append({"id": "list", "prompt": "q", "checks": [{"type": "contains", "value": "a"}]})
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_suite(tmp_path / "s.jsonl").items
    assert items[0].checks is items[1].checks is items[2].checks
    assert items[0].tags is items[1].tags and items[0].__pydantic_fields_set__ is items[3].__pydantic_fields_set__
    assert items[4].model_copy(update={"reference": "2"}).model_fields_set == {"id", "prompt", "checks", "reference"}
    assert items[4].model_fields_set == {"id", "prompt", "checks"}  # (a copy's changes stay its own)
    assert items[3].checks is not items[0].checks and items[3].checks[0].limit == 5  # type: ignore[union-attr]
    assert [len(i.checks) for i in items] == [2, 2, 2, 1, 1]
    assert items[0].checks == items[1].model_validate(rows[1]).checks


def test_a_yaml_suite_read_an_item_at_a_time_is_the_suite_yaml_reads(tmp_path: Path) -> None:
    # The items list is built one element at a time; anchors, aliases and merge keys across items still work,
    # and every problem is the one-line error the whole-document reader gives.
    import yaml

    from harness.config.yamlio import read_yaml

    text = ("description: d\nchecks: [{type: max_words, limit: 9}]\nitems:\n"
            "  - &first {id: a, prompt: x, tags: [t], checks: [{type: contains, value: y}]}\n"
            "  - {<<: *first, id: b}\n  - id: c\n    messages: [{role: user, content: hi}]\nname: s\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    seen: list = []
    assert read_yaml(path, ("items", lambda i, row: seen.append(i) or row)) == yaml.safe_load(text)
    assert seen == [0, 1, 2]
    suite = load_suite(path)
    assert [i.id for i in suite.items] == ["a", "b", "c"] and suite.items[1].prompt == "x"
    for shipped in DEFAULT_SUITES_DIR.glob("*.yaml"):
        assert read_yaml(shipped, ("items", lambda i, row: row)) == yaml.safe_load(shipped.read_text())
    for bad, message in [
        ("name: s\nitems: [{id: a, prompt: x}]\nname: t\n", "line 3, column 1: duplicate key 'name' (first given on "
                                                             "line 1); each key may appear once"),
        ("name: s\nitems:\n  - {id: a, prompt: x}\n  - {id: b, prompt: x, id: c}\n", "line 4, column 24: duplicate "
                                                                                     "key 'id'"),
        ("name: s\nitems: [{id: a, prompt: x}]\n---\nname: t\n", "line 3, column 1: invalid YAML (but found "
                                                                  "another document)"),
        ("name: s\nitems:\n  - {id: a, prompt: x}\n  -\n", "items[1]: Input should be a valid dictionary or instance "
                                                            "of SuiteItem"),
        ("name: s\nitems: {id: a}\n", "items: Input should be a valid list"),
        ("- a\n- b\n", "expected a mapping with 'name' and 'items'"),
        ("name: s\nitems:\n  - {id: a, prompt: *nowhere}\n", "line 3, column 21: invalid YAML (found undefined "
                                                              "alias")]:
        path.write_text(bad)
        with pytest.raises(ConfigError) as info:
            load_suite(path)
        assert str(info.value).startswith(f"{path}: {message}"), str(info.value)
