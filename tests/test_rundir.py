"""Run dirs: atomic writes, stage bookkeeping, records in JSONL then Parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.records.run_dir import RunDir, atomic_write_text, new_run_id
from harness.records.stage_records import CheckRecord, JudgmentRecord
from tests.run_files import manifest


def _rec(i: int) -> CheckRecord:
    return CheckRecord(role="base", suite="s", item_id=f"i{i}", sample_index=0, check="contains", passed=i % 2 == 0,
                       detail="")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stage_lifecycle(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    started = run.stage_started("checks")
    assert run.stage_status("checks") == "running"
    run.append("checks", [_rec(0), _rec(1)])
    assert run.read("checks", CheckRecord) == [_rec(0), _rec(1)]  # from JSONL while running
    run.stage_done("checks", started, CheckRecord, extra=3)
    written = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert written["stages"]["checks"]["status"] == "done"
    assert written["stages"]["checks"]["records"] == 2 and written["stages"]["checks"]["extra"] == 3
    assert RunDir.open(tmp_path / "run").read("checks", CheckRecord) == [_rec(0), _rec(1)]  # from Parquet


def test_restarting_a_stage_discards_its_partial_jsonl(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    run.stage_started("checks")
    run.append("checks", [_rec(0)])
    run.stage_started("checks")
    assert run.read("checks", CheckRecord) == []


def test_reusing_a_run_dir_for_other_inputs_is_refused(tmp_path: Path) -> None:
    RunDir.create(tmp_path / "run", manifest("r", "h")).close()
    RunDir.create(tmp_path / "run", manifest("r2", "h"), resume=True).close()  # same inputs
    with pytest.raises(ConfigError, match="holds a run of different inputs"):
        RunDir.create(tmp_path / "run", manifest("r3", "other"), resume=True)


def test_a_run_dir_is_resumed_only_on_purpose_and_has_one_writer(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    with pytest.raises(ConfigError, match="already exists; a run is resumed only with --run-dir"):
        RunDir.create(tmp_path / "run", manifest("r2", "h"))
    # Another process cannot write it while this one does (flock: per open file, so ask from outside).
    probe = ("import sys; from pathlib import Path; from harness.records.run_dir import RunDir; "
             "from harness.errors import ConfigError; from tests.run_files import manifest\n"
             "try:\n RunDir.create(Path(sys.argv[1]), manifest('r', 'h'), resume=True); print('took it')\n"
             "except ConfigError as e:\n print(e)")
    root = Path(__file__).resolve().parent.parent
    refused = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True, cwd=root)
    assert f"another harness process (pid {os.getpid()}) is writing this run dir" in refused.stdout
    run.close()
    took = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True, cwd=root)
    assert took.stdout.strip() == "took it", took.stderr


def test_run_ids_made_in_the_same_second_differ() -> None:
    ids = {new_run_id("base", "cand") for _ in range(200)}
    assert len(ids) == 200 and all(i.endswith("-base-vs-cand") for i in ids)


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
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    file = run.path / "manifest.json"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    run.close()
    for open_it in (lambda: RunDir.open(run.path), lambda: RunDir.create(run.path, manifest("r", "h"), resume=True)):
        with pytest.raises(ConfigError) as info:
            open_it()
        assert info.value.file == str(file) and words in info.value.message and "\n" not in str(info.value)


def test_corrupt_records_are_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    run.append("checks", [_rec(0), _rec(1)])
    jsonl = run.path / "records" / "checks.jsonl"
    jsonl.write_text(jsonl.read_text() + '{"role": "base", "sui')  # a kill mid-line
    with pytest.raises(ConfigError, match=r"checks.jsonl: line 3 is not a whole CheckRecord"):
        run.read("checks", CheckRecord)
    run.stage_done("checks", run.stage_started("checks"), CheckRecord)
    parquet = run.path / "records" / "checks.parquet"
    parquet.write_bytes(parquet.read_bytes()[:40])
    with pytest.raises(ConfigError, match=r"checks.parquet: not a readable Parquet file"):
        run.read("checks", CheckRecord)


def test_parquet_is_typed_by_the_record_model_whatever_its_values(tmp_path: Path) -> None:
    # A stage's Parquet is parsed from its JSONL into the model's column types: records come back equal, a
    # column missing in every record is still typed, and a stage with no records has the columns too.
    import pyarrow.parquet as pq

    from harness.records.columnar import arrow_schema
    from harness.records.stage_records import TrainStepRecord

    judged = [JudgmentRecord(judge="j", kind="llm", model="m", decided_by="j", suite="s", item_id=f"i{i}",
                             sample_index=0, canary="empty" if i % 3 == 0 else None, raw_ab="x" if i % 2 else None,
                             verdict_ab="A" if i % 2 else None, score_base=i if i % 4 else None, preference="tie",
                             consistent=None if i % 5 == 0 else bool(i % 2), latency_s=0.1 * i, prompt_tokens=1,
                             completion_tokens=2, calls=2, cached=False, base_words=1, candidate_words=2)
              for i in range(20)]
    steps = [TrainStepRecord(step=i, loss=1.0 / (i + 1), grad_norm=None if i % 2 else 0.5, learning_rate=1e-4,
                             epoch=0.1 * i, eval_loss=None if i % 3 else 2.0) for i in range(7)]
    run = RunDir.create(tmp_path / "run", manifest())
    for stage, model, records in (("judge", JudgmentRecord, judged), ("train", TrainStepRecord, steps[1:2]),
                                  ("checks", CheckRecord, [])):
        started = run.stage_started(stage)
        run.append(stage, records)
        run.stage_done(stage, started, model)
        assert run.read(stage, model) == records
        written = pq.read_schema(run.path / "records" / f"{stage}.parquet")
        assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in arrow_schema(model)]
        assert run.manifest.stages[stage].records == len(records)
    # A line longer than the reader's block is read whole.
    long = [_rec(0).model_copy(update={"detail": "x" * (5 << 20)}), _rec(1)]
    started = run.stage_started("checks")
    run.append("checks", long)
    run.stage_done("checks", started, CheckRecord)
    assert run.read("checks", CheckRecord) == long


def test_records_share_their_set_of_given_fields() -> None:
    # Pydantic keeps a set of the given field names per instance (728 bytes); records given the same fields
    # share one, which changes nothing about them.
    from harness.records.stage_records import TrainStepRecord

    one, two = (CheckRecord(role="base", suite="s", item_id=i, sample_index=0, check="c", passed=True, detail="")
                for i in "ab")
    assert one.__pydantic_fields_set__ is two.__pydantic_fields_set__
    assert one.model_fields_set == {"role", "suite", "item_id", "sample_index", "check", "passed", "detail"}
    changed = one.model_copy(update={"passed": False})
    assert not changed.passed and one.passed and one.model_fields_set == two.model_fields_set
    step = TrainStepRecord(step=1, loss=1.0, learning_rate=1e-3, epoch=0.1)
    assert step.model_copy(update={"role": "base"}).model_fields_set == step.model_fields_set | {"role"}
    assert step.model_fields_set == {"step", "loss", "learning_rate", "epoch"}
    other = TrainStepRecord(step=1, loss=1.0, learning_rate=1e-3, epoch=0.1, grad_norm=2.0, eval_loss=1.0)
    same_count = TrainStepRecord(step=1, loss=1.0, learning_rate=1e-3, epoch=0.1, role="base", eval_loss=1.0)
    assert "grad_norm" in other.model_fields_set and "grad_norm" not in same_count.model_fields_set
    assert CheckRecord.model_validate_json(one.model_dump_json()) == one


def test_read_gives_back_the_records_written(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", manifest())
    records = [JudgmentRecord(judge="j", kind="rules", model=None, decided_by="rules", suite="s", item_id=f"i{i}",
                              sample_index=i % 2, canary=None if i else "empty", preference="tie",
                              consistent=None if i % 3 else True, score_base=None if i % 2 else 7, latency_s=0.5,
                              prompt_tokens=0, completion_tokens=0, calls=0, cached=bool(i % 2), base_words=i,
                              candidate_words=2) for i in range(6)]
    started = run.stage_started("judge")
    run.append("judge", records)
    assert run.read("judge", JudgmentRecord) == records  # from the JSONL
    run.stage_done("judge", started, JudgmentRecord)
    assert run.read("judge", JudgmentRecord) == records  # from the Parquet


def test_a_stage_parquet_is_written_as_records_are_appended_and_only_made_whole_when_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    import harness.records.columnar as columnar

    monkeypatch.setattr(columnar, "ROW_GROUP", 3)
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    records = run.path / "records"
    started = run.stage_started("checks")
    for start in range(0, 8, 2):
        run.append("checks", [_rec(start), _rec(start + 1)])
    assert not (records / "checks.parquet").exists()  # readers see the JSONL until the stage is done
    run.stage_done("checks", started, CheckRecord)
    assert run.read("checks", CheckRecord) == [_rec(i) for i in range(8)]
    assert pq.ParquetFile(records / "checks.parquet").num_row_groups == 2  # (4 + 4 records, groups of >= 3)
    assert [p.name for p in records.iterdir() if p.name.startswith(".")] == []
    # A stage restarted (or failed) drops what it had appended; a killed run's temporary file goes too.
    run.stage_started("judge")
    run.append("judge", [])
    run.stage_started("checks")
    run.append("checks", [_rec(0)])
    (records / ".judge.parquet.tmp").write_bytes(b"left by a killed run")
    run.stage_failed("checks", "the engine died")
    run.stage_started("judge")
    assert sorted(p.name for p in records.iterdir()) == ["checks.jsonl", "checks.parquet"]
    run.close()


def test_a_stage_done_with_another_model_than_its_records_is_refused(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", manifest("r", "h"))
    started = run.stage_started("checks")
    run.append("checks", [_rec(0)])
    with pytest.raises(TypeError, match="appended CheckRecord records, not JudgmentRecord"):
        run.stage_done("checks", started, JudgmentRecord)
    assert not (run.path / "records" / "checks.parquet").exists()
    assert [p.name for p in (run.path / "records").iterdir() if p.name.startswith(".")] == []
    run.close()
