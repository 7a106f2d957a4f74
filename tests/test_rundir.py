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


@pytest.mark.parametrize("content, words", [
    ('{"run_id": "r", "inputs_ha', "not valid JSON (Unterminated string"),
    ("", "not valid JSON (Expecting value at line 1, column 1)"),
    ("[1, 2]", "expected a JSON object, found list"),
    (b"\xff\xfe{}", "not UTF-8 text"),
])
def test_a_corrupt_manifest_is_one_line_naming_it(tmp_path: Path, content: str | bytes, words: str) -> None:
    run = RunDir.create(tmp_path / "run", {"run_id": "r", "inputs_hash": "h"})
    manifest = run.path / "manifest.json"
    manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    for open_it in (lambda: RunDir.open(run.path), lambda: RunDir.create(run.path, {"inputs_hash": "h"})):
        with pytest.raises(ConfigError) as info:
            open_it()
        assert info.value.file == str(manifest) and words in info.value.message and "\n" not in str(info.value)


def test_corrupt_records_are_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", {"run_id": "r", "inputs_hash": "h"})
    run.append("checks", [_rec(0), _rec(1)])
    jsonl = run.path / "records" / "checks.jsonl"
    jsonl.write_text(jsonl.read_text() + '{"role": "base", "sui')  # a kill mid-line
    with pytest.raises(ConfigError, match=r"checks.jsonl: line 3 is not a whole CheckRecord"):
        run.read("checks", CheckRecord)
    run.stage_done("checks", run.stage_started("checks"), [_rec(0)])
    parquet = run.path / "records" / "checks.parquet"
    parquet.write_bytes(parquet.read_bytes()[:40])
    with pytest.raises(ConfigError, match=r"checks.parquet: not a readable Parquet file"):
        run.read("checks", CheckRecord)
