"""Read-only views of a run of three or more checkpoints, for the report's Ranking page: the group's
files, and any two checkpoints' answers side by side (each read from a comparison it took part in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.records.group_results import GROUP, GroupManifest, GroupStats, GroupVerdict
from harness.records.run_files import read_run_file
from harness.report.run_data import Unreadable, read_records, records_file

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


def _answers(group: GroupInfo, name: str) -> pd.DataFrame | None:
    """A checkpoint's answers, from the first comparison it took part in."""
    for c in group.manifest.comparisons:
        role = "base" if c.base == name else "candidate" if c.candidate == name else None
        file = records_file(group.path / c.dir, "generations") if role else None
        if file is not None:
            frame = read_records(file)
            return frame[frame["role"] == role][["suite", "item_id", "sample_index", "text"]]
    return None


def side_by_side(group: GroupInfo, first: str, second: str) -> pd.DataFrame | None:
    """Both checkpoints' answers to the same items (suite, item, sample), one row each."""
    a, b = _answers(group, first), _answers(group, second)
    if a is None or b is None:
        return None
    joined = a.merge(b, on=["suite", "item_id", "sample_index"], suffixes=(" a", " b"))
    return joined.rename(columns={"text a": first, "text b": second})
