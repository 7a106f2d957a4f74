"""Each rule check on answers that should pass and fail, and the checks stage."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from harness.config.checks import Check
from harness.config.suites import Suite, SuiteItem
from harness.records.stage_records import GenerationRecord
from harness.stages.checks import run_checks

CHECK = TypeAdapter(Check)

CASES = [
    ({"type": "contains", "value": "Paris"}, "It is paris.", None, True),
    ({"type": "contains", "value": "Paris", "case_sensitive": True}, "It is paris.", None, False),
    ({"type": "regex", "pattern": r"\$\d+"}, "It costs $42.", None, True),
    ({"type": "regex", "pattern": r"^\d+$"}, "42 dollars", None, False),
    ({"type": "not_regex", "pattern": r"(?i)sorry"}, "Here you go.", None, True),
    ({"type": "not_regex", "pattern": r"(?i)sorry"}, "So SORRY.", None, False),
    ({"type": "starts_with", "value": "The"}, "  the answer", None, True),
    ({"type": "starts_with", "value": "The"}, "An answer", None, False),
    ({"type": "not_starts_with", "value": "I'm sorry"}, "I'm sorry but no", None, False),
    ({"type": "not_starts_with", "value": "I'm sorry"}, "Sure, I'm sorry", None, True),
    ({"type": "max_words", "limit": 3}, "one two three", None, True),
    ({"type": "max_words", "limit": 3}, "one two three four", None, False),
    ({"type": "json_valid"}, '{"a": 1}', None, True),
    ({"type": "json_valid"}, '```json\n{"a": [1, 2]}\n```', None, True),
    ({"type": "json_valid"}, "{'a': 1}", None, False),
    ({"type": "equals_reference"}, " Paris. ", "paris", True),
    ({"type": "equals_reference"}, "Paris, France", "Paris", False),
    ({"type": "equals_reference"}, "Paris", None, False),
    ({"type": "number_matches_reference"}, "The interest is $1,200.", "$1200", True),
    ({"type": "number_matches_reference"}, "It is 60, not 42.", "$42", False),
    ({"type": "number_matches_reference", "which": "any"}, "It is 60, not 42.", "$42", True),
    ({"type": "number_matches_reference", "which": "last"}, "60 or 42.5", "42.5", True),
    ({"type": "number_matches_reference"}, "no idea", "$42", False),
    ({"type": "number_matches_reference"}, "-3 degrees", "-3", True),
    ({"type": "no_apology_preamble"}, "The interest is $60.", None, True),
    ({"type": "no_apology_preamble"}, "I'm sorry but I think it is $70.", None, False),
    ({"type": "no_apology_preamble"}, "  i’m sorry, no", None, False),
    ({"type": "no_apology_preamble"}, "Unfortunately, no.", None, False),
    ({"type": "no_apology_preamble"}, "Sorrel is a herb.", None, True),
]


@pytest.mark.parametrize(("spec", "answer", "reference", "expected"), CASES)
def test_check(spec: dict, answer: str, reference: str | None, expected: bool) -> None:
    passed, detail = CHECK.validate_python(spec).run(answer, reference)
    assert passed is expected
    assert (detail == "") is expected  # a failure always says why


def test_number_detail_names_both_numbers() -> None:
    check = CHECK.validate_python({"type": "number_matches_reference"})
    assert check.run("It is about $70.", "$60") == (False, "expected 60, got 70")


def test_bad_regex_is_a_validation_error() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        CHECK.validate_python({"type": "regex", "pattern": "("})


def _gen(role: str, item: str, text: str) -> GenerationRecord:
    return GenerationRecord(role=role, checkpoint=role, suite="s", item_id=item, sample_index=0, text=text,
                            finish_reason="stop", prompt_tokens=1, completion_tokens=1, latency_s=0.0,
                            prompt_hash="h", cache_key="k", cached=False)


def test_run_checks_applies_shared_then_item_checks_and_numbers_repeats() -> None:
    item = SuiteItem.model_validate({"id": "a", "prompt": "q", "reference": "$5", "checks": [
        {"type": "number_matches_reference"}, {"type": "contains", "value": "five"},
        {"type": "contains", "value": "5"}]})
    suite = Suite("s", None, "", (item,), (CHECK.validate_python({"type": "no_apology_preamble"}),), "h")  # type: ignore[arg-type]
    records = run_checks([suite], [_gen("base", "a", "Sorry, 5"), _gen("candidate", "a", "It is 5 (five).")])
    assert [(r.role, r.check, r.passed) for r in records] == [
        ("base", "no_apology_preamble", False), ("base", "number_matches_reference", True),
        ("base", "contains", False), ("base", "contains#2", True),
        ("candidate", "no_apology_preamble", True), ("candidate", "number_matches_reference", True),
        ("candidate", "contains", True), ("candidate", "contains#2", True)]


def test_check_answers_gathers_each_answers_checks_while_it_checks() -> None:
    from harness.records.outcomes import CheckedAnswers
    from harness.stages.checks import check_answers

    item = SuiteItem.model_validate({"id": "a", "prompt": "q", "reference": "$5", "checks": [
        {"type": "contains", "value": "five"}, {"type": "contains", "value": "5"}]})
    bare = SuiteItem.model_validate({"id": "b", "prompt": "q"})  # no check: no outcome
    suite = Suite("s", None, "", (item, bare), (), "h")  # type: ignore[arg-type]
    gens = [_gen("base", "a", "Sorry, 5"), _gen("candidate", "a", "five: 5"), _gen("base", "b", "x")]
    records: list = []
    answers = check_answers([suite], gens, records.extend)
    assert records == run_checks([suite], gens)
    assert answers == CheckedAnswers.of(records)
    assert answers.sides == {("s", "base"): {("a", 0): {"contains": False, "contains#2": True}},
                                     ("s", "candidate"): {("a", 0): {"contains": True, "contains#2": True}}}
