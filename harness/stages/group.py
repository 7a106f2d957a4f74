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

from harness.errors import ConfigError, InfraError
from harness.locks import HeldLock
from harness.records.cache import content_key
from harness.records.group_results import (
    GROUP,
    GroupComparison,
    GroupManifest,
    GroupStats,
    GroupVerdict,
    Require,
)
from harness.records.manifest import CommandLine
from harness.records.run_dir import LOCK, atomic_write_json, claim_dir, new_run_id
from harness.records.run_files import read_run_file
from harness.render.group_summary import write_group_outputs
from harness.stages.heap import long_lived_heap
from harness.stages.pipeline import CompareResult, Evaluated, Inputs, Progress, conclude, evaluate, open_cache, prepare
from harness.stages.preflight import TrainedBefore, preflight
from harness.verdict.run_stats import apply_holm_together

MAX_ID = 120
"""Characters of a run's directory name (a file name may hold 255 bytes; a name may be UTF-8)."""


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
        first = prepare(arguments[0], arguments[1], plan_file, policy_file, asked)
        against_base = [first] + [prepare(arguments[0], candidate, plan_file, policy_file, asked, same_plan_as=first)
                                  for candidate in arguments[2:]]
    names = [first.configs["base"].name] + [i.configs["candidate"].name for i in against_base]
    files = [first.files["base"]] + [i.files["candidate"] for i in against_base]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(files[index], "name", f"{files[names.index(name)]} is also named {name!r}; give each "
                              "checkpoint its own name")
    comparisons = [Comparison(_slug(f"{names[0]}-vs-{i.configs['candidate'].name}"), i, True) for i in against_base]
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
    path = run_dir or runs_dir / _group_id(group.names)
    evaluated: list[Evaluated] = []
    with long_lived_heap() as settle, open_cache(cache_path) as cache:
        trained: TrainedBefore = {}
        for c in group.comparisons:  # before anything is written, as a run of two checks and trains
            preflight(c.inputs, cache, progress, trained)
        manifest, lock = _start(group, path, resume=run_dir is not None)
        try:
            try:
                for c in group.comparisons:
                    labelled = (lambda label, n, total, c=c: progress(f"{c.label}: {label}", n, total)) \
                        if progress else None
                    evaluated.append(evaluate(c.inputs, cache, path, path / c.dir, labelled, settle, trained))
            except InfraError as exc:
                raise InfraError(f"{exc}; a run of several checkpoints resumes as a whole: rerun the same command "
                                 f"with --run-dir {path}") from exc
            family = [c.label for c in group.comparisons]
            apply_holm_together([e.run_stats for e in evaluated])
            for e in evaluated:
                e.run_stats.holm_family = family
            results = [conclude(e) for e in evaluated]
            for e in evaluated:  # stop being their writer before the group's files name their verdicts
                e.run.close()
            stats, verdict = write_group_outputs(path, manifest, [r.decision for r in results],
                                                 group.plan.plan.seed)
            manifest.finished_at = _now()
            atomic_write_json(path / GROUP, manifest.model_dump(mode="json"))
        finally:
            for e in evaluated:
                e.run.close()
            lock.release()
    return GroupResult(path, manifest, results, stats, verdict)


def _group_id(names: Sequence[str]) -> str:
    """new_run_id of the reference and the candidates, its names cut to stay well inside a file name's limit."""
    run_id = new_run_id(names[0], "+".join(names[1:]))
    return run_id if len(run_id) <= MAX_ID else run_id[:MAX_ID - 9] + "-" + content_key({"names": list(names)})[:8]


def _start(group: GroupInputs, path: Path, resume: bool) -> tuple[GroupManifest, HeldLock]:
    """The group's directory and its one writer's lock; group.json is written when the run is new. A resumed
    run must be of the same comparisons, and its group.json is rewritten only when it finishes again."""
    comparisons = [GroupComparison(dir=c.dir, base=c.base, candidate=c.candidate, gated=c.gated)
                   for c in group.comparisons]
    manifest = GroupManifest(group_id=path.name, created_at=_now(), checkpoints=group.names, files=group.files,
                             pairs=group.plan.plan.pairs, require=group.require, comparisons=comparisons)
    lock = claim_dir(path, resume)
    try:
        if (path / GROUP).is_file():
            existing = read_run_file(path / GROUP, GroupManifest)
            if existing.comparisons != manifest.comparisons:
                raise ConfigError(str(path), None, "this directory holds a run of other checkpoints; choose a new "
                                  "--run-dir")
            manifest.created_at, manifest.group_id = existing.created_at, existing.group_id
        elif resume and any(p.name != LOCK for p in path.iterdir()):
            raise ConfigError(str(path), None, "is not empty and holds no run of several checkpoints (group.json); "
                              "choose a new --run-dir")
        else:
            atomic_write_json(path / GROUP, manifest.model_dump(mode="json"))
    except BaseException:
        lock.release()
        raise
    return manifest, lock


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

