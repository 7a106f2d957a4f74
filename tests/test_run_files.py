"""Typed run files: written and read back through their models, schema versions migrated or
refused with one line, and `harness gate` on a run of schema 1 and of a newer schema."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.records.manifest import Manifest
from harness.records.run_dir import RunDir
from harness.records.run_files import read_run_file
from harness.records.run_results import SCHEMA_VERSION, RunStats, Verdict
from tests.conftest import ROOT, harness_cmd
from tests.report_fixture import FULL_RUN, OLD_RUN, build_runs, set_schema_version
from tests.run_files import manifest, paired, run_stats


def test_a_run_file_round_trips_through_its_model(tmp_path: Path) -> None:
    stats = run_stats({"suites": {"s": paired(delta=0.1, delta_ci=(0.02, 0.2))}})
    (tmp_path / "stats.json").write_text(stats.model_dump_json())
    assert read_run_file(tmp_path / "stats.json", RunStats) == stats
    assert stats.schema_version == SCHEMA_VERSION == 2


@pytest.mark.parametrize("change, field, words", [
    ({"schema_version": 99}, "schema_version", "written by a newer harness (schema 99; this one reads 1 to 2)"),
    ({"schema_version": None}, "schema_version", "expected a version number, found None"),
    ({"schema_version": "2"}, "schema_version", "expected a version number, found '2'"),
    ({"seed": "zero"}, "seed", "integer"),
    ({"suites": {"s": {"n": 3}}}, "suites.s.base_rate", "required"),
])
def test_a_file_of_another_schema_or_shape_is_one_line_naming_it(tmp_path: Path, change: dict[str, object],
                                                                  field: str, words: str) -> None:
    file = tmp_path / "stats.json"
    file.write_text(json.dumps({**run_stats({}).model_dump(mode="json"), **change}))
    with pytest.raises(ConfigError) as info:
        read_run_file(file, RunStats)
    assert (info.value.file, info.value.field) == (str(file), field)
    assert words in info.value.message and "\n" not in str(info.value)


def test_schema_1_files_are_migrated_in_memory_and_left_as_they_are(tmp_path: Path) -> None:
    run = build_runs(tmp_path) / OLD_RUN
    before = {f.name: f.read_bytes() for f in run.glob("*.json")}
    manifest = read_run_file(run / "manifest.json", Manifest)
    assert json.loads(before["manifest.json"])["schema_version"] == 1
    assert manifest.schema_version == 2 and all(s.run_copy is None for s in manifest.suites)
    assert read_run_file(run / "stats.json", RunStats).schema_version == 2
    assert {f.name: f.read_bytes() for f in run.glob("*.json")} == before


def test_gate_re_decides_a_schema_1_run_and_refuses_a_newer_one(tmp_path: Path) -> None:
    runs = build_runs(tmp_path)
    old = subprocess.run(harness_cmd("gate", str(runs / OLD_RUN)), capture_output=True, text=True, cwd=ROOT)
    assert old.returncode in (0, 1, 3) and "verdict:" in old.stdout, old.stderr
    verdict = read_run_file(runs / OLD_RUN / "verdict.json", Verdict)
    assert verdict.schema_version == SCHEMA_VERSION
    newer = runs / FULL_RUN / "stats.json"
    set_schema_version(newer, 99)
    before = (runs / FULL_RUN / "verdict.json").read_bytes()
    refused = subprocess.run(harness_cmd("gate", str(runs / FULL_RUN)), capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and refused.stderr == (
        f"error: {newer}: schema_version: written by a newer harness (schema 99; this one reads 1 to 2); "
        "upgrade harness to read it\n")
    assert (runs / FULL_RUN / "verdict.json").read_bytes() == before


def test_the_run_keeps_a_byte_copy_of_each_suite_and_refuses_one_that_changed(tmp_path: Path) -> None:
    suite = tmp_path / "chat.jsonl"
    suite.write_text('{"id": "a", "prompt": "hi"}\n')
    sha = hashlib.sha256(suite.read_bytes()).hexdigest()
    run = RunDir.create(tmp_path / "run", manifest(suites=[{"name": "chat", "path": str(suite), "sha256": sha,
                                                             "items": 1}]))
    run.keep_suites([("chat", suite, sha)])
    assert (run.path / "suites" / "chat.jsonl").read_bytes() == suite.read_bytes()
    assert read_run_file(run.path / "manifest.json", Manifest).suites[0].run_copy == "suites/chat.jsonl"
    suite.write_text('{"id": "a", "prompt": "changed"}\n')
    with pytest.raises(ConfigError, match="the suite file changed while the run started"):
        run.keep_suites([("chat", suite, sha)])
    run.close()
