"""Read-only views of run dirs, for the report.

The report computes nothing: every number it shows was written by a stage
(stats.json, verdict.json, the manifest, the records). This module only
finds run dirs, reads their files through their models (tolerating stages that
have not landed or are still appending, and naming a file it cannot read), and
hands them to harness.report.tables, which lays the stored values out as
tables of numbers. It never writes, and it never imports Streamlit, so it is
tested without a browser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel

from harness.errors import ConfigError
from harness.records.group_results import GROUP
from harness.records.manifest import CheckpointEntry, Manifest, StageEntry
from harness.records.run_files import read_run_file
from harness.records.run_results import (
    ForgettingTask,
    JudgeSummary,
    PairedRates,
    RunStats,
    TrainingResult,
    Verdict,
)

if TYPE_CHECKING:
    import pandas as pd

RECORD_STAGES = ("train", "generations", "checks", "judge", "forgetting")
StageState = Literal["done", "running", "failed", "missing"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RunInfo:
    """One run dir's small files, as their models; the records are read on demand."""

    path: Path
    manifest: Manifest
    verdict: Verdict | None
    """None until the run writes it (or when it cannot be read: see problems)."""
    stats: RunStats | None
    problems: dict[str, str] = field(default_factory=dict)
    """Why a file that is there cannot be read (corrupt, or written by a newer harness), by file name."""

    @property
    def name(self) -> str:
        """The dir's name; a comparison of a run of several checkpoints is named group/comparison."""
        if (self.path.parent / GROUP).is_file():
            return f"{self.path.parent.name}/{self.path.name}"
        return self.path.name

    @property
    def created_at(self) -> str:
        return self.manifest.created_at

    @property
    def outcome(self) -> str:
        if self.verdict is not None:
            return self.verdict.outcome
        return "unreadable" if "verdict.json" in self.problems else "no verdict yet"

    @property
    def problem_lines(self) -> list[str]:
        return [f"{file}: {why}" for file, why in self.problems.items()]

    def checkpoint(self, role: str) -> CheckpointEntry | None:
        return self.manifest.checkpoints.get(role)

    def checkpoint_name(self, role: str) -> str:
        entry = self.checkpoint(role)
        return entry.name if entry is not None else role

    @property
    def base_identity(self) -> str:
        """What makes two runs 'of the same base': its weights' fingerprint, else its name."""
        base = self.checkpoint("base")
        return (base.fingerprint or base.name) if base is not None else "?"

    def stage(self, name: str) -> StageEntry | None:
        return self.manifest.stage(name)

    def stage_state(self, name: str) -> StageState:
        entry = self.stage(name)
        if entry is not None and entry.status in ("done", "failed"):
            return entry.status
        if entry is not None or records_file(self.path, name) is not None:
            return "running"
        return "missing"

    @property
    def suite_rates(self) -> dict[str, PairedRates]:
        return self.stats.suites if self.stats is not None else {}

    @property
    def judge(self) -> JudgeSummary | None:
        return self.stats.judge if self.stats is not None else None

    @property
    def forgetting_tasks(self) -> dict[str, ForgettingTask]:
        forgetting = self.stats.forgetting if self.stats is not None else None
        return forgetting.tasks if forgetting is not None else {}

    @property
    def training(self) -> dict[str, TrainingResult]:
        return self.manifest.training()


@dataclass(frozen=True)
class Unreadable:
    """A run dir whose manifest.json cannot be read: listed with why, and shown nowhere else."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return self.path.name


# files ------------------------------------------------------------------------

def list_run_dirs(runs_dir: Path) -> list[Path]:
    """Run dirs directly under runs_dir (runs_dir itself when it is one), and the comparisons of each run of
    several checkpoints there (or of runs_dir itself), by name."""
    if (runs_dir / "manifest.json").is_file():
        return [runs_dir]
    if not runs_dir.is_dir():
        return []
    found: list[Path] = []
    for p in sorted([runs_dir] if (runs_dir / GROUP).is_file() else runs_dir.iterdir()):
        if (p / "manifest.json").is_file():
            found.append(p)
        elif (p / GROUP).is_file():
            found += sorted(c for c in p.iterdir() if (c / "manifest.json").is_file())
    return found


def load_run(path: Path) -> RunInfo | Unreadable | None:
    """A run dir's manifest, verdict and stats; None while it has no manifest yet (being created).
    Every whole-file write is atomic, so a file that does not read is corrupt or from a newer harness."""
    problems: dict[str, str] = {}
    manifest = _read(path / "manifest.json", Manifest, problems)
    if manifest is None:
        return Unreadable(path, f"manifest.json: {problems['manifest.json']}") if problems else None
    return RunInfo(path, manifest, _read(path / "verdict.json", Verdict, problems),
                   _read(path / "stats.json", RunStats, problems), problems)


def _read(file: Path, model: type[M], problems: dict[str, str]) -> M | None:
    """The file as its model; None when it is not there, or when it cannot be read (why goes in problems)."""
    if not file.is_file():
        return None
    try:
        return read_run_file(file, model)
    except ConfigError as exc:  # the page names the run and the file: the reason is the rest of the line
        problems[file.name] = ": ".join(part for part in (exc.field, exc.message) if part)
    except OSError as exc:
        problems[file.name] = exc.strerror or type(exc).__name__
    return None


def records_file(run: Path, stage: str) -> Path | None:
    """Parquet once the stage is complete, else the JSONL it is appending to."""
    for suffix in (".parquet", ".jsonl"):
        file = run / "records" / f"{stage}{suffix}"
        if file.is_file():
            return file
    return None


def read_records(file: Path) -> pd.DataFrame:
    """A stage's records. A JSONL being appended may end in a half-written line: skip it."""
    import pandas as pd

    if file.suffix == ".parquet":
        return pd.read_parquet(file)
    rows = []
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows)


def file_signature(file: Path) -> tuple[str, int, int]:
    """(path, mtime, size): the cache key of a file's parsed contents."""
    st = file.stat()
    return str(file), st.st_mtime_ns, st.st_size
