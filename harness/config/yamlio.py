"""Loading YAML/JSONL into pydantic models with one-line, file-and-field errors, and looking at paths
without a traceback (a symlink loop, a name too long or a denied directory is the user's mistake)."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
NAME_MAX = 255
"""The longest file name (one path component, in bytes) common file systems take."""


def os_problem(path: Path | str, exc: BaseException) -> str:
    """What an OSError (or pathlib's RuntimeError for a symlink loop) from looking at `path` means."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, RuntimeError) or code == errno.ELOOP:
        return f"{_short(path)} is a symlink loop (or a chain of too many links); point it at a real file"
    if code == errno.ENAMETOOLONG:
        longest = max(Path(path).parts, key=lambda part: len(os.fsencode(part)), default="")
        size = len(os.fsencode(longest))
        if size > NAME_MAX:
            return f"file name {_short(longest)} is {size} bytes long; at most {NAME_MAX} are allowed"
        return f"path {_short(path)} is too long ({len(os.fsencode(str(path)))} bytes)"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied for {_short(path)}"
    if isinstance(exc, ValueError):
        return f"{_short(path)} is not a usable path ({exc})"
    return f"cannot read {_short(path)} ({getattr(exc, 'strerror', None) or exc})"


def _short(path: Path | str, keep: int = 60) -> str:
    text = str(path)
    return text if len(text) <= keep * 2 else f"{text[:keep]}...{text[-keep:]}"


def stat_path(path: Path, file: str | None, field: str | None) -> os.stat_result | None:
    """stat() a path: None when nothing is there; any other failure is a ConfigError on `field`."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: a NUL in the name
        raise ConfigError(file, field, os_problem(path, exc)) from None


class DuplicateKeyError(yaml.constructor.ConstructorError):  # type: ignore[misc]
    """A key given twice in one mapping: PyYAML would silently keep the last."""


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser when present: several times faster on large suites) with
    one change: a mapping that names a key twice is an error, not last-one-wins."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            own = [key_node for key_node, _ in node.value if key_node.tag != _MERGE_TAG]
            self.flatten_mapping(node)  # `<<: *defaults` then a key of one's own overrides on purpose
            seen: dict[Any, int] = {}
            for key_node in own:
                # A plain string key is its text; any other key is constructed (cached: the base class reuses it).
                key = key_node.value if key_node.tag == _STR_TAG else self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the base class says so
                if first is not None:
                    raise DuplicateKeyError(None, None, f"duplicate key {key!r} (first given on line {first + 1}); "
                                            "each key may appear once", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _EntryLoader(_UniqueKeyLoader, yaml.composer.Composer):  # type: ignore[misc]
    """The same loader, driven one top-level entry at a time (Composer.compose_node over its events), so
    that a long list is built and handed on one element at a time instead of as one document."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.anchors: dict[str, Any] = {}

    def next_value(self) -> Any:
        value = self.construct_object(self.compose_node(None, None), deep=True)
        self.constructed_objects: dict[Any, Any] = {}
        self.recursive_objects: dict[Any, Any] = {}
        return value


Each = tuple[str, Callable[[int, Any], Any]]
"""(key, f): the top-level list under `key` is read one element at a time, and f(index, element) kept."""


def _read_entries(loader: _EntryLoader, each: Each) -> Any:
    """The document: a top-level mapping is read key by key (each: below); anything else whole."""
    events = yaml.events
    loader.get_event()  # the stream's start
    if loader.check_event(events.StreamEndEvent):
        return None
    loader.get_event()  # the document's start
    if not loader.check_event(events.MappingStartEvent):
        data = loader.next_value()
    else:
        loader.get_event()
        data = {}
        lines: dict[Any, int] = {}
        while not loader.check_event(events.MappingEndEvent):
            mark = loader.peek_event().start_mark
            key = loader.next_value()
            try:
                if key in lines:
                    raise DuplicateKeyError(None, None, f"duplicate key {key!r} (first given on line "
                                            f"{lines[key] + 1}); each key may appear once", mark)
                lines[key] = mark.line
            except TypeError:  # an unhashable key: the validation names it
                pass
            if key == each[0] and loader.check_event(events.SequenceStartEvent):
                loader.get_event()
                kept: list[Any] = []
                while not loader.check_event(events.SequenceEndEvent):
                    kept.append(each[1](len(kept), loader.next_value()))
                loader.get_event()
                data[key] = kept
            else:
                data[key] = loader.next_value()
        loader.get_event()
    loader.get_event()  # the document's end
    if not loader.check_event(events.StreamEndEvent):
        raise yaml.composer.ComposerError("expected a single document in the stream", None,
                                          "but found another document", loader.peek_event().start_mark)
    return data


def read_yaml(path: Path, each: Each | None = None) -> Any:
    """Parse a YAML file; a missing file, a syntax error or a duplicate key is a ConfigError. With `each`, a
    list under that top-level key is read (and handed to its function) one element at a time."""
    found = stat_path(path, str(path), None)
    if found is None or not stat.S_ISREG(found.st_mode):
        raise ConfigError(str(path), None, "file not found" if found is None else "is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(str(path), None, os_problem(path, exc)) from None
    try:
        if each is not None:
            loader = _EntryLoader(text)
            try:
                return _read_entries(loader, each)
            finally:
                loader.dispose()
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "could not parse"
        if isinstance(exc, DuplicateKeyError):
            raise ConfigError(str(path), where, problem) from None
        raise ConfigError(str(path), where, f"invalid YAML ({problem})") from None


class _AnyTagLoader(_UniqueKeyLoader):
    """For YAML another loader reads (lm-eval task files, with `!function` tags): only the keys matter."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def check_unique_keys(path: Path) -> None:
    """A file read by someone else's YAML loader: a duplicate key is still a ConfigError (named by its line);
    any other problem is left to that loader."""
    try:
        yaml.load(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader)  # noqa: S506  (a safe loader)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise ConfigError(str(path), f"line {mark.line + 1}, column {mark.column + 1}", exc.problem) from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return


def read_mapping(path: Path, expected: str, each: Each | None = None) -> dict[str, Any]:
    """A YAML file that must hold a mapping: an empty file (or only comments) is an error too."""
    data = read_yaml(path, each)
    if data is None:
        raise ConfigError(str(path), None, f"the file is empty; expected {expected}")
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, f"expected {expected}")
    return data


def read_jsonl(path: Path) -> list[Any]:
    """Parse a JSONL file, naming the line of the first bad row."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[Any]:
    """read_jsonl a line at a time."""
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(str(path), f"line {lineno}", f"invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None


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
    """Validate data against a model; the first error (an unknown key before any other) becomes a ConfigError."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # An unknown key first: `modle:` is the cause of "model: required field is missing", not a second fault.
        errors = sorted(exc.errors(), key=lambda error: error.get("type") != "extra_forbidden")
        first = errors[0]
        loc = field_path(tuple(first.get("loc", ())))
        field = ".".join(p for p in (prefix, loc) if p) or None
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(file, field, explain(first, model) + extra) from None
