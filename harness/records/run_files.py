"""Reading a run's JSON files (manifest, stats, verdict) into their models.

Each file names its schema_version. One older than this harness writes is migrated in memory
(never rewritten); one newer, or one that is not a whole file of its kind, is refused with
one line naming the file and field (exit 2), never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from harness.config.yamlio import validate
from harness.errors import ConfigError
from harness.records.run_results import SCHEMA_VERSION

M = TypeVar("M", bound=BaseModel)
Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 added the run's copy of its suites (manifest suites[].run_copy, None before): the fields
    of schema 1 files kept their names and meaning."""
    return {**data, "schema_version": 2}


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}
"""From each older version to the next."""


def read_run_json(file: Path) -> dict[str, Any]:
    """A JSON run file as a dict; a truncated or corrupt one is one line naming the file (exit 2),
    and nothing is rewritten from it."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(file), None, "not UTF-8 text: the file is corrupt") from None
    except OSError as exc:  # no permission, a directory in its place
        raise ConfigError(str(file), None, f"cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(str(file), None, f"not valid JSON ({exc.msg} at line {exc.lineno}, column "
                          f"{exc.colno}): the file is truncated or corrupt") from None
    if not isinstance(data, dict):
        raise ConfigError(str(file), None, f"expected a JSON object, found {type(data).__name__}: "
                          "the file is corrupt")
    return data


def migrate(data: dict[str, Any], file: str) -> dict[str, Any]:
    """The file's content at this harness's schema version."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(file, "schema_version", f"expected a version number, found {version!r}: "
                          "not a run file of this harness")
    if version > SCHEMA_VERSION:
        raise ConfigError(file, "schema_version", f"written by a newer harness (schema {version}; this one reads "
                          f"1 to {SCHEMA_VERSION}); upgrade harness to read it")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return data


def parse_run_file(data: dict[str, Any], model: type[M], file: str) -> M:
    return validate(model, migrate(data, file), file)


def read_run_file(file: Path, model: type[M]) -> M:
    """manifest.json, stats.json or verdict.json as its model, migrated from an older schema."""
    return parse_run_file(read_run_json(file), model, str(file))
