"""The CI contract: the example workflow's permissions and commands, `--json` on stdout, the run
files' schemas, and plain progress lines when stderr is not a terminal."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import typer
import yaml

from harness.cli import app
from harness.records.run_files import read_run_file
from harness.records.run_results import Verdict
from tests.conftest import ROOT, harness_cmd
from tests.judge_server import JudgeServer
from tests.reliability.endpoint_runs import write_inputs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def test_the_example_workflow_has_its_permissions_and_only_commands_the_cli_takes() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci-workflow.yml").read_text())
    assert workflow["permissions"] == {"contents": "read", "checks": "write"}
    steps = workflow["jobs"]["compare"]["steps"]
    commands = [shlex.split(s["run"].split(">")[0]) for s in steps if str(s.get("run", "")).startswith("harness ")]
    assert {c[1] for c in commands} == {"validate", "compare"}
    group = typer.main.get_command(app)  # the click group typer builds: it parses as `harness` does
    for command in commands:
        parent = group.make_context("harness", command[1:2], resilient_parsing=True)
        sub = group.get_command(parent, command[1])
        assert sub is not None, command
        sub.make_context(command[1], [a.replace("$RUN_DIR", "runs/x").strip('"') for a in command[2:]],
                         parent=parent)  # an unknown option or a missing argument raises here
    install = next(s["run"] for s in steps if str(s.get("run", "")).startswith("pip install"))
    extras = re.search(r"\[([a-z,]+)\]", install)
    assert extras, install  # the extras it installs are ones the package declares, and give compare all it needs
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.group(1).split(",")) <= set(declared) and {"all", "gpu"} <= set(extras.group(1).split(","))
    junit = next(s for s in steps if "junit" in s.get("uses", ""))
    assert junit["with"]["report_paths"] == f"{workflow['jobs']['compare']['env']['RUN_DIR']}/junit.xml"


def test_json_puts_the_verdict_alone_on_stdout_and_progress_is_plain_lines(tmp_path: Path) -> None:
    with JudgeServer() as server:
        args = write_inputs(tmp_path / "inputs", server.url, items=8)
        result = subprocess.run(harness_cmd("compare", *args, "--run-dir", str(tmp_path / "run"), "--cache",
                                            str(tmp_path / "c.sqlite"), "--json"),
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
    verdict = Verdict.model_validate_json(result.stdout)  # stdout is the verdict and nothing else
    assert verdict == read_run_file(tmp_path / "run" / "verdict.json", Verdict)
    assert result.returncode == verdict.exit_code
    assert "pass rates" in result.stderr and "verdict:" in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("generating: ")]
    assert progress and progress[-1].startswith("generating: 16/16") and "elapsed" in progress[-1]
    regated = subprocess.run(harness_cmd("gate", str(tmp_path / "run"), "--json"), capture_output=True, text=True,
                             cwd=ROOT)
    assert Verdict.model_validate_json(regated.stdout).outcome == verdict.outcome


def test_the_run_files_have_schemas() -> None:
    for kind, required in (("verdict", "gates"), ("stats", "suites"), ("manifest", "checkpoints"),
                           ("group", "comparisons"), ("group-stats", "ranking"), ("group-verdict", "candidates")):
        result = subprocess.run(harness_cmd("schema", kind), capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert required in json.loads(result.stdout)["properties"]
