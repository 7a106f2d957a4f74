"""`harness compare`: the pipeline, stage by stage, through the run dir.

Everything is validated before any model loads; the run dir is created only
after that, so bad input leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config.arguments import load_checkpoint_argument, parse_overrides
from harness.config.loading import choose_plan
from harness.config.plans import limit_plan, limit_suite, with_plan_overrides
from harness.config.schema import CheckpointConfig, GateConfig, PlanConfig
from harness.config.suites import Suite, load_suites
from harness.engines.checkpoint import ResolvedCheckpoint, resolve_checkpoint
from harness.errors import ConfigError, InfraError
from harness.records.answers import Answers, Judgments
from harness.records.cache import Cache, content_key, default_cache_dir
from harness.records.forgetting_results import write_forgetting_results
from harness.records.group_results import GROUP
from harness.records.manifest import CommandLine, Manifest
from harness.records.outcomes import CheckedAnswers
from harness.records.provenance import git_commit, hardware, numeric_environment, package_versions
from harness.records.run_dir import RunDir, atomic_write_text, new_run_id
from harness.records.run_results import GoldAgreement, RunStats, SequentialSummary, TrainingResult, Verdict
from harness.records.stage_records import (
    CheckRecord,
    ForgettingRecord,
    GenerationRecord,
    JudgmentRecord,
    Role,
    TrainStepRecord,
)
from harness.render.decision_files import policy_for, write_outputs
from harness.render.run_summary import RunSummary
from harness.resources import CHECKOUT, in_checkout
from harness.stages.checks import check_answers
from harness.stages.forgetting import TaskSpec, check_engine, lm_eval_version, resolve_tasks, run_forgetting
from harness.stages.generate import run_generation
from harness.stages.heap import long_lived_heap as _long_lived_heap
from harness.stages.judge.stage import Judge, load_judge, run_judging
from harness.stages.judge.stopping import check_stop_early, win_rate_gates
from harness.stages.preflight import TrainedBefore, preflight
from harness.stages.train.sft import TrainOutcome
from harness.verdict.gate import Decision
from harness.verdict.judge_stats import summarize_judgments
from harness.verdict.passk import check_sampled_plan
from harness.verdict.run_stats import apply_holm, forgetting_stats, sampled_stats, subject_rng, suite_stats

Progress = Callable[[str, int, int], None]
"""(label, advance, total) -> None."""


@dataclass(frozen=True)
class Inputs:
    files: dict[Role, str]
    configs: dict[Role, CheckpointConfig]
    plan: PlanConfig
    plan_source: str
    suites: list[Suite]
    tasks: list[TaskSpec]
    """Forgetting tasks (empty when the plan has none)."""
    gates: list[GateConfig]
    policy: str
    """Where the gates came from (for the verdict)."""
    judge: Judge | None
    command_line: CommandLine = field(default_factory=CommandLine)


@dataclass(frozen=True)
class CompareResult:
    run_dir: Path
    summary: RunSummary
    verdict: Verdict
    stats: dict[str, Any]
    """The generation stage's counters."""
    training: dict[str, TrainingResult]
    """Per trained role: the smoke verdict, data counts and timings of its SFT run."""
    run_stats: RunStats
    """What stats.json holds: paired tests per suite and forgetting task, and the judge summary."""
    decision: Decision
    manifest: Manifest


def prepare(base_arg: str | Path, candidate_arg: str | Path, plan_file: Path | None = None,
            policy_file: Path | None = None, command_line: CommandLine | None = None,
            same_plan_as: Inputs | None = None) -> Inputs:
    """Load and validate every input (checkpoint files, or models named on the command line); no model
    is touched. `same_plan_as`: another comparison of the same run, whose plan this one must have and
    whose loaded suites, tasks, judge and gates it shares (read once for the whole run)."""
    with _long_lived_heap():
        return _prepare(base_arg, candidate_arg, plan_file, policy_file, command_line, same_plan_as)


def _prepare(base_arg: str | Path, candidate_arg: str | Path, plan_file: Path | None,
             policy_file: Path | None, command_line: CommandLine | None, same_plan_as: Inputs | None) -> Inputs:
    asked = command_line or CommandLine()
    overrides = parse_overrides(asked.overrides)
    base, base_file = load_checkpoint_argument(str(base_arg), "base", overrides, None, asked.backend)
    candidate, candidate_file = load_checkpoint_argument(str(candidate_arg), "candidate", overrides, asked.adapter,
                                                         asked.backend)
    if base.name == candidate.name:
        raise ConfigError(candidate_file, "name", f"the base is also named {base.name!r}; give each its own name")
    plan = limit_plan(with_plan_overrides(choose_plan(candidate, base, plan_file, candidate_file, base_file),
                                          overrides.plan), asked.limit)
    for config, file in ((base, base_file), (candidate, candidate_file)):
        if config.endpoint is not None:
            config.endpoint.api_key(str(file), "endpoint.api_key_env")  # set, before any model loads
    source = str(plan_file) if plan_file else (candidate_file if candidate.plan else "defaults")
    where = "forgetting" if plan_file else "plan.forgetting"
    if same_plan_as is None:
        suites = [limit_suite(s, asked.limit)
                  for s in load_suites(plan.suites, source if source != "defaults" else "plan")]
        tasks = resolve_tasks(plan.forgetting, source, where) if plan.forgetting else []
        judge = load_judge(plan.judge, source) if plan.judge else None
        gates, policy = policy_for(plan, policy_file)
        check_stop_early(plan.judge, gates, source, policy)
    else:
        if plan.model_dump(mode="json") != same_plan_as.plan.model_dump(mode="json"):
            raise ConfigError(candidate_file, "plan", f"differs from the plan {same_plan_as.plan_source} gives; "
                              "every checkpoint of a run is compared on one plan: give --plan, or the same plan: "
                              "block in every candidate file")
        shared = same_plan_as
        suites, tasks, judge, gates, policy = shared.suites, shared.tasks, shared.judge, shared.gates, shared.policy
    check_sampled_plan(plan, base.sampling.n, candidate.sampling.n, suites,
                       source if source != "defaults" else None, prefix="" if plan_file else "plan.")
    for config in (base, candidate):
        if plan.forgetting:
            check_engine(plan.forgetting, config, source, where)
    return Inputs({"base": base_file, "candidate": candidate_file},
                  {"base": base, "candidate": candidate}, plan, source, suites, tasks, gates, policy, judge, asked)


def _manifest(inputs: Inputs, checkpoints: dict[Role, ResolvedCheckpoint], run_id: str) -> Manifest:
    suites = [{"name": s.name, "path": str(s.path), "sha256": s.content_hash, "items": len(s.items)}
              for s in inputs.suites]
    resolved = {role: {"name": c.name, "file": c.file, "model_path": c.model_path, "fingerprint": c.fingerprint,
                       "chat_template_sha256": c.template_hash, "chat_template_source": c.template_source,
                       "backend": _backend_name(c), "config": c.config.model_dump(mode="json", exclude={"plan"})}
                for role, c in checkpoints.items()}
    tasks = [{"name": t.name, "source": t.source, "sha256": t.sha256} for t in inputs.tasks]
    judge = None
    if inputs.judge is not None:
        d = inputs.judge.definition
        judge = {"name": inputs.judge.name, "kind": inputs.judge.kind, "model": inputs.judge.model,
                 "definition": str(d.path) if d else None, "definition_sha256": d.sha256 if d else None}
        if inputs.judge.gold is not None:  # (absent otherwise, so that earlier runs keep their inputs hash)
            judge.update(gold=str(inputs.judge.gold.path), gold_sha256=inputs.judge.gold.sha256)
    hashed: dict[str, Any] = {
        "checkpoints": {r: (c["fingerprint"], c["config"]) for r, c in resolved.items()},
        "suites": [s["sha256"] for s in suites], "tasks": [t["sha256"] for t in tasks], "judge": judge,
        # Gates decide from the records; they change no record, so a run may resume under another policy.
        # Nor do the pairs of a run of several checkpoints: they choose the comparisons, not what one holds.
        "plan": inputs.plan.model_dump(mode="json", exclude={"gates", "pairs"})}
    if inputs.plan.judge is not None and inputs.plan.judge.stop_early is not None:
        # Except the win-rate gates that decide where judging stops: they choose which pairs are judged.
        hashed["stop_early_gates"] = [g.model_dump(mode="json") for g in win_rate_gates(inputs.gates)]
    if inputs.command_line.limit is not None:  # fewer items than the suite files hold
        hashed["limit"] = inputs.command_line.limit
    inputs_hash = content_key(hashed)
    return Manifest.model_validate({
        "run_id": run_id, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs_hash": inputs_hash, "checkpoints": resolved,
        "plan": {"source": inputs.plan_source, **inputs.plan.model_dump(mode="json")}, "suites": suites,
        "forgetting": {"lm_eval_version": lm_eval_version() if tasks else None, "tasks": tasks},
        "judge": judge,
        # What the gates were, as written (unset fields stay unset), so `harness gate` can re-decide by them.
        "policy": {"source": inputs.policy,
                   "gates": [g.model_dump(mode="json", exclude_unset=True) for g in inputs.gates]},
        "seeds": {"plan": inputs.plan.seed, **{r: c.config.sampling.seed for r, c in checkpoints.items()}},
        "packages": package_versions(), "git": git_commit(CHECKOUT) if in_checkout() else None, "hardware": hardware(),
        "command_line": inputs.command_line.model_dump(), "stages": {},
    })


def _record_training(run: RunDir, trained: dict[Role, TrainOutcome], seconds: float) -> dict[str, TrainingResult]:
    """The train stage's records (per-step curves) and its result, copied into the run. Training ran
    before the run dir existed (its name needs the trained checkpoint): `seconds` is its wall time."""
    if not trained:
        return {}
    started = run.stage_started("train") - seconds
    steps = [s.model_copy(update={"role": role}) for role, outcome in trained.items() for s in outcome.steps]
    run.append("train", steps)
    training: dict[str, TrainingResult] = {
        role: o.result.model_copy(update={"output_dir": str(o.output_dir), "reused": o.reused})
        for role, o in trained.items()}
    run.stage_done("train", started, TrainStepRecord,
                   results={r: t.model_dump(mode="json") for r, t in training.items()})
    return training


def _checks_stage(inputs: Inputs, run: RunDir, generations: Answers) -> CheckedAnswers:
    started = run.stage_started("checks")
    checked = check_answers(inputs.suites, generations, lambda records: run.append("checks", records))
    run.stage_done("checks", started, CheckRecord)
    return checked


def _judge_stage(inputs: Inputs, run: RunDir, generations: Answers, checks: CheckedAnswers,
                 cache: Cache, progress: Progress | None) -> Judged | None:
    if inputs.plan.judge is None:
        return None
    started = run.stage_started("judge")
    gold_records: list[JudgmentRecord] = []
    _, jstats = run_judging(
        inputs.plan.judge, inputs.suites, generations, checks, cache, lambda recs: run.append("judge", recs),
        inputs.plan.seed, (lambda n, total: progress("judging", n, total)) if progress else None, inputs.plan_source,
        inputs.gates, emit_gold=gold_records.extend, keep=False)
    sequential: SequentialSummary | None = jstats.pop("sequential", None)
    if sequential is not None:  # the counts in the manifest too; stats.json has the whole summary
        jstats.update(items=sequential.items, judged_items=sequential.judged_items, calls_saved=sequential.calls_saved)
    gold: GoldAgreement | None = jstats.pop("gold", None)
    if gold is not None:  # the gold set's verdicts, whole (a resumed stage rewrites them from the cache)
        lines = "".join(r.model_dump_json() + "\n" for r in gold_records)
        atomic_write_text(run.path / "records" / "gold.jsonl", lines)
        jstats.update(gold_items=gold.items, gold_agreed=gold.agreed)
    run.stage_done("judge", started, JudgmentRecord, **{k: v for k, v in jstats.items() if k != "seconds"})
    # Read back as columns, without the judge's replies: the statistics read every judgment.
    return Judged(Judgments.read(run.path / "records" / "judge.parquet"), sequential, gold)


def _forgetting_stage(inputs: Inputs, run: RunDir, checkpoints: dict[Role, ResolvedCheckpoint], cache: Cache,
                      progress: Progress | None) -> list[ForgettingRecord] | None:
    if not inputs.plan.forgetting or not inputs.tasks:
        return None
    if progress:
        progress("forgetting (lm-eval)", 0, 2)
    started = run.stage_started("forgetting")

    def emit(records: list[ForgettingRecord]) -> None:
        run.append("forgetting", records)

    records, fstats = run_forgetting(inputs.plan.forgetting, inputs.tasks, checkpoints, cache,
                                     cache.path.parent, inputs.plan.seed, emit,
                                     keep=lambda results: write_forgetting_results(run.path, results))
    run.stage_done("forgetting", started, ForgettingRecord, **asdict(fstats))
    if progress:
        progress("forgetting (lm-eval)", 2, 2)
    return records


@dataclass(frozen=True)
class Judged:
    records: Judgments
    sequential: SequentialSummary | None
    """judge.stop_early: where judging stopped and why."""
    gold: GoldAgreement | None = None
    """judge.gold: the judge's agreement with the gold set."""


def _run_stats(inputs: Inputs, manifest: Manifest, checks: CheckedAnswers,
               judgments: Judged | None, forgetting: list[ForgettingRecord] | None) -> RunStats:
    """stats.json: paired tests per suite and forgetting task (Holm-adjusted together) and the judge summary.
    Every random draw comes from the plan seed, one generator per subject."""
    seed = inputs.plan.seed
    run_stats = RunStats(seed=seed, suites=suite_stats([s.name for s in inputs.suites], checks, seed))
    run_stats.sampled = sampled_stats([s.name for s in inputs.suites], checks, inputs.plan.pass_at_k,
                                      inputs.plan.majority_vote, seed)
    if inputs.plan.forgetting and forgetting is not None:
        run_stats.forgetting = forgetting_stats(forgetting, inputs.plan.forgetting, seed).model_copy(
            update={"lm_eval_version": manifest.forgetting.lm_eval_version})
    if judgments is not None:
        run_stats.judge = summarize_judgments(judgments.records, subject_rng(seed, "judge"), judgments.sequential)
        run_stats.judge.gold = judgments.gold
    return apply_holm(run_stats)


def _backend_name(checkpoint: ResolvedCheckpoint) -> str:
    from harness.engines import choose_backend

    return choose_backend(checkpoint.config.backend)


@dataclass
class Evaluated:
    """A comparison evaluated up to its statistics (not yet Holm-adjusted, nothing decided): its run dir
    is open, with this process as its writer, until conclude() or close()."""
    inputs: Inputs
    run: RunDir
    generations: Answers
    checks: CheckedAnswers
    run_stats: RunStats
    training: dict[str, TrainingResult]
    stats: dict[str, Any]


def run_compare(inputs: Inputs, runs_dir: Path, run_dir: Path | None = None, cache_path: Path | None = None,
                progress: Progress | None = None) -> CompareResult:
    if run_dir is not None and ((run_dir / GROUP).is_file() or (run_dir.parent / GROUP).is_file()):
        group = run_dir if (run_dir / GROUP).is_file() else run_dir.parent
        raise ConfigError(str(run_dir), None, f"belongs to the run of several checkpoints in {group}: resume that "
                          "run with all its checkpoint files and --run-dir " + str(group))
    with _long_lived_heap() as settle, open_cache(cache_path) as cache:
        evaluated = evaluate(inputs, cache, runs_dir, run_dir, progress, settle)
        try:
            apply_holm(evaluated.run_stats)
            return conclude(evaluated)
        finally:
            evaluated.run.close()


@contextmanager
def open_cache(cache_path: Path | None) -> Iterator[Cache]:
    cache = Cache(cache_path or default_cache_dir() / "cache.sqlite")
    try:
        yield cache
    finally:
        cache.close()


def evaluate(inputs: Inputs, cache: Cache, runs_dir: Path, run_dir: Path | None, progress: Progress | None,
             settle: Callable[[], None], trained_before: TrainedBefore | None = None) -> Evaluated:
    """Train (when asked), generate, check, judge and measure forgetting into a new run dir under `runs_dir`
    (or `run_dir`, resumed when it holds a run of the same inputs), and
    compute the statistics. `settle()` at each stage boundary hands what is alive to _long_lived_heap.
    An infrastructure failure marks its stage failed in the run dir (a rerun with --run-dir resumes)."""
    run: RunDir | None = None
    try:
        if trained_before is None:  # a run of two checkpoints checks and trains here
            trained_before = {}
            preflight(inputs, cache, progress, trained_before)
        trained = {role: trained_before[cfg.name][0] for role, cfg in inputs.configs.items() if cfg.train is not None}
        train_seconds = sum(trained_before[cfg.name][1] for cfg in inputs.configs.values() if cfg.train is not None)
        configs = {role: trained[role].checkpoint if role in trained else cfg for role, cfg in inputs.configs.items()}
        checkpoints = {role: resolve_checkpoint(cfg, inputs.files[role], cache) for role, cfg in configs.items()}
        settle()  # the tokenizers, and the libraries they imported
        run_id = new_run_id(checkpoints["base"].name, checkpoints["candidate"].name)
        run = RunDir.create(run_dir or runs_dir / run_id, _manifest(inputs, checkpoints, run_id),
                            resume=run_dir is not None)
        run.keep_suites([(s.name, s.path, s.content_hash) for s in inputs.suites])
        training = _record_training(run, trained, train_seconds)

        started = run.stage_started("generations")
        total = sum(len(s.items) * c.config.sampling.n for s in inputs.suites for c in checkpoints.values())
        gstats = run_generation(checkpoints, inputs.suites, cache, lambda recs: run.append("generations", recs),
                                (lambda n: progress("generating", n, total)) if progress else None)
        stats = {"total": gstats.total, "cached": gstats.cached, "generated": gstats.generated,
                 "engines_opened": gstats.engines_opened, "engine_seconds": round(gstats.engine_seconds, 3),
                 "engine_open_seconds": round(gstats.open_seconds, 3)}
        run.stage_done("generations", started, GenerationRecord, **stats)
        # Read back as columns: the later stages walk every answer, and a record each would cost ten times more.
        generations = Answers.read(run.path / "records" / "generations.parquet")
        settle()

        checks = _checks_stage(inputs, run, generations)
        settle()
        judgments = _judge_stage(inputs, run, generations, checks, cache, progress)
        settle()
        forgetting = _forgetting_stage(inputs, run, checkpoints, cache, progress)
        run_stats = _run_stats(inputs, run.manifest, checks, judgments, forgetting)
        return Evaluated(inputs, run, generations, checks, run_stats, training, stats)
    except InfraError as exc:
        # Could not evaluate is not "the candidate is worse": exit 3 naming the stage, which the run
        # dir marks failed (a rerun with --run-dir resumes it).
        stage = run.manifest.running_stage() if run is not None else None
        if run is not None:
            if stage is not None:
                run.stage_failed(stage, str(exc))
            run.close()
        if stage is None or run is None:
            raise
        raise InfraError(f"{stage} stage: {exc}; the run dir {run.path} marks it failed (rerun with --run-dir "
                         "to resume)") from exc
    except BaseException:
        if run is not None:
            run.close()
        raise


def conclude(evaluated: Evaluated) -> CompareResult:
    """Write stats.json (Holm already applied) and the decision files; finish the manifest."""
    inputs, run, run_stats = evaluated.inputs, evaluated.run, evaluated.run_stats
    names = [s.name for s in inputs.suites]
    run.write_json("stats.json", run_stats.model_dump(mode="json"))
    outputs = write_outputs(run, names, evaluated.generations, evaluated.checks, run_stats, evaluated.training,
                            inputs.gates, inputs.policy)
    # Again at the end: an engine started after the manifest was first written may have loaded torch.
    run.manifest.hardware["numeric"] = numeric_environment()
    run.manifest.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run.save_manifest()
    return CompareResult(run.path, outputs.summary, outputs.verdict, evaluated.stats, evaluated.training, run_stats,
                         outputs.decision, run.manifest)
