"""Run directories: the only place stages write to, and the only thing the
report reads.

Layout:
  manifest.json          resolved configs, hashes, versions, hardware, stage timings
  records/<stage>.jsonl  appended while a stage runs (rewritten whole on resume)
  records/<stage>.parquet written when the stage completes
  suites/                the suite files the run read, byte for byte (the report reads these)
  stats.json, verdict.json, junit.xml, summary.md

Every whole-file write is atomic (temp file in the same dir + os.replace), so
a reader never sees half a file. A stage counts as done only when the
manifest says so, and the manifest is written after the stage's files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from harness.errors import ConfigError
from harness.locks import HeldLock, lock_holder, try_lock
from harness.records.columnar import ParquetSink
from harness.records.manifest import Manifest, StageEntry
from harness.records.run_files import read_run_file

R = TypeVar("R", bound=BaseModel)
MANIFEST = "manifest.json"
LOCK = ".writer.lock"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def new_run_id(base: str, candidate: str) -> str:
    """Time first (run dirs sort by it), then random bits: two runs started in the same second by
    two processes never share an id."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^\w.-]+", "_", f"{base}-vs-{candidate}")
    return f"{stamp}-{secrets.token_hex(3)}-{slug}"


def writer_lock(path: Path) -> HeldLock:
    """The run dir's one writer: taken for the life of a compare (or a gate), refused while another
    process holds it, so two processes never interleave records or overwrite each other's verdict."""
    held = try_lock(path / LOCK)
    if held is None:
        raise ConfigError(str(path), None, f"another harness process (pid {lock_holder(path / LOCK)}) is "
                          "writing this run dir; wait for it to finish, or choose another --run-dir")
    return held


def claim_dir(path: Path, resume: bool) -> HeldLock:
    """Create a run's directory (an existing one only with `resume`) and become its one writer."""
    try:
        path.mkdir(parents=True, exist_ok=resume)
    except FileExistsError:
        raise ConfigError(str(path), None, "already exists; a run is resumed only with --run-dir") from None
    return writer_lock(path)


class RunDir:
    def __init__(self, path: Path, manifest: Manifest, lock: HeldLock | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self._lock = lock
        self._sinks: dict[str, ParquetSink] = {}
        """Each running stage's Parquet, written as its records are appended."""

    @classmethod
    def create(cls, path: Path, manifest: Manifest, resume: bool = False) -> RunDir:
        """A new run dir (never an existing one: a run is resumed only on purpose), or with `resume`
        the one at `path`, new or holding a run of the same inputs. Either way this process becomes its
        one writer until close() or exit."""
        lock = claim_dir(path, resume)
        try:
            run = cls._prepare(path, manifest, lock)
        except BaseException:
            lock.release()
            raise
        return run

    @classmethod
    def _prepare(cls, path: Path, manifest: Manifest, lock: HeldLock) -> RunDir:
        if (path / MANIFEST).exists():
            existing = read_run_file(path / MANIFEST, Manifest)
            if existing.inputs_hash != manifest.inputs_hash:
                raise ConfigError(str(path), None, "this run dir holds a run of different inputs; "
                                  "choose a new --run-dir")
            manifest.stages, manifest.run_id = existing.stages, existing.run_id
        (path / "records").mkdir(parents=True, exist_ok=True)
        run = cls(path, manifest, lock)
        run.save_manifest()
        return run

    def close(self) -> None:
        """Stop being the run dir's writer (the end of the process does the same)."""
        for stage in list(self._sinks):
            self._discard(stage)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def take_writer_lock(self) -> None:
        """Become the writer of an opened run dir (`harness gate` rewrites its verdict)."""
        if self._lock is None:
            self._lock = writer_lock(self.path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        file = path / MANIFEST
        if not file.is_file():
            raise ConfigError(str(path), None, "not a run dir (no manifest.json)")
        return cls(path, read_run_file(file, Manifest))

    def save_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest.model_dump(mode="json"))

    def keep_suites(self, files: Sequence[tuple[str, Path, str]]) -> None:
        """Copy each suite file (name, path, sha256) into suites/, so the run shows what it asked
        even after the file changes; the copy must hash as the file did when it was loaded."""
        import hashlib

        for entry in self.manifest.suites:
            source = next(path for name, path, _ in files if name == entry.name)
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise ConfigError(str(source), None, "the suite file changed while the run started; rerun")
            copy = f"suites/{entry.name}{source.suffix}"
            atomic_write_bytes(self.path / copy, data)
            entry.run_copy = copy
        self.save_manifest()

    # stages -----------------------------------------------------------------
    def stage_started(self, stage: str) -> float:
        self.manifest.stages[stage] = StageEntry(status="running", started_at=_now())
        self.save_manifest()
        (self.path / "records" / f"{stage}.jsonl").unlink(missing_ok=True)
        self._discard(stage)
        (self.path / "records" / f".{stage}.parquet.tmp").unlink(missing_ok=True)  # a killed run's
        return time.perf_counter()

    def stage_done(self, stage: str, started: float, model: type[BaseModel], /, **stats: Any) -> None:
        """The stage is complete: the records appended since it started (of `model`) become its Parquet
        before the manifest says done."""
        sink = self._sinks.pop(stage, None) or ParquetSink(self.path / "records" / f"{stage}.parquet", model)
        if sink.model is not model:  # (a caller's mistake: the Parquet would not hold `model`'s columns)
            sink.discard()
            raise TypeError(f"stage {stage!r} appended {sink.model.__name__} records, not {model.__name__}")
        count = sink.finish()
        entry = self.manifest.stages[stage]
        self.manifest.stages[stage] = StageEntry.model_validate({
            **entry.model_dump(), "status": "done", "finished_at": _now(),
            "seconds": round(time.perf_counter() - started, 3), "records": count, **stats})
        self.save_manifest()

    def finished(self, stage: str, needed: str | None = None) -> bool:
        """Whether the run has `stage`, done, for a reader of finished runs (export): a stage that is running
        or failed is an error (its records may be partial), and so is a missing one when `needed` says what
        it was needed for."""
        entry = self.manifest.stage(stage)
        manifest = str(self.path / MANIFEST)
        if entry is None:
            if needed is not None:
                raise ConfigError(manifest, f"stages.{stage}", f"this run has no {stage} stage: {needed}")
            return False
        if entry.status != "done":
            raise ConfigError(manifest, f"stages.{stage}", f"the {stage} stage is {entry.status}: export reads "
                              f"finished stages only (finish the run with `harness compare ... --run-dir {self.path}`)")
        return True

    def stage_failed(self, stage: str, error: str) -> None:
        """The stage stopped on an engine, endpoint or lm-eval failure: say so, with why. Its records so
        far stay in the JSONL; a rerun with --run-dir redoes only what they lack."""
        self._discard(stage)
        entry = self.manifest.stages[stage]
        self.manifest.stages[stage] = entry.model_copy(update={"status": "failed", "finished_at": _now(),
                                                               "error": error})
        self.save_manifest()

    def stage_status(self, stage: str) -> str | None:
        entry = self.manifest.stages.get(stage)
        return entry.status if entry is not None else None

    # records ----------------------------------------------------------------
    def append(self, stage: str, records: Iterable[BaseModel]) -> None:
        """Append while the stage runs: to its JSONL, flushed so a kill keeps what was written, and to the
        Parquet that stage_done() makes the stage's."""
        records = list(records)
        with (self.path / "records" / f"{stage}.jsonl").open("a", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if records:
            if stage not in self._sinks:
                self._sinks[stage] = ParquetSink(self.path / "records" / f"{stage}.parquet", type(records[0]))
            self._sinks[stage].add(records)

    def _discard(self, stage: str) -> None:
        sink = self._sinks.pop(stage, None)
        if sink is not None:
            sink.discard()

    def read(self, stage: str, model: type[R]) -> list[R]:
        """Records of a finished stage (Parquet), else what the JSONL holds."""
        parquet = self.path / "records" / f"{stage}.parquet"
        if parquet.is_file():
            import pandas as pd

            try:
                frame = pd.read_parquet(parquet)
            except (OSError, ValueError) as exc:  # pyarrow's errors for a truncated or foreign file
                raise ConfigError(str(parquet), None, f"not a readable Parquet file ({type(exc).__name__}): "
                                  "the file is truncated or corrupt") from None
            # Parquet gives a missing value back as NaN (or NA); a record's optional field wants None.
            # Column by column, then row by row: pandas' to_dict("records") takes longer than validating.
            names = [str(name) for name in frame.columns]
            columns = [frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in names]
            return [model.model_validate(dict(zip(names, row))) for row in zip(*columns)]
        jsonl = self.path / "records" / f"{stage}.jsonl"
        if not jsonl.is_file():
            return []
        records = []
        for number, line in enumerate(jsonl.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line:
                continue
            try:
                records.append(model.model_validate_json(line))
            except ValueError:  # pydantic's ValidationError included
                raise ConfigError(str(jsonl), None, f"line {number} is not a whole {model.__name__}: the file is "
                                  "truncated or corrupt") from None
        return records

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_json(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path / name, text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
