"""The report's tables: stored values laid out as numbers (floats, ints, bools, None), with how the
grid draws each numeric column.

Nothing here computes a statistic or formats a number as text: a rate, a delta or a p-value is the
value stats.json (or verdict.json, the manifest) holds, so the grid sorts, filters and downloads
numbers. Rates and differences of rates are held in percent and in points (the stored fraction times
100), and every numeric column names its printf-style format, both taken from
harness.render.formatting, so the grid shows the digits summary.md and the console print. A CI is two
columns (low, high). Text (names, outcomes, reasons) stays text. No Streamlit here: the report's
pages turn a Table into st.dataframe's column_config (reports/report_ui.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.records.group_results import GroupStats
from harness.records.run_results import ForgettingTask, Interval, JudgeSummary, PairedRates, TrainingResult, Verdict
from harness.render import formatting as fmt
from harness.render.formatting import ColumnKind
from harness.render.run_summary import gold_line
from harness.report.run_data import RECORD_STAGES, RunInfo

if TYPE_CHECKING:
    import pandas as pd


MISSING = fmt.MISSING
"""What the grid draws for a missing value, as summary.md prints one."""


@dataclass(frozen=True)
class Number:
    """How the grid draws a numeric column: a printf-style format (None: the grid's default) and the
    header's tooltip."""

    format: str | None
    help: str | None = None


@dataclass(frozen=True)
class Table:
    """A table for st.dataframe: its numeric columns hold numbers, and numbers says how each is drawn."""

    frame: pd.DataFrame
    numbers: dict[str, Number] = field(default_factory=dict)
    """Each numeric column's drawing, by column name (bool columns are drawn as checkboxes by default)."""
    pinned: tuple[str, ...] = ()
    """Columns that stay in view while a wide table scrolls sideways."""

    @property
    def empty(self) -> bool:
        return bool(self.frame.empty)


def number(kind: ColumnKind, about: str = "") -> Number:
    """A column of one kind of number (formatting.COLUMN_FORMATS), its tooltip naming what it holds."""
    form = fmt.column_format(kind)
    unit = f"In {form.unit} (the run's files hold fractions)." if form.scale != 1 else ""
    return Number(form.printf, " ".join(part for part in (about, unit) if part) or None)


def _table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], kinds: Mapping[str, ColumnKind],
           about: Mapping[str, str] | None = None, plain: Sequence[str] = ()) -> Table:
    """Rows of stored values as a Table: each column in kinds scaled to its unit and typed as a number
    (a missing value is NaN, or <NA> in a count); columns in plain are numbers the grid draws as it likes."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns))
    numbers: dict[str, Number] = {}
    for name, kind in kinds.items():
        form = fmt.column_format(kind)
        values = frame[name].astype(object).where(frame[name].notna(), None)
        frame[name] = values.astype("Int64") if kind == "count" else values.astype("float64") * form.scale
        numbers[name] = number(kind, (about or {}).get(name, ""))
    for name in plain:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None).astype("float64")
        numbers[name] = Number(None)
    return Table(frame, numbers)


def _low(ci: Sequence[float | None] | None) -> float | None:
    return ci[0] if ci else None


def _high(ci: Sequence[float | None] | None) -> float | None:
    return ci[1] if ci else None


DELTA = "Candidate minus base."
PAIRED = {"delta": DELTA, "delta CI low": "95% CI of the delta.", "delta CI high": "95% CI of the delta."}


# run-level tables ---------------------------------------------------------------

def _wide(runs: Sequence[RunInfo], with_ci: bool) -> tuple[list[dict[str, Any]], dict[str, ColumnKind]]:
    """One row per run of its judge win rate and each suite's and forgetting task's delta, a column per
    suite and task (prefixed, so a suite and a task of one name stay apart)."""
    rows: list[dict[str, Any]] = []
    kinds: dict[str, ColumnKind] = dict.fromkeys(("win rate", "win rate CI low", "win rate CI high"), "fraction")
    for run in runs:
        judge = run.judge
        row: dict[str, Any] = {"win rate": judge.win_rate if judge is not None else None,
                               "win rate CI low": _low(judge.win_rate_ci) if judge is not None else None,
                               "win rate CI high": _high(judge.win_rate_ci) if judge is not None else None}
        for prefix, items in (("suite", run.suite_rates), ("forgetting", run.forgetting_tasks)):
            for name, rates in items.items():
                column = f"{prefix} {name}: delta"
                row[column] = rates.delta
                kinds[column] = "delta_pts"
                if with_ci:
                    row[f"{column} CI low"], row[f"{column} CI high"] = _low(rates.delta_ci), _high(rates.delta_ci)
                    kinds[f"{column} CI low"] = kinds[f"{column} CI high"] = "delta_pts"
        rows.append(row)
    return rows, kinds


def runs_table(runs: list[RunInfo]) -> Table:
    """One row per run with its stored headline numbers, newest first."""
    ordered = sorted(runs, key=lambda r: (r.created_at, r.name), reverse=True)
    numbers, kinds = _wide(ordered, with_ci=False)
    rows = [{
        "run": run.name, "created": run.created_at,
        "base": run.checkpoint_name("base"), "candidate": run.checkpoint_name("candidate"),
        "verdict": run.outcome, **values,
        "gates failed": sum(g.outcome == "fail" for g in run.verdict.gates) if run.verdict is not None else 0,
        "stages": ", ".join(s if run.stage_state(s) == "done" else f"{s} ({run.stage_state(s)})"
                            for s in RECORD_STAGES if run.stage_state(s) != "missing"),
    } for run, values in zip(ordered, numbers)]
    columns = ["run", "created", "base", "candidate", "verdict", *kinds, "gates failed", "stages"]
    table = _table(rows, columns, {**kinds, "gates failed": "count"},
                   {name: DELTA for name, kind in kinds.items() if kind == "delta_pts"})
    return replace(table, pinned=("run",))


def compare_runs_table(runs: list[RunInfo]) -> Table:
    """Headline values of a few runs, one row per run in the order given: the win rate and every delta
    with its CI, and each gate's outcome."""
    numbers, kinds = _wide(runs, with_ci=True)
    rows = []
    for run, values in zip(runs, numbers):
        gates = {f"gate {g.label}": g.outcome for g in (run.verdict.gates if run.verdict is not None else [])}
        rows.append({"run": run.name, "created": run.created_at, "candidate": run.checkpoint_name("candidate"),
                     "verdict": run.outcome, **values, **gates})
    columns = list(dict.fromkeys(["run", "created", "candidate", "verdict", *kinds,
                                  *(key for row in rows for key in row)]))
    table = _table(rows, columns, kinds, {name: DELTA for name in kinds if name.endswith(": delta")})
    return replace(table, pinned=("run",))


def trend_frame(runs: list[RunInfo], base_identity: str) -> pd.DataFrame:
    """Stored win rates and forgetting deltas (with CIs) of every run of one base, oldest first (a chart's data)."""
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


# overview tables ----------------------------------------------------------------

def gates_table(verdict: Verdict | None) -> Table:
    """Each gate's value, threshold, CI and p-value as fractions (as summary.md prints them). A yes/no
    value (the smoke test's) is in a "yes/no" column, there only when some gate has one."""
    gates = verdict.gates if verdict is not None else []
    rows = [{"gate": g.label, "outcome": g.outcome, "metric": g.metric, "test": g.test,
             "value": None if isinstance(g.value, bool) else g.value, "threshold": g.threshold,
             "CI low": _low(g.ci), "CI high": _high(g.ci), "p": g.p_value, "reason": g.reason,
             "yes/no": g.value if isinstance(g.value, bool) else None} for g in gates]
    columns = ["gate", "outcome", "metric", "test", "value", "threshold", "CI low", "CI high", "p", "reason"]
    if any(isinstance(g.value, bool) for g in gates):
        columns.insert(5, "yes/no")
    return _table(rows, columns, {"value": "fraction", "threshold": "fraction", "CI low": "fraction",
                                  "CI high": "fraction", "p": "p_value"})


def _paired_row(rates: PairedRates) -> dict[str, Any]:
    return {"n": rates.n, "base": rates.base_rate, "base CI low": _low(rates.base_ci),
            "base CI high": _high(rates.base_ci), "candidate": rates.candidate_rate,
            "candidate CI low": _low(rates.candidate_ci), "candidate CI high": _high(rates.candidate_ci),
            "base stderr": rates.base_stderr, "candidate stderr": rates.candidate_stderr, "delta": rates.delta,
            "delta CI low": _low(rates.delta_ci), "delta CI high": _high(rates.delta_ci), "p": rates.p_value,
            "p (Holm)": rates.p_holm, "MDE": rates.mde}


PAIRED_KINDS: dict[str, ColumnKind] = {
    "n": "count", "base": "pct", "base CI low": "pct", "base CI high": "pct", "candidate": "pct",
    "candidate CI low": "pct", "candidate CI high": "pct", "base stderr": "pts", "candidate stderr": "pts",
    "delta": "delta_pts", "delta CI low": "delta_pts", "delta CI high": "delta_pts", "p": "p_value",
    "p (Holm)": "p_value", "MDE": "pts"}


def suites_table(run: RunInfo) -> Table:
    """Each suite's pass rates (all checks passed) with CIs, the paired delta, its p-values and MDE."""
    columns = ["suite", "n", "base", "base CI low", "base CI high", "candidate", "candidate CI low",
               "candidate CI high", "delta", "delta CI low", "delta CI high", "p", "p (Holm)", "MDE"]
    rows = [{"suite": name, **_paired_row(s)} for name, s in run.suite_rates.items()]
    return _table(rows, columns, {c: PAIRED_KINDS[c] for c in columns[1:]},
                  {**PAIRED, "MDE": "The smallest delta this sample detects (80% power)."})


def forgetting_table(run: RunInfo) -> Table:
    """Each forgetting task's accuracies with their standard errors, the paired delta with its CI, p-values."""
    columns = ["task", "n", "flag", "base acc", "base stderr", "candidate acc", "candidate stderr", "delta",
               "delta CI low", "delta CI high", "p", "p (Holm)"]
    rows = [{"task": task, "flag": t.flag, **_paired_row(t)} for task, t in run.forgetting_tasks.items()]
    rows = [{**row, "base acc": row["base"], "candidate acc": row["candidate"]} for row in rows]
    kinds = {c: PAIRED_KINDS[c] for c in columns if c in PAIRED_KINDS}
    return _table(rows, columns, {**kinds, "base acc": "pct", "candidate acc": "pct"}, PAIRED)


def sampled_table(run: RunInfo) -> Table:
    """pass@k and majority vote per suite, as stats.json holds them (runs with several samples per item)."""
    columns = ["suite", "figure", "items", "base", "candidate", "delta", "delta CI low", "delta CI high",
               "p (Holm)"]
    rows = []
    for name, sampled in ((run.stats.sampled or {}) if run.stats is not None else {}).items():
        figures = [(f"pass@{k}", d) for k, d in sampled.pass_at_k.items()]
        figures += [("majority vote", sampled.majority_vote)] if sampled.majority_vote is not None else []
        rows += [{"suite": name, "figure": label, "items": d.n, "base": d.base, "candidate": d.candidate,
                  "delta": d.delta, "delta CI low": _low(d.delta_ci), "delta CI high": _high(d.delta_ci),
                  "p (Holm)": d.p_holm} for label, d in figures]
    return _table(rows, columns, {"items": "count", "base": "pct", "candidate": "pct", "delta": "delta_pts",
                                  "delta CI low": "delta_pts", "delta CI high": "delta_pts",
                                  "p (Holm)": "p_value"}, PAIRED)


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


def judge_gold_line(judge: JudgeSummary) -> str | None:
    """judge.gold: the judge's agreement with the gold labels and the biases they showed (as summary.md words it)."""
    return gold_line(judge)


def judge_tests_line(judge: JudgeSummary) -> str:
    return (f"Win-rate CI {fmt.ci_raw(judge.win_rate_ci)}, p = {fmt.p_value(judge.sign_test_p)} "
            f"({judge.significance_test}).")


# training tables ----------------------------------------------------------------

def smoke_checks_table(result: TrainingResult) -> Table:
    """Each smoke check, whether it passed (a checkbox) and what it measured."""
    rows = [{"check": c.name, "passed": c.passed, "measured": c.detail} for c in result.smoke.checks]
    return _table(rows, ["check", "passed", "measured"], {})


def curation_table(result: TrainingResult) -> Table:
    """What each curation filter removed from the training data."""
    rows = [{"curation filter": name, "removed": n} for name, n in result.data.curation.items()]
    return _table(rows, ["curation filter", "removed"], {"removed": "count"})


# provenance tables --------------------------------------------------------------

def stages_table(run: RunInfo) -> Table:
    rows = [{"stage": name, "status": s.status, "started": s.started_at, "finished": s.finished_at,
             "seconds": s.seconds, "records": s.records,
             "counters": ", ".join(f"{k} {v}" for k, v in s.counters.items())}
            for name, s in run.manifest.stages.items()]
    return _table(rows, ["stage", "status", "started", "finished", "seconds", "records", "counters"],
                  {"records": "count"}, plain=["seconds"])


def checkpoints_table(run: RunInfo) -> Table:
    rows = [{"role": role, "name": c.name, "backend": c.backend, "model": c.model_path, "fingerprint": c.fingerprint,
             "chat template sha256": c.chat_template_sha256, "file": c.file}
            for role, c in run.manifest.checkpoints.items()]
    return _table(rows, ["role", "name", "backend", "model", "fingerprint", "chat template sha256", "file"], {})


def suite_files_table(run: RunInfo) -> Table:
    """Each suite's file as the run read it, and the run's own copy (the one the report shows)."""
    rows = [{"suite": s.name, "items": s.items, "sha256": s.sha256, "read from": s.path,
             "run's copy": s.run_copy or "none (schema 1 run)"} for s in run.manifest.suites]
    return _table(rows, ["suite", "items", "sha256", "read from", "run's copy"], {"items": "count"})


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


def mapping_table(mapping: Mapping[str, Any] | None, key: str, value: str) -> Table:
    """A flat {name: value} (packages, hardware, seeds, git) as two text columns: the values are of every
    type, one per row, so they stay text."""
    rows = [{key: k, value: v if isinstance(v, str) else json.dumps(v)} for k, v in (mapping or {}).items()]
    return _table(rows, [key, value], {})


def ranking_table(stats: GroupStats) -> Table:
    """The ranking, strongest first, with each strength's 95% interval (low, high)."""
    assert stats.ranking is not None
    rows = [{"rank": k, "checkpoint": c.name, "strength": c.strength, "low": c.strength_ci[0],
             "high": c.strength_ci[1], "P(beats reference)": c.win_probability, "wins": c.wins,
             "losses": c.losses, "ties": c.ties} for k, c in enumerate(stats.ranking.checkpoints, 1)]
    return _table(rows, ["rank", "checkpoint", "strength", "low", "high", "P(beats reference)", "wins", "losses",
                         "ties"], {"P(beats reference)": "pct", "wins": "count", "losses": "count", "ties": "count",
                                   "rank": "count"}, plain=["strength", "low", "high"])
