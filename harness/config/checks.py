"""Rule checks: cheap, deterministic assertions on one answer, as suite files declare them.

Each check is a small pydantic model with a `run(answer, reference)` method
that returns (passed, detail). The `type` field selects the check in YAML.
The checks stage (harness/stages/checks.py) runs them on every answer.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.config.yamlio import register_union_tags

Outcome = tuple[bool, str]
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# Openings that hedge instead of answering. Matched after leading whitespace,
# case-insensitively, with straight or curly apostrophes.
APOLOGY = re.compile(
    r"^\s*(i['’]?m sorry|i am sorry|sorry\b|i apologi[sz]e|my apologies|unfortunately\b"
    r"|as an ai\b|i['’]?m afraid|i am afraid|i cannot\b|i can['’]?t\b)",
    re.IGNORECASE,
)


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def run(self, answer: str, reference: str | None) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


class Contains(_Check):
    type: Literal["contains"]
    value: Annotated[str, Field(min_length=1)]
    case_sensitive: bool = False

    def run(self, answer: str, reference: str | None) -> Outcome:
        ok = _fold(self.value, self.case_sensitive) in _fold(answer, self.case_sensitive)
        return ok, "" if ok else f"does not contain {self.value!r}"


class _Pattern(_Check):
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class Regex(_Pattern):
    type: Literal["regex"]

    def run(self, answer: str, reference: str | None) -> Outcome:
        ok = re.search(self.pattern, answer) is not None
        return ok, "" if ok else f"no match for /{self.pattern}/"


class NotRegex(_Pattern):
    type: Literal["not_regex"]

    def run(self, answer: str, reference: str | None) -> Outcome:
        found = re.search(self.pattern, answer)
        return found is None, "" if found is None else f"matched /{self.pattern}/ at {found.group(0)!r}"


class StartsWith(_Check):
    type: Literal["starts_with"]
    value: Annotated[str, Field(min_length=1)]
    case_sensitive: bool = False

    def run(self, answer: str, reference: str | None) -> Outcome:
        ok = _fold(answer.lstrip(), self.case_sensitive).startswith(_fold(self.value, self.case_sensitive))
        return ok, "" if ok else f"does not start with {self.value!r}"


class NotStartsWith(_Check):
    type: Literal["not_starts_with"]
    value: Annotated[str, Field(min_length=1)]
    case_sensitive: bool = False

    def run(self, answer: str, reference: str | None) -> Outcome:
        bad = _fold(answer.lstrip(), self.case_sensitive).startswith(_fold(self.value, self.case_sensitive))
        return not bad, f"starts with {self.value!r}" if bad else ""


class MaxWords(_Check):
    type: Literal["max_words"]
    limit: Annotated[int, Field(ge=1)]

    def run(self, answer: str, reference: str | None) -> Outcome:
        words = len(answer.split())
        return words <= self.limit, "" if words <= self.limit else f"{words} words > {self.limit}"


class JsonValid(_Check):
    type: Literal["json_valid"]

    def run(self, answer: str, reference: str | None) -> Outcome:
        text = answer.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
        try:
            json.loads(fenced.group(1) if fenced else text)
        except json.JSONDecodeError as exc:
            return False, f"invalid JSON: {exc.msg}"
        return True, ""


def normalize(text: str) -> str:
    """Lowercase, strip punctuation at the ends and collapse whitespace."""
    return " ".join(text.casefold().strip().strip(".!?;:,'\"").split())


class EqualsReference(_Check):
    type: Literal["equals_reference"]

    def run(self, answer: str, reference: str | None) -> Outcome:
        if reference is None:
            return False, "item has no reference"
        ok = normalize(answer) == normalize(reference)
        return ok, "" if ok else "differs from the reference"


def numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in NUMBER.findall(text)]


class NumberMatchesReference(_Check):
    """The answer's number equals the reference's (first number in each)."""

    type: Literal["number_matches_reference"]
    which: Literal["first", "last", "any"] = "first"
    """Which number of the answer counts; `any` is lenient and easy to game."""
    tolerance: Annotated[float, Field(ge=0)] = 1e-9
    """Absolute tolerance."""

    def run(self, answer: str, reference: str | None) -> Outcome:
        wanted = numbers(reference or "")
        if not wanted:
            return False, "reference has no number"
        got = numbers(answer)
        if not got:
            return False, "answer has no number"
        pool = {"first": got[:1], "last": got[-1:], "any": got}[self.which]
        ok = any(abs(x - wanted[0]) <= self.tolerance for x in pool)
        return ok, "" if ok else f"expected {wanted[0]:g}, got {pool[0]:g}"


class NoApologyPreamble(_Check):
    type: Literal["no_apology_preamble"]

    def run(self, answer: str, reference: str | None) -> Outcome:
        found = APOLOGY.match(answer)
        return found is None, "" if found is None else f"opens with {found.group(1)!r}"


Check = Annotated[
    Contains | Regex | NotRegex | StartsWith | NotStartsWith | MaxWords | JsonValid | EqualsReference
    | NumberMatchesReference | NoApologyPreamble,
    Field(discriminator="type"),
]
CHECK_TYPES = {"contains", "regex", "not_regex", "starts_with", "not_starts_with", "max_words",
               "json_valid", "equals_reference", "number_matches_reference", "no_apology_preamble"}
register_union_tags(CHECK_TYPES)
