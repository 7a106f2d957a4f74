"""Judge definitions (judges/*.yaml), prompt rendering and verdict parsing.

Templates use string.Template placeholders ($question, $reference, $answer_a,
$answer_b, $answer): substitution only, no logic, and JSON braces need no
escaping. Answers enter the prompt between per-call random delimiters, and
anything in an answer that looks like a delimiter is neutralised first, so an
answer cannot close its block and talk to the judge as the harness.

Parsing is strict: one JSON object with a known verdict. A reply fenced in
```json or wrapped in prose is accepted only when it holds exactly one such
object; several objects that disagree, a bare "A is better", or nothing are
parse failures, never guesses.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.config.yamlio import read_yaml, validate
from harness.errors import ConfigError
from harness.records.stage_records import Verdict
from harness.resources import shipped_dir

JUDGES_DIR = shipped_dir("judges")
PLACEHOLDERS = {
    "pairwise": ({"question", "answer_a", "answer_b"}, {"reference"}),
    "single": ({"question", "answer"}, {"reference"}),
}
"""Per mode: placeholders the user template must hold, and those it may hold."""
NO_REFERENCE = "(no reference answer is available for this question)"
DEFAULT_REASK = ("Your reply was not in the required format. Reply again with only the JSON object "
                 "described above, and nothing else.")
# Anything an answer could write to imitate our markers: << ANSWER-..., <<END-..., any case.
LOOKALIKE = re.compile(r"<<(\s*/?\s*(?:answer|end)\b)", re.IGNORECASE)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
VERDICTS: dict[str, Verdict] = {"a": "A", "b": "B", "tie": "tie"}
MAX_REASON = 500


class JudgeDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[\w.@+-]+$")]
    description: str = ""
    mode: Literal["pairwise", "single"] = "pairwise"
    """pairwise: one call sees both answers (run in both orders); single: each answer graded 1-10 alone."""
    system: str = ""
    user: Annotated[str, Field(min_length=1)]
    reask: Annotated[str, Field(min_length=1)] = DEFAULT_REASK
    """The follow-up turn sent once when a reply is not in the required format."""
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_tokens: Annotated[int, Field(ge=1, le=100_000)] = 256


@dataclass(frozen=True)
class LoadedDefinition:
    definition: JudgeDefinition
    path: Path
    sha256: str
    """Hash of the file's bytes: part of every judgment's cache key."""

    @property
    def uses_reference(self) -> bool:
        return "reference" in _identifiers(self.definition.system + self.definition.user)


def definition_path(ref: str, file: str) -> Path:
    """A bare name is looked up in judges/; anything else is a path (resolved by the config loader)."""
    if "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml")):
        return Path(ref)
    path = JUDGES_DIR / f"{ref}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in JUDGES_DIR.glob("*.yaml"))
        raise ConfigError(file, "judge.definition", f"unknown judge {ref!r}; expected one of: {', '.join(known)} "
                          "or a path to a judge YAML")
    return path


def load_definition(ref: str, file: str) -> LoadedDefinition:
    path = definition_path(ref, file)
    if not path.is_file():
        raise ConfigError(file, "judge.definition", f"judge file {path} does not exist")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(str(path), None, "expected a mapping with name, user, ... (a judge definition)")
    definition = validate(JudgeDefinition, raw, str(path))
    required, optional = PLACEHOLDERS[definition.mode]
    for field in ("system", "user", "reask"):
        text = getattr(definition, field)
        _check_syntax(text, str(path), field)
        allowed = required | optional if field != "reask" else set()
        unknown = _identifiers(text) - allowed
        if unknown:
            expected = ", ".join("$" + p for p in sorted(allowed)) or "none"
            raise ConfigError(str(path), field, f"unknown placeholder ${sorted(unknown)[0]}; "
                              f"a {definition.mode} judge takes: {expected}")
    missing = required - _identifiers(definition.system + definition.user)
    if missing:
        raise ConfigError(str(path), "user", f"missing placeholder ${sorted(missing)[0]} "
                          f"(a {definition.mode} judge needs {', '.join('$' + p for p in sorted(required))})")
    return LoadedDefinition(definition, path, hashlib.sha256(path.read_bytes()).hexdigest())


def _identifiers(text: str) -> set[str]:
    # Template.get_identifiers() is Python 3.11+; this is its logic.
    return {m.group("named") or m.group("braced") for m in Template.pattern.finditer(text)
            if m.group("named") or m.group("braced")}


def _check_syntax(text: str, file: str, field: str) -> None:
    for match in Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            line = text.count("\n", 0, match.start("invalid")) + 1
            raise ConfigError(file, field, f"a lone '$' on line {line} of the template; write $$ for a dollar sign")


# --------------------------------------------------------------------------- delimiters
def delimiter_tag(seed: int, content: str) -> str:
    """12 hex digits drawn from a generator seeded by the plan seed and the call's content:
    reruns render the same prompt (stable cache keys), and no answer can predict its tag."""
    return f"{random.Random(f'{seed}:{content}').getrandbits(48):012x}"


def neutralise(answer: str) -> str:
    """Break every delimiter look-alike (<<ANSWER-..., <<END-...) so that only ours remain."""
    return LOOKALIKE.sub(r"< <\1", answer)


def wrap(answer: str, tag: str) -> str:
    return f"<<ANSWER-{tag}>>\n{neutralise(answer)}\n<<END-{tag}>>"


def render(loaded: LoadedDefinition, question: str, reference: str | None,
           answers: dict[str, str], tag: str) -> tuple[tuple[str, str], ...]:
    """Chat messages for one call. answers: {"answer_a": .., "answer_b": ..} or {"answer": ..}."""
    values = {"question": question, "reference": reference if reference is not None else NO_REFERENCE,
              **{k: wrap(v, tag) for k, v in answers.items()}}
    definition = loaded.definition
    system = Template(definition.system).substitute(values).strip()
    user = Template(definition.user).substitute(values).strip()
    return ((("system", system),) if system else ()) + (("user", user),)


# --------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Parsed:
    verdict: Verdict | None
    score: int | None
    reason: str


def parse_reply(text: str, mode: Literal["pairwise", "single"]) -> Parsed | None:
    """The verdict (pairwise) or score (single) in a reply, or None when the reply is not in format."""
    objects = _json_objects(text)
    found = {p for p in (_interpret(o, mode) for o in objects) if p is not None}
    decisions = {(p.verdict, p.score) for p in found}
    if len(decisions) != 1:
        return None  # nothing usable, or objects that disagree: never pick one
    return min(found, key=lambda p: p.reason)


def _json_objects(text: str) -> list[object]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        return [json.loads(stripped)]  # strict: the whole reply is the object
    except json.JSONDecodeError:
        pass
    fenced = [m.group(1).strip() for m in FENCE.finditer(stripped)]
    for block in fenced:
        try:
            return [json.loads(block)]
        except json.JSONDecodeError:
            continue
    # Prose around the object: every top-level {...} that decodes on its own.
    decoder, objects, index = json.JSONDecoder(), [], 0
    while (start := stripped.find("{", index)) != -1:
        try:
            value, end = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        objects.append(value)
        index = end
    return objects


def _interpret(value: object, mode: str) -> Parsed | None:
    if not isinstance(value, dict):
        return None
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        return None
    reason = reason.strip()[:MAX_REASON]
    if mode == "single":
        score = value.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score):
            return None
        return Parsed(None, int(score), reason) if 1 <= score <= 10 else None
    verdict = value.get("verdict")
    if not isinstance(verdict, str) or verdict.strip().casefold() not in VERDICTS:
        return None
    return Parsed(VERDICTS[verdict.strip().casefold()], None, reason)
