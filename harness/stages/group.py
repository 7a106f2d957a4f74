"""`harness compare base.yaml a.yaml b.yaml ...`: three or more checkpoints in one run.

The first file is the reference. Each candidate is compared with it exactly as a two-file run
compares them, into a run dir of its own inside the group's directory; with `pairs: all` every pair of
candidates is compared too, ungated, for the ranking. One cache serves every comparison, so each
checkpoint is trained, generates and is measured by lm-eval once: a checkpoint's second comparison
reads its answers and scores from the cache. The comparisons are evaluated first and decided after, so
that Holm adjusts every test of the run as one family. Then the group's own files: the ranking
(Bradley-Terry on every judged pair), a verdict per candidate and the overall one (`--require`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ConfigError
from harness.records.group_results import (
    GROUP,
    GroupComparison,
    GroupManifest,
    GroupStats,
    GroupVerdict,
    Require,
)
from harness.records.manifest import CommandLine
from harness.records.run_dir import atomic_write_json, new_run_id
from harness.records.run_files import read_run_file
from harness.render.group_summary import write_group_outputs
from harness.stages.heap import long_lived_heap
from harness.stages.pipeline import CompareResult, Evaluated, Inputs, Progress, conclude, evaluate, open_cache, prepare
from harness.verdict.run_stats import apply_holm_together


@dataclass(frozen=True)
class Comparison:
    dir: str
    inputs: Inputs
    gated: bool

    @property
    def base(self) -> str:
        return self.inputs.configs["base"].name

    @property
    def candidate(self) -> str:
        return self.inputs.configs["candidate"].name

    @property
    def label(self) -> str:
        return f"{self.base} vs {self.candidate}"


@dataclass(frozen=True)
class GroupInputs:
    names: list[str]
    files: list[str]
    comparisons: list[Comparison]
    require: Require

    @property
    def plan(self) -> Inputs:
        return self.comparisons[0].inputs


@dataclass(frozen=True)
class GroupResult:
    path: Path
    manifest: GroupManifest
    results: list[CompareResult]
    """Each comparison's, in the order of manifest.comparisons."""
    stats: GroupStats
    verdict: GroupVerdict


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)


def prepare_group(arguments: Sequence[str], plan_file: Path | None = None, policy_file: Path | None = None,
                  command_line: CommandLine | None = None, require: Require = "all") -> GroupInputs:
    """Load and validate every checkpoint and the one plan they are compared on; no model is touched."""
    asked = command_line or CommandLine()
    if asked.adapter is not None:
        raise ConfigError(None, "--adapter", "names the adapter of the one candidate of a two-checkpoint run; with "
                          "several candidates, give each its own checkpoint file with adapter:")
    with long_lived_heap():
        against_base = [prepare(arguments[0], candidate, plan_file, policy_file, asked)
                        for candidate in arguments[1:]]
    first = against_base[0]
    names = [first.configs["base"].name] + [i.configs["candidate"].name for i in against_base]
    files = [first.files["base"]] + [i.files["candidate"] for i in against_base]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(files[index], "name", f"{files[names.index(name)]} is also named {name!r}; give each "
                              "checkpoint its own name")
    for other in against_base[1:]:
        if other.plan.model_dump(mode="json") != first.plan.model_dump(mode="json"):
            raise ConfigError(other.files["candidate"], "plan", f"differs from the plan {first.plan_source} gives; "
                              "every checkpoint of a run is compared on one plan: give --plan, or the same plan: "
                              "block in every candidate file")
    # One plan: every comparison shares the first one's loaded suites, tasks and judge.
    comparisons = [Comparison(_slug(f"{names[0]}-vs-{i.configs['candidate'].name}"),
                              replace(i, suites=first.suites, tasks=first.tasks, judge=first.judge), True)
                   for i in against_base]
    if first.plan.pairs == "all":
        comparisons += [_between(a.inputs, b.inputs) for k, a in enumerate(comparisons) for b in comparisons[k + 1:]]
    dirs = [c.dir for c in comparisons]
    for c in comparisons:
        if dirs.count(c.dir) > 1:
            raise ConfigError(c.inputs.files["candidate"], "name", f"{c.label!r} and another comparison would share "
                              f"the directory {c.dir!r}; give the checkpoints names that differ in letters or digits")
    return GroupInputs(names, files, comparisons, require)


def _between(first: Inputs, second: Inputs) -> Comparison:
    """Two candidates compared with each other, for the ranking: judged on every pair (never stopped early:
    no gate decides it) and ungated."""
    plan = first.plan
    if plan.judge is not None and plan.judge.stop_early is not None:
        plan = plan.model_copy(update={"judge": plan.judge.model_copy(update={"stop_early": None})})
    base, candidate = first.configs["candidate"], second.configs["candidate"]
    inputs = replace(first, files={"base": first.files["candidate"], "candidate": second.files["candidate"]},
                     configs={"base": base, "candidate": candidate}, plan=plan, gates=[],
                     policy="none: a pair of candidates is compared for the ranking only")
    return Comparison(_slug(f"{base.name}-vs-{candidate.name}"), inputs, False)


def run_group(group: GroupInputs, runs_dir: Path, run_dir: Path | None = None, cache_path: Path | None = None,
              progress: Progress | None = None) -> GroupResult:
    path = run_dir or runs_dir / new_run_id(group.names[0], "+".join(group.names[1:]))
    manifest = _start(group, path, resume=run_dir is not None)
    evaluated: list[Evaluated] = []
    with long_lived_heap() as settle, open_cache(cache_path) as cache:
        try:
            for c in group.comparisons:
                labelled = (lambda label, n, total, c=c: progress(f"{c.label}: {label}", n, total)) \
                    if progress else None
                evaluated.append(evaluate(c.inputs, cache, path, path / c.dir, labelled, settle))
            family = [c.label for c in group.comparisons]
            apply_holm_together([e.run_stats for e in evaluated])
            for e in evaluated:
                e.run_stats.holm_family = family
            results = [conclude(e) for e in evaluated]
        finally:
            for e in evaluated:
                e.run.close()
    stats, verdict = write_group_outputs(path, manifest, [r.decision for r in results], group.plan.plan.seed)
    manifest.finished_at = _now()
    atomic_write_json(path / GROUP, manifest.model_dump(mode="json"))
    return GroupResult(path, manifest, results, stats, verdict)


def _start(group: GroupInputs, path: Path, resume: bool) -> GroupManifest:
    """group.json, written before any comparison starts; a resumed group must be of the same comparisons."""
    comparisons = [GroupComparison(dir=c.dir, base=c.base, candidate=c.candidate, gated=c.gated)
                   for c in group.comparisons]
    manifest = GroupManifest(group_id=path.name, created_at=_now(), checkpoints=group.names, files=group.files,
                             pairs=group.plan.plan.pairs, require=group.require, comparisons=comparisons)
    try:
        path.mkdir(parents=True, exist_ok=resume)
    except FileExistsError:
        raise ConfigError(str(path), None, "already exists; a run is resumed only with --run-dir") from None
    if (path / GROUP).is_file():
        existing = read_run_file(path / GROUP, GroupManifest)
        if existing.comparisons != manifest.comparisons:
            raise ConfigError(str(path), None, "this directory holds a run of other checkpoints; choose a new "
                              "--run-dir")
        manifest.created_at, manifest.group_id = existing.created_at, existing.group_id
    elif resume and any(path.iterdir()):
        raise ConfigError(str(path), None, "is not empty and holds no run of several checkpoints (group.json); "
                          "choose a new --run-dir")
    atomic_write_json(path / GROUP, manifest.model_dump(mode="json"))
    return manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

