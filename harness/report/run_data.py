"""Read-only views of run dirs, for the report.

The report computes nothing: every number it shows was written by a stage
(stats.json, verdict.json, the manifest, the records). This module only
finds run dirs, reads their files through their models (tolerating stages that
have not landed or are still appending, and naming a file it cannot read), and
lays the stored values out as tables of text formatted by
harness.render.formatting. It never writes, and it never imports Streamlit, so
it is tested without a browser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from harness.errors import ConfigError
from harness.records.manifest import CheckpointEntry, Manifest, StageEntry
from harness.records.run_files import read_run_file
from harness.records.run_results import (
    ForgettingTask,
    Interval,
    JudgeSummary,
    PairedRates,
    RunStats,
    TrainingResult,
    Verdict,
)
from harness.render import formatting as fmt

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
    """Run dirs directly under runs_dir (runs_dir itself when it is one), by name."""
    if (runs_dir / "manifest.json").is_file():
        return [runs_dir]
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if (p / "manifest.json").is_file())


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


# run-level tables ---------------------------------------------------------------

def _win_rate(judge: JudgeSummary | None) -> str:
    """A judge's win rate with its CI, as summary.md prints it."""
    return "n/a" if judge is None else f"{fmt.fraction(judge.win_rate)} {fmt.ci_raw(judge.win_rate_ci)}"


def _delta(rates: PairedRates) -> str:
    return f"{fmt.delta_pts(rates.delta)} {fmt.ci_pts(rates.delta_ci)}"


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run with its stored headline numbers, newest first."""
    import pandas as pd

    rows = []
    for run in sorted(runs, key=lambda r: (r.created_at, r.name), reverse=True):
        judge = run.judge
        rows.append({
            "run": run.name, "created": run.created_at,
            "base": run.checkpoint_name("base"), "candidate": run.checkpoint_name("candidate"),
            "verdict": run.outcome,
            "win rate": fmt.fraction(judge.win_rate if judge is not None else None),
            "win-rate CI": fmt.ci_raw(judge.win_rate_ci if judge is not None else None),
            "suite deltas": "; ".join(f"{name} {fmt.delta_pts(s.delta)}" for name, s in run.suite_rates.items()),
            "forgetting deltas": "; ".join(f"{task} {fmt.delta_pts(t.delta)}"
                                           for task, t in run.forgetting_tasks.items()),
            "gates failed": sum(g.outcome == "fail" for g in run.verdict.gates) if run.verdict is not None else 0,
            "stages": ", ".join(s if run.stage_state(s) == "done" else f"{s} ({run.stage_state(s)})"
                                for s in RECORD_STAGES if run.stage_state(s) != "missing"),
        })
    return pd.DataFrame(rows, columns=["run", "created", "base", "candidate", "verdict", "win rate", "win-rate CI",
                                       "suite deltas", "forgetting deltas", "gates failed", "stages"])


def trend_frame(runs: list[RunInfo], base_identity: str) -> pd.DataFrame:
    """Stored win rates and forgetting deltas (with CIs) of every run of one base, oldest first."""
    import pandas as pd

    rows = []
    for run in sorted((r for r in runs if r.base_identity == base_identity), key=lambda r: (r.created_at, r.name)):
        judge = run.judge
        if judge is not None and judge.win_rate is not None:
            rows.append(_trend_row(run, "judge win rate", "win rate", judge.win_rate, judge.win_rate_ci))
        for task, t in run.forgetting_tasks.items():
            if t.delta is not None:
                rows.append(_trend_row(run, task, "forgetting delta", t.delta, t.delta_ci))
    return pd.DataFrame(rows, columns=["run", "created", "candidate", "metric", "series", "value", "lo", "hi"])


def _trend_row(run: RunInfo, series: str, metric: str, value: float, ci: Interval) -> dict[str, Any]:
    return {"run": run.name, "created": run.created_at, "candidate": run.checkpoint_name("candidate"),
            "metric": metric, "series": series, "value": value, "lo": ci[0], "hi": ci[1]}


def compare_runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """Headline values of a few runs side by side: one row per metric, one column per run."""
    import pandas as pd

    columns: dict[str, dict[str, str]] = {}
    for run in runs:
        col = {"created": run.created_at, "candidate": run.checkpoint_name("candidate"), "verdict": run.outcome,
               "judge win rate": _win_rate(run.judge)}
        col.update({f"suite {name}: delta": _delta(s) for name, s in run.suite_rates.items()})
        col.update({f"forgetting {task}: delta": _delta(t) for task, t in run.forgetting_tasks.items()})
        col.update({f"gate {g.label}": g.outcome for g in (run.verdict.gates if run.verdict is not None else [])})
        columns[run.name] = col
    metrics = list(dict.fromkeys(key for col in columns.values() for key in col))
    return pd.DataFrame({name: [col.get(m, "—") for m in metrics] for name, col in columns.items()},
                        index=pd.Index(metrics, name="metric"))


# overview tables ----------------------------------------------------------------

def gates_table(verdict: Verdict | None) -> pd.DataFrame:
    import pandas as pd

    rows = [{"gate": g.label, "outcome": g.outcome, "metric": g.metric, "test": g.test, "value": fmt.value(g.value),
             "threshold": fmt.value(g.threshold), "CI": fmt.ci_raw(g.ci), "p": fmt.p_value(g.p_value),
             "reason": g.reason} for g in (verdict.gates if verdict is not None else [])]
    return pd.DataFrame(rows, columns=["gate", "outcome", "metric", "test", "value", "threshold", "CI", "p",
                                       "reason"])


def suites_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"suite": name, "n": s.n, "base": fmt.pct(s.base_rate), "base CI": fmt.ci_pct(s.base_ci),
             "candidate": fmt.pct(s.candidate_rate), "candidate CI": fmt.ci_pct(s.candidate_ci),
             "delta": fmt.delta_pts(s.delta), "delta CI": fmt.ci_pts(s.delta_ci), "p": fmt.p_value(s.p_value),
             "p (Holm)": fmt.p_value(s.p_holm), "MDE": fmt.pts(s.mde)}
            for name, s in run.suite_rates.items()]
    return pd.DataFrame(rows, columns=["suite", "n", "base", "base CI", "candidate", "candidate CI", "delta",
                                       "delta CI", "p", "p (Holm)", "MDE"])


def sampled_table(run: RunInfo) -> pd.DataFrame:
    """pass@k and majority vote per suite, as stats.json holds them (runs with several samples per item)."""
    import pandas as pd

    columns = ["suite", "figure", "items", "base", "candidate", "delta", "delta CI", "p (Holm)"]
    rows = []
    for name, sampled in ((run.stats.sampled or {}) if run.stats is not None else {}).items():
        figures = [(f"pass@{k}", d) for k, d in sampled.pass_at_k.items()]
        figures += [("majority vote", sampled.majority_vote)] if sampled.majority_vote is not None else []
        rows += [{"suite": name, "figure": label, "items": d.n, "base": fmt.pct(d.base),
                  "candidate": fmt.pct(d.candidate), "delta": fmt.delta_pts(d.delta),
                  "delta CI": fmt.ci_pts(d.delta_ci), "p (Holm)": fmt.p_value(d.p_holm)} for label, d in figures]
    return pd.DataFrame(rows, columns=columns)


def delta_points(items: Mapping[str, PairedRates]) -> pd.DataFrame:
    """Stored deltas and their CIs as rows for a chart (name, delta, lo, hi, flag)."""
    import pandas as pd

    rows = [{"name": name, "delta": s.delta,
             "lo": s.delta_ci[0] if s.delta_ci[0] is not None else s.delta,
             "hi": s.delta_ci[1] if s.delta_ci[1] is not None else s.delta,
             "flag": s.flag if isinstance(s, ForgettingTask) else ""}
            for name, s in items.items() if s.delta is not None]
    return pd.DataFrame(rows, columns=["name", "delta", "lo", "hi", "flag"])


def judge_figures(judge: JudgeSummary) -> dict[str, str]:
    """The judge's reliability at a glance, as fractions (as summary.md and the console print them)."""
    return {"Win rate": fmt.fraction(judge.win_rate), "Swap consistency": fmt.fraction(judge.swap_consistency),
            "Parse failures": fmt.fraction(judge.parse_failure_rate), "Failed calls": fmt.fraction(judge.failure_rate),
            "Tie rate": fmt.fraction(judge.tie_rate),
            "Length-controlled win rate": fmt.fraction(judge.length_controlled_win_rate)}


def judge_tests_line(judge: JudgeSummary) -> str:
    return (f"Win-rate CI {fmt.ci_raw(judge.win_rate_ci)}, p = {fmt.p_value(judge.sign_test_p)} "
            f"({judge.significance_test}).")


def forgetting_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"task": task, "n": t.n, "flag": t.flag, "base acc": fmt.pct(t.base_rate),
             "base stderr": fmt.pts(t.base_stderr), "candidate acc": fmt.pct(t.candidate_rate),
             "candidate stderr": fmt.pts(t.candidate_stderr), "delta": fmt.delta_pts(t.delta),
             "delta CI": fmt.ci_pts(t.delta_ci), "p": fmt.p_value(t.p_value), "p (Holm)": fmt.p_value(t.p_holm)}
            for task, t in run.forgetting_tasks.items()]
    return pd.DataFrame(rows, columns=["task", "n", "flag", "base acc", "base stderr", "candidate acc",
                                       "candidate stderr", "delta", "delta CI", "p", "p (Holm)"])


def stages_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"stage": name, "status": s.status, "started": s.started_at, "finished": s.finished_at,
             "seconds": s.seconds, "records": s.records,
             "counters": ", ".join(f"{k} {v}" for k, v in s.counters.items())}
            for name, s in run.manifest.stages.items()]
    return pd.DataFrame(rows, columns=["stage", "status", "started", "finished", "seconds", "records", "counters"])


def checkpoints_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"role": role, "name": c.name, "backend": c.backend, "model": c.model_path, "fingerprint": c.fingerprint,
             "chat template sha256": c.chat_template_sha256, "file": c.file}
            for role, c in run.manifest.checkpoints.items()]
    return pd.DataFrame(rows, columns=["role", "name", "backend", "model", "fingerprint", "chat template sha256",
                                       "file"])


def suite_files_table(run: RunInfo) -> pd.DataFrame:
    """Each suite's file as the run read it, and the run's own copy (the one the report shows)."""
    import pandas as pd

    rows = [{"suite": s.name, "items": s.items, "sha256": s.sha256, "read from": s.path,
             "run's copy": s.run_copy or "none (schema 1 run)"} for s in run.manifest.suites]
    return pd.DataFrame(rows, columns=["suite", "items", "sha256", "read from", "run's copy"])


def flatten(mapping: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys ({"numeric": {"cpu": {"model": m}}} -> {"numeric.cpu.model": m}),
    so a table shows each leaf on its own row; lists are joined."""
    flat: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = ", ".join(map(str, value)) if isinstance(value, list) else value
    return flat


def mapping_table(mapping: Mapping[str, Any] | None, key: str, value: str) -> pd.DataFrame:
    """A flat {name: value} (packages, hardware, seeds, git) as two text columns."""
    import pandas as pd

    rows = [{key: k, value: v if isinstance(v, str) else json.dumps(v)} for k, v in (mapping or {}).items()]
    return pd.DataFrame(rows, columns=[key, value])
