"""Where the files the project ships live: suites, judge definitions, the report app, examples.

In a source checkout they are the top-level folders (suites/, judges/, reports/, examples/),
so an edit there is what the next run uses. A built wheel carries the same folders as package
data under harness/shipped/ (pyproject.toml maps them there), so `pip install` gives the demo,
the judges and the report without a checkout. Relative paths between them (examples/*.yaml
name ../suites/...) hold in both layouts because the folders keep their names and nesting.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
SHIPPED = ("suites", "judges", "reports", "examples")


def in_checkout() -> bool:
    """True when the package runs from a source tree (editable install or PYTHONPATH), not a wheel."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "harness").resolve() == PACKAGE


def shipped_dir(name: str) -> Path:
    """The folder `name` (one of SHIPPED) of this install."""
    if name not in SHIPPED:
        raise ValueError(f"not a shipped folder: {name!r}")
    return CHECKOUT / name if in_checkout() else PACKAGE / "shipped" / name
