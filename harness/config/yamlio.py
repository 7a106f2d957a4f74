"""Loading YAML/JSONL into pydantic models with one-line, file-and-field errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a ConfigError."""
    if not path.is_file():
        raise ConfigError(str(path), None, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    try:
        # libyaml's safe loader when present: several times faster on large suites, same results.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "could not parse"
        raise ConfigError(str(path), where, f"invalid YAML ({problem})") from None


def read_jsonl(path: Path) -> list[Any]:
    """Parse a JSONL file, naming the line of the first bad row."""
    rows: list[Any] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ConfigError(str(path), f"line {lineno}", f"invalid JSON ({exc.msg})") from None
    return rows


def field_path(loc: tuple[Any, ...]) -> str:
    """('items', 3, 'checks', 0, 'regex', 'pattern') -> 'items[3].checks[0].pattern'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")) or part in _UNION_TAGS:
            continue  # pydantic's union bookkeeping, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out


# Tags of discriminated unions (check types); they are filled in by checks.py so
# that error locations show the user's field names only.
_UNION_TAGS: set[str] = set()


def register_union_tags(tags: set[str]) -> None:
    _UNION_TAGS.update(tags)


def explain(error: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key" + _allowed_keys(error, model)
    if kind == "missing":
        return "required field is missing"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    given = error.get("input")
    if kind not in ("model_type", "dict_type") and isinstance(given, (str, int, float, bool)):
        msg += f" (got {given!r})"
    return msg


def _allowed_keys(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    target: Any = model
    for part in error.get("loc", ())[:-1]:
        if isinstance(part, int) or target is None:
            continue
        info = getattr(target, "model_fields", {}).get(part)
        target = _model_of(info.annotation) if info else None
    fields = getattr(target, "model_fields", None)
    return f"; expected one of: {', '.join(sorted(fields))}" if fields else ""


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def validate(model: type[M], data: Any, file: str, prefix: str = "") -> M:
    """Validate data against a model; the first error becomes a ConfigError."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = field_path(tuple(first.get("loc", ())))
        field = ".".join(p for p in (prefix, loc) if p) or None
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(file, field, explain(first, model) + extra) from None
