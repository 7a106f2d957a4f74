"""manifest.json: what a run compared, with what, on what, and how far each stage got.

The resolved input configs (`checkpoints.*.config`, `plan`, `policy.gates`) are kept as the
dicts their own pydantic models dumped: they are re-validated by those models where they are
used again (`harness gate` re-reads the policy), and a record of them must not drop a field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.records.run_results import SCHEMA_VERSION, RunFile, TrainingResult


class CheckpointEntry(RunFile):
    name: str
    file: str
    model_path: str | None
    fingerprint: str | None
    chat_template_sha256: str | None
    chat_template_source: str | None
    backend: str
    config: dict[str, Any]


class SuiteEntry(RunFile):
    name: str
    path: str
    """Where the suite was read from."""
    sha256: str
    items: int
    run_copy: str | None = None
    """The run's own copy, relative to the run dir (None in runs before schema 2)."""


class TaskEntry(RunFile):
    name: str
    source: str
    sha256: str | None


class ForgettingInfo(RunFile):
    lm_eval_version: str | None = None
    tasks: list[TaskEntry] = []


class JudgeInfo(RunFile):
    name: str
    kind: str
    model: str | None
    definition: str | None
    definition_sha256: str | None
    gold: str | None = None
    """judge.gold: the gold set file the judge was scored on, and its sha256."""
    gold_sha256: str | None = None


class PolicyInfo(RunFile):
    source: str
    gates: list[dict[str, Any]]
    """As written (unset fields stay unset), so `harness gate` re-decides by the same gates."""


class CommandLine(RunFile):
    """What the command line changed beyond the files: recorded so a run says how it was asked for."""

    overrides: list[str] = []
    """`--set` arguments as typed."""
    adapter: str | None = None
    backend: str | None = None
    limit: int | None = None
    """Items per suite and per forgetting task (the first N)."""


class StageEntry(BaseModel):
    """A stage's progress. Each stage adds its own counters (cached, generated, calls, ...)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["running", "done", "failed"]
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None
    records: int | None = None
    results: dict[str, TrainingResult] | None = None
    """The train stage's result per trained role."""
    error: str | None = None
    """Why a failed stage stopped (an engine, endpoint or lm-eval failure)."""

    @property
    def counters(self) -> dict[str, Any]:
        """The stage's own counters."""
        return dict(self.__pydantic_extra__ or {})


class Manifest(RunFile):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: str
    finished_at: str | None = None
    inputs_hash: str
    checkpoints: dict[str, CheckpointEntry]
    plan: dict[str, Any]
    """The resolved plan, with `source` (the file it came from, or defaults)."""
    suites: list[SuiteEntry]
    forgetting: ForgettingInfo
    judge: JudgeInfo | None
    policy: PolicyInfo
    seeds: dict[str, int | None]
    packages: dict[str, str | None]
    git: dict[str, Any] | None
    hardware: dict[str, Any]
    command_line: CommandLine = CommandLine()
    stages: dict[str, StageEntry] = {}

    def stage(self, name: str) -> StageEntry | None:
        return self.stages.get(name)

    def running_stage(self) -> str | None:
        """The stage this run was in when it stopped (None between stages)."""
        return next((name for name, s in self.stages.items() if s.status == "running"), None)

    def training(self) -> dict[str, TrainingResult]:
        """The train stage's results per role ({} when nothing was trained)."""
        train = self.stages.get("train")
        return dict(train.results or {}) if train is not None else {}
