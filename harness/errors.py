"""Errors the CLI turns into one-line messages and exit codes.

User mistakes (bad files, bad fields) are `ConfigError` -> exit 2.
Things outside the user's input that stop a run (an engine that fails to
start, an endpoint that never answers) are `InfraError` -> exit 3.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE_OR_INFRA = 3


class HarnessError(Exception):
    exit_code = EXIT_INCONCLUSIVE_OR_INFRA


class ConfigError(HarnessError):
    """Bad input: names the file and field and says what was expected."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, file: str | None, field: str | None, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        where = ": ".join(part for part in (file, field) if part)
        super().__init__(f"{where}: {message}" if where else message)


class InfraError(HarnessError):
    """An engine, endpoint or the machine failed; the input may be fine."""

    exit_code = EXIT_INCONCLUSIVE_OR_INFRA


class MissingDependency(InfraError):
    def __init__(self, module: str, hint: str) -> None:
        super().__init__(f"the '{module}' package is needed here but not installed; {hint}")


def install_hint(extra: str) -> str:
    """How to get an extra (pyproject.toml): each command needs only the extras it uses."""
    return f"pip install 'harness[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
