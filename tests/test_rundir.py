"""Run dirs: atomic writes, stage bookkeeping, records in JSONL then Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.records.run_dir import RunDir, atomic_write_text
from harness.records.stage_records import CheckRecord


def _rec(i: int) -> CheckRecord:
    return CheckRecord(role="base", suite="s", item_id=f"i{i}", sample_index=0, check="contains", passed=i % 2 == 0,
                       detail="")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stage_lifecycle(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", {"run_id": "r", "inputs_hash": "h"})
    started = run.stage_started("checks")
    assert run.stage_status("checks") == "running"
    run.append("checks", [_rec(0), _rec(1)])
    assert run.read("checks", CheckRecord) == [_rec(0), _rec(1)]  # from JSONL while running
    run.stage_done("checks", started, [_rec(0), _rec(1)], extra=3)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["checks"]["status"] == "done"
    assert manifest["stages"]["checks"]["records"] == 2 and manifest["stages"]["checks"]["extra"] == 3
    assert RunDir.open(tmp_path / "run").read("checks", CheckRecord) == [_rec(0), _rec(1)]  # from Parquet


def test_restarting_a_stage_discards_its_partial_jsonl(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", {"run_id": "r", "inputs_hash": "h"})
    run.stage_started("checks")
    run.append("checks", [_rec(0)])
    run.stage_started("checks")
    assert run.read("checks", CheckRecord) == []


def test_reusing_a_run_dir_for_other_inputs_is_refused(tmp_path: Path) -> None:
    RunDir.create(tmp_path / "run", {"run_id": "r", "inputs_hash": "h"})
    RunDir.create(tmp_path / "run", {"run_id": "r2", "inputs_hash": "h"})  # same inputs: resume
    with pytest.raises(ConfigError, match="holds a run of different inputs"):
        RunDir.create(tmp_path / "run", {"run_id": "r3", "inputs_hash": "other"})


def test_open_requires_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a run dir \(no manifest.json\)"):
        RunDir.open(tmp_path)
