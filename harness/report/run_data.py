"""Read-only views of run dirs, for the report.

The report computes nothing: every number it shows was written by a stage
(stats.json, verdict.json, the manifest, the records). This module only
finds run dirs, reads their files (tolerating stages that have not landed or
are still appending), and lays the stored values out as tables. It never
writes, and it never imports Streamlit, so it is tested without a browser.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.render.formatting import delta_pts, pct

if TYPE_CHECKING:
    import pandas as pd

RECORD_STAGES = ("train", "generations", "checks", "judge", "forgetting")
StageState = Literal["done", "running", "missing"]


@dataclass(frozen=True)
class RunInfo:
    """One run dir's small files; the records are read on demand."""

    path: Path
    manifest: dict[str, Any]
    verdict: dict[str, Any] | None
    stats: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at") or "")

    def checkpoint(self, role: str) -> dict[str, Any]:
        return self.manifest.get("checkpoints", {}).get(role) or {}

    @property
    def base_identity(self) -> str:
        """What makes two runs 'of the same base': its weights' fingerprint, else its name."""
        base = self.checkpoint("base")
        return str(base.get("fingerprint") or base.get("name") or "?")

    def stage(self, name: str) -> dict[str, Any]:
        return self.manifest.get("stages", {}).get(name) or {}

    def stage_state(self, name: str) -> StageState:
        status = self.stage(name).get("status")
        if status == "done":
            return "done"
        if status == "running" or records_file(self.path, name) is not None:
            return "running"
        return "missing"


# files ------------------------------------------------------------------------

def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing or not (yet) a whole object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_run_dirs(runs_dir: Path) -> list[Path]:
    """Run dirs directly under runs_dir (runs_dir itself when it is one), by name."""
    if (runs_dir / "manifest.json").is_file():
        return [runs_dir]
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if (p / "manifest.json").is_file())


def load_run(path: Path) -> RunInfo | None:
    manifest = read_json(path / "manifest.json")
    if manifest is None:
        return None
    return RunInfo(path, manifest, read_json(path / "verdict.json"), read_json(path / "stats.json"))


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


# formatting -------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def pick(mapping: dict[str, Any], *keys: str) -> Any:
    """The first of several names a value has had (stats.json names rates base_rate; older runs base_pass_rate)."""
    return next((mapping[k] for k in keys if mapping.get(k) is not None), None)


def fmt_rate(value: Any) -> str:
    return pct(_number(value))


def fmt_delta(value: Any) -> str:
    return delta_pts(_number(value))


def fmt_points(value: Any) -> str:
    """An unsigned spread (a standard error) in percentage points."""
    number = _number(value)
    return "n/a" if number is None else f"{100 * number:.1f} pts"


def fmt_value(value: Any) -> str:
    """A gate's value or threshold: whatever type the gate stored, shown compactly."""
    number = _number(value)
    if number is not None:
        return f"{number:.4g}"
    if isinstance(value, bool):
        return str(value).lower()
    return "n/a" if value is None else str(value)


def fmt_ci(ci: Any, as_points: bool = False, as_rate: bool = False) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or any(_number(v) is None for v in ci):
        return "n/a"
    lo, hi = (float(v) for v in ci)
    if as_points:
        return f"[{100 * lo:+.1f}, {100 * hi:+.1f}] pts"
    if as_rate:
        return f"[{100 * lo:.1f}%, {100 * hi:.1f}%]"
    return f"[{lo:.4g}, {hi:.4g}]"


def fmt_p(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return "<0.0001" if number < 1e-4 else f"{number:.4f}"


# run-level tables ---------------------------------------------------------------

def judge_stats(stats: dict[str, Any] | None) -> dict[str, Any]:
    return (stats or {}).get("judge") or {}


def forgetting_tasks(stats: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return ((stats or {}).get("forgetting") or {}).get("tasks") or {}


def suite_stats(run: RunInfo) -> dict[str, dict[str, Any]]:
    """Per-suite pass rates: stats.json when the stats stage landed, else the verdict's."""
    return (run.stats or {}).get("suites") or (run.verdict or {}).get("suites") or {}


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run with its stored headline numbers, newest first."""
    import pandas as pd

    rows = []
    for run in sorted(runs, key=lambda r: (r.created_at, r.name), reverse=True):
        judge = judge_stats(run.stats)
        gates = (run.verdict or {}).get("gates") or []
        rows.append({
            "run": run.name, "created": run.created_at,
            "base": run.checkpoint("base").get("name", "?"),
            "candidate": run.checkpoint("candidate").get("name", "?"),
            "verdict": (run.verdict or {}).get("outcome", "no verdict yet"),
            "win rate": fmt_rate(judge.get("win_rate")),
            "win-rate CI": fmt_ci(judge.get("win_rate_ci"), as_rate=True),
            "suite deltas": "; ".join(f"{name} {fmt_delta(s.get('delta'))}" for name, s in suite_stats(run).items()),
            "forgetting deltas": "; ".join(f"{task} {fmt_delta(t.get('delta'))}"
                                           for task, t in forgetting_tasks(run.stats).items()),
            "gates failed": sum(g.get("outcome") == "fail" for g in gates),
            "stages": ", ".join(f"{s}" if run.stage_state(s) == "done" else f"{s} (running)"
                                for s in RECORD_STAGES if run.stage_state(s) != "missing"),
        })
    return pd.DataFrame(rows, columns=["run", "created", "base", "candidate", "verdict", "win rate", "win-rate CI",
                                       "suite deltas", "forgetting deltas", "gates failed", "stages"])


def trend_frame(runs: list[RunInfo], base_identity: str) -> pd.DataFrame:
    """Stored win rates and forgetting deltas (with CIs) of every run of one base, oldest first."""
    import pandas as pd

    rows = []
    for run in sorted((r for r in runs if r.base_identity == base_identity), key=lambda r: (r.created_at, r.name)):
        judge = judge_stats(run.stats)
        if _number(judge.get("win_rate")) is not None:
            rows.append(_trend_row(run, "judge win rate", "win rate", judge["win_rate"], judge.get("win_rate_ci")))
        for task, t in forgetting_tasks(run.stats).items():
            if _number(t.get("delta")) is not None:
                rows.append(_trend_row(run, task, "forgetting delta", t["delta"], t.get("delta_ci")))
    return pd.DataFrame(rows, columns=["run", "created", "candidate", "metric", "series", "value", "lo", "hi"])


def _trend_row(run: RunInfo, series: str, metric: str, value: float, ci: Any) -> dict[str, Any]:
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return {"run": run.name, "created": run.created_at, "candidate": run.checkpoint("candidate").get("name", "?"),
            "metric": metric, "series": series, "value": value, "lo": lo, "hi": hi}


def compare_runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """Headline values of a few runs side by side: one row per metric, one column per run."""
    import pandas as pd

    columns: dict[str, dict[str, str]] = {}
    for run in runs:
        judge = judge_stats(run.stats)
        col = {"created": run.created_at, "candidate": run.checkpoint("candidate").get("name", "?"),
               "verdict": (run.verdict or {}).get("outcome", "no verdict yet"),
               "judge win rate": f"{fmt_rate(judge.get('win_rate'))} {fmt_ci(judge.get('win_rate_ci'), as_rate=True)}"}
        for name, s in suite_stats(run).items():
            col[f"suite {name}: delta"] = f"{fmt_delta(s.get('delta'))} {fmt_ci(s.get('delta_ci'), as_points=True)}"
        for task, t in forgetting_tasks(run.stats).items():
            col[f"forgetting {task}: delta"] = (f"{fmt_delta(t.get('delta'))} "
                                                f"{fmt_ci(t.get('delta_ci'), as_points=True)}")
        for gate in (run.verdict or {}).get("gates") or []:
            col[f"gate {gate.get('name')}"] = str(gate.get("outcome"))
        columns[run.name] = col
    metrics = list(dict.fromkeys(key for col in columns.values() for key in col))
    return pd.DataFrame({name: [col.get(m, "—") for m in metrics] for name, col in columns.items()},
                        index=pd.Index(metrics, name="metric"))


# overview tables ----------------------------------------------------------------

def gates_table(verdict: dict[str, Any] | None) -> pd.DataFrame:
    import pandas as pd

    rows = [{"gate": g.get("label") or g.get("name"), "outcome": g.get("outcome"), "metric": g.get("metric"),
             "test": pick(g, "test", "kind"), "value": fmt_value(g.get("value")),
             "threshold": fmt_value(g.get("threshold")), "CI": fmt_ci(g.get("ci")), "p": fmt_p(g.get("p_value")),
             "reason": g.get("reason") or ""} for g in (verdict or {}).get("gates") or []]
    return pd.DataFrame(rows, columns=["gate", "outcome", "metric", "test", "value", "threshold", "CI", "p",
                                       "reason"])


def suites_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"suite": name, "n": s.get("n", (s.get("base") or {}).get("checked")),
             "base": fmt_rate(pick(s, "base_rate", "base_pass_rate")),
             "base CI": fmt_ci(s.get("base_ci"), as_rate=True),
             "candidate": fmt_rate(pick(s, "candidate_rate", "candidate_pass_rate")),
             "candidate CI": fmt_ci(s.get("candidate_ci"), as_rate=True),
             "delta": fmt_delta(s.get("delta")), "delta CI": fmt_ci(s.get("delta_ci"), as_points=True),
             "p": fmt_p(s.get("p_value")), "p (Holm)": fmt_p(s.get("p_holm")), "MDE": fmt_points(s.get("mde"))}
            for name, s in suite_stats(run).items()]
    return pd.DataFrame(rows, columns=["suite", "n", "base", "base CI", "candidate", "candidate CI", "delta",
                                       "delta CI", "p", "p (Holm)", "MDE"])


def delta_points(items: dict[str, dict[str, Any]], ci_key: str = "delta_ci") -> pd.DataFrame:
    """Stored deltas and their CIs as rows for a chart (name, delta, lo, hi, flag)."""
    import pandas as pd

    rows = []
    for name, s in items.items():
        delta = _number(s.get("delta"))
        ci = s.get(ci_key)
        lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (delta, delta)
        if delta is not None:
            rows.append({"name": name, "delta": delta, "lo": lo, "hi": hi, "flag": s.get("flag", "")})
    return pd.DataFrame(rows, columns=["name", "delta", "lo", "hi", "flag"])


def forgetting_table(stats: dict[str, Any] | None) -> pd.DataFrame:
    import pandas as pd

    rows = [{"task": task, "n": t.get("n"), "flag": t.get("flag", ""),
             "base acc": fmt_rate(pick(t, "base_rate", "base_acc")), "base stderr": fmt_points(t.get("base_stderr")),
             "candidate acc": fmt_rate(pick(t, "candidate_rate", "candidate_acc")),
             "candidate stderr": fmt_points(t.get("candidate_stderr")),
             "delta": fmt_delta(t.get("delta")), "delta CI": fmt_ci(t.get("delta_ci"), as_points=True),
             "p": fmt_p(t.get("p_value")), "p (Holm)": fmt_p(t.get("p_holm"))}
            for task, t in forgetting_tasks(stats).items()]
    return pd.DataFrame(rows, columns=["task", "n", "flag", "base acc", "base stderr", "candidate acc",
                                       "candidate stderr", "delta", "delta CI", "p", "p (Holm)"])


def stages_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"stage": name, "status": s.get("status"), "started": s.get("started_at"),
             "finished": s.get("finished_at"), "seconds": s.get("seconds"), "records": s.get("records")}
            for name, s in (run.manifest.get("stages") or {}).items()]
    return pd.DataFrame(rows, columns=["stage", "status", "started", "finished", "seconds", "records"])


def checkpoints_table(run: RunInfo) -> pd.DataFrame:
    import pandas as pd

    rows = [{"role": role, "name": c.get("name"), "backend": c.get("backend"), "model": c.get("model_path"),
             "fingerprint": c.get("fingerprint"), "chat template sha256": c.get("chat_template_sha256"),
             "file": c.get("file")} for role, c in (run.manifest.get("checkpoints") or {}).items()]
    return pd.DataFrame(rows, columns=["role", "name", "backend", "model", "fingerprint", "chat template sha256",
                                       "file"])


def flatten(mapping: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
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


def mapping_table(mapping: dict[str, Any] | None, key: str, value: str) -> pd.DataFrame:
    """A flat {name: value} (packages, hardware, seeds, git) as two text columns."""
    import pandas as pd

    rows = [{key: k, value: v if isinstance(v, str) else json.dumps(v)} for k, v in (mapping or {}).items()]
    return pd.DataFrame(rows, columns=[key, value])
