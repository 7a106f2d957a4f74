"""The files of a run of three or more checkpoints (`harness compare base.yaml a.yaml b.yaml`).

Such a run is a directory of comparisons: each is a complete run dir of today's kind (base and
candidate), so every command and report page that reads a run reads each of them. Beside them:
group.json (what was compared, and where), stats.json (the ranking), verdict.json (a verdict per
candidate and the overall one), summary.md and junit.xml.
"""

from __future__ import annotations

from typing import Literal

from harness.records.run_results import RunFile

GROUP = "group.json"
GROUP_SCHEMA_VERSION = 1
Require = Literal["all", "any"]


class GroupComparison(RunFile):
    dir: str
    """The comparison's run dir, relative to the group's."""
    base: str
    candidate: str
    gated: bool
    """Against the reference: its gates decide the candidate's verdict. A pair of candidates (`pairs: all`) is
    judged for the ranking only."""


class GroupManifest(RunFile):
    schema_version: int = GROUP_SCHEMA_VERSION
    group_id: str
    created_at: str
    finished_at: str | None = None
    checkpoints: list[str]
    """Names, the reference (the first file) first."""
    files: list[str]
    """Where each came from: a checkpoint file, a model directory or a hub id."""
    pairs: Literal["base", "all"]
    require: Require
    comparisons: list[GroupComparison]

    @property
    def reference(self) -> str:
        return self.checkpoints[0]


class RankedCheckpoint(RunFile):
    name: str
    strength: float
    """Bradley-Terry log-odds of beating the reference (0 for the reference itself)."""
    strength_ci: tuple[float, float]
    win_probability: float
    """Of beating the reference, under the fitted model (0.5 for the reference)."""
    wins: int
    losses: int
    ties: int


class PairProbability(RunFile):
    first: str
    second: str
    probability: float
    """That `first` wins against `second`, under the fitted model."""
    ci: tuple[float, float]
    judged: int
    """Judged pairs of answers between these two (0 when the model infers it through the others)."""


class RankingStats(RunFile):
    method: str = "Bradley-Terry, maximum likelihood; 95% percentile bootstrap over judged pairs"
    games: int
    """Judged pairs of answers (canaries, failed and unparsed judgments left out; a tie counts half)."""
    resamples: int
    checkpoints: list[RankedCheckpoint]
    """Strongest first."""
    pairs: list[PairProbability]


class GroupStats(RunFile):
    schema_version: int = GROUP_SCHEMA_VERSION
    seed: int
    holm_family: list[str]
    """The comparisons whose p-values were Holm-adjusted together."""
    ranking: RankingStats | None
    """None when the plan has no judge."""


class CandidateVerdict(RunFile):
    name: str
    comparison: str
    outcome: Literal["pass", "fail", "inconclusive", "ungated"]
    exit_code: int
    reason: str


class GroupVerdict(RunFile):
    schema_version: int = GROUP_SCHEMA_VERSION
    outcome: Literal["pass", "fail", "inconclusive", "ungated"]
    exit_code: int
    reason: str
    require: Require
    candidates: list[CandidateVerdict]
