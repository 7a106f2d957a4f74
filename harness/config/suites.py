"""Prompt suites: fixed items (prompt, optional reference, tags, checks).

A suite is a YAML file (name, description, shared checks, items) or a JSONL
file (one item per line; the suite is named after the file). Suites are data:
no templating, no code. Each suite's content hash goes into the run.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config.checks import Check
from harness.config.yamlio import iter_jsonl, os_problem, read_mapping, stat_path, validate
from harness.errors import ConfigError

SUITE_SUFFIXES = (".yaml", ".yml", ".jsonl")
ID_PATTERN = r"^[\w.:@+-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class SuiteItem(_Strict):
    id: Annotated[str, Field(min_length=1, pattern=ID_PATTERN)]
    messages: Annotated[list[Message], Field(min_length=1)] | None = None
    """The conversation so far; the answer continues it."""
    prompt: str | None = None
    """Shorthand for a single user message."""
    reference: str | None = None
    tags: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_prompt(self) -> SuiteItem:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError("the last message must have role 'user' (the answer replies to it)")
        return self

    @property
    def conversation(self) -> tuple[Message, ...]:
        if self.messages is not None:
            return tuple(self.messages)
        return (Message(role="user", content=self.prompt or ""),)


class SuiteFile(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=ID_PATTERN)]
    description: str = ""
    checks: list[Check] = Field(default_factory=list)
    """Checks applied to every item, before the item's own."""
    items: Annotated[list[SuiteItem], Field(min_length=1)]


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    items: tuple[SuiteItem, ...]
    shared_checks: tuple[Check, ...]
    content_hash: str

    def checks_for(self, item: SuiteItem) -> tuple[Check, ...]:
        return self.shared_checks + tuple(item.checks)


def load_suite(path: Path) -> Suite:
    """A suite file, read and validated an item at a time: what stays is the items, not the file's text or
    its parsed rows (a suite of 100,000 items would otherwise leave several kilobytes an item behind)."""
    file = str(path)
    found = stat_path(path, file, None)
    if found is None or not stat.S_ISREG(found.st_mode):
        raise ConfigError(file, None, "suite file not found")
    item = _ItemReader(file)
    if path.suffix == ".jsonl":
        items = [item(index, row) for index, row in enumerate(iter_jsonl(path))]
        if not items:
            raise ConfigError(file, None, "suite has no items")
        data: object = {"name": path.stem, "items": items}
    else:
        data = read_mapping(path, "a mapping with 'name' and 'items'", each=("items", item))
    spec = validate(SuiteFile, data, file)  # (the items are validated already: pydantic keeps them as they are)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Suite(spec.name, path, spec.description, tuple(spec.items), tuple(spec.checks), digest)


class _ItemReader:
    """Validates each item as it is read, refuses a repeated id, and lets items share what they have equal:
    their checks, tags and set of given fields (pydantic's, 200 bytes an item). A JSONL suite usually repeats
    the same checks on every line, and each item's own copies would cost more than the rest of the item (two
    kilobytes for three checks), held for the whole run. Items are frozen, nothing changes their lists, and
    model_copy copies the set before changing it, so sharing changes nothing else."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.ids: set[str] = set()
        self.shared: dict[Any, Any] = {}

    def __call__(self, index: int, row: Any) -> SuiteItem:
        # (None is not an item: validate() would read it as an empty mapping)
        item = validate(SuiteItem, [] if row is None else row, self.file, f"items[{index}]")
        if item.id in self.ids:
            raise ConfigError(self.file, f"items[{index}].id", f"duplicate item id {item.id!r}")
        self.ids.add(item.id)
        given = item.__pydantic_fields_set__
        self._share(item, "__pydantic_fields_set__", given, ("fields", frozenset(given)))
        self._share(item, "tags", item.tags, ("tags", *item.tags))
        try:
            self._share(item, "checks", item.checks, ("checks", *item.checks))
        except TypeError:  # a check with a list in it is not hashable: it keeps its own
            pass
        return item

    def _share(self, item: SuiteItem, name: str, value: Any, key: tuple[Any, ...]) -> None:
        same = self.shared.setdefault(key, value)
        if same is not value:
            object.__setattr__(item, name, same)


def expand_suite_paths(entries: list[str], file: str) -> list[Path]:
    """Files as given; directories expand to their suite files in name order."""
    paths: list[Path] = []
    for index, entry in enumerate(entries):
        path, field = Path(entry), f"plan.suites[{index}]"
        kind = stat_path(path, file, field)
        if kind is not None and stat.S_ISDIR(kind.st_mode):
            try:
                found = sorted(p for p in path.iterdir() if p.suffix in SUITE_SUFFIXES)
            except OSError as exc:
                raise ConfigError(file, field, os_problem(path, exc)) from None
            if not found:
                raise ConfigError(file, field, f"directory {path} holds no suite files")
            paths.extend(found)
        elif kind is not None:
            if path.suffix not in SUITE_SUFFIXES:
                raise ConfigError(file, field, f"{path} is not a .yaml, .yml or .jsonl file")
            paths.append(path)
        else:
            raise ConfigError(file, field, f"suite file {path} does not exist")
    return paths


def load_suites(entries: list[str], file: str) -> list[Suite]:
    suites = [load_suite(p) for p in expand_suite_paths(entries, file)]
    names: dict[str, Path] = {}
    for suite in suites:
        if suite.name in names:
            raise ConfigError(str(suite.path), "name",
                              f"suite name {suite.name!r} is also used by {names[suite.name]}")
        names[suite.name] = suite.path
    return suites
