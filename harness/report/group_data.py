"""Read-only views of a run of three or more checkpoints, for the report's Ranking page: the group's
files, and any two checkpoints' answers side by side (each read from a comparison it took part in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.records.group_results import GROUP, GroupManifest, GroupStats, GroupVerdict
from harness.records.run_files import read_run_file
from harness.report.run_data import Unreadable

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GroupInfo:
    path: Path
    manifest: GroupManifest
    stats: GroupStats | None
    """None until the run finishes."""
    verdict: GroupVerdict | None


def group_of(run_path: Path) -> GroupInfo | Unreadable | None:
    """The run of several checkpoints a comparison's run dir belongs to; None for a two-checkpoint run, and
    Unreadable (with why) when one of the group's files is there but does not read."""
    path = run_path.parent
    if not (path / GROUP).is_file():
        return None
    try:
        manifest = read_run_file(path / GROUP, GroupManifest)
        stats = read_run_file(path / "stats.json", GroupStats) if (path / "stats.json").is_file() else None
        verdict = read_run_file(path / "verdict.json", GroupVerdict) if (path / "verdict.json").is_file() else None
    except ConfigError as exc:
        return Unreadable(path, str(exc))
    return GroupInfo(path, manifest, stats, verdict)


def pair_row(stats: GroupStats, first: str, second: str) -> dict[str, Any] | None:
    """The fitted probability that `first` beats `second`, its interval, and how many pairs were judged."""
    assert stats.ranking is not None
    for p in stats.ranking.pairs:
        if (p.first, p.second) == (first, second):
            return {"probability": p.probability, "ci": p.ci, "judged": p.judged}
        if (p.first, p.second) == (second, first):
            return {"probability": 1 - p.probability, "ci": (1 - p.ci[1], 1 - p.ci[0]), "judged": p.judged}
    return None


def answers_in(group: GroupInfo, name: str) -> tuple[Path, str] | None:
    """Where a checkpoint's answers are: the run dir of the first comparison it took part in, and its role."""
    for c in group.manifest.comparisons:
        if name in (c.base, c.candidate):
            return group.path / c.dir, "base" if c.base == name else "candidate"
    return None


def side_by_side(first: pd.DataFrame, first_role: str, second: pd.DataFrame, second_role: str,
                 names: tuple[str, str]) -> pd.DataFrame:
    """Two checkpoints' answers (from their comparisons' generation records) to the same items (suite,
    item, sample), one row each, a column per checkpoint."""
    keys = ["suite", "item_id", "sample_index"]
    a = first[first["role"] == first_role][[*keys, "text"]]
    b = second[second["role"] == second_role][[*keys, "text"]]
    joined = a.merge(b, on=keys, suffixes=(" a", " b"))
    return joined.rename(columns={"text a": names[0], "text b": names[1]})
