"""The architecture's rules (README, "Architecture"): the import contracts in pyproject.toml, the
report app's one way into the package, and modules short enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """verdict -/-> engines, stages; report -/-> stages, engines; engines -/-> stages; nothing -> cli."""
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", report)
    assert kept and int(kept.group(1)) >= 5, report


def _harness_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] if node.module != "harness" else [f"harness.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n == "harness" or n.startswith("harness.")]


def test_the_report_app_reads_runs_only_through_the_report_package() -> None:
    """reports/ is not a package import-linter can see: its harness imports are checked here. The
    report package it may use is itself held by the contracts above (no stages, no engines)."""
    found = {f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "reports").rglob("*.py"))
             for name in _harness_imports(path)}
    assert found, "the report app imports nothing from harness: is this test looking in the right place?"
    outside = sorted(f for f in found if not re.search(r": harness\.report(\.|$)", f))
    assert outside == []


def test_no_module_is_longer_than_the_limit() -> None:
    """Split a module along a seam before it passes the limit (into a package, not a prefixed sibling)."""
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
               for p in sorted((ROOT / "harness").rglob("*.py"))}
    assert lengths, "no modules found"
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
