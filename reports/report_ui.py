"""Pieces every report page shares: where the runs are, cached reads, the
selected run and the files of it that cannot be read, notes for stages that
have not landed, pagination, safe text.

Reads are cached with st.cache_data keyed on each file's path, mtime and
size (the prompts on the run's suite copies), so a page rerun (every click)
re-parses nothing, and a stage that lands while the report is open shows up on
the next rerun.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from harness.report import item_data, run_data, tables
from harness.report.run_data import RunInfo, Unreadable
from harness.report.worddiff import escape_markdown

RUNS_DIR_ENV = "HARNESS_RUNS_DIR"
STAGE_WHAT = {"train": "smoke-test SFT (train)", "generations": "generations", "checks": "checks",
              "judge": "judge", "forgetting": "forgetting"}
OUTCOME_BOX = {"pass": st.success, "fail": st.error, "inconclusive": st.warning, "ungated": st.info}


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV, "runs"))


def md(text: Any) -> str:
    """Any text from a run (answers, reasons, names) as markdown that shows it literally."""
    return escape_markdown("" if text is None else str(text))


# cached reads ------------------------------------------------------------------

def _signature(*files: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(run_data.file_signature(f) if f.is_file() else (str(f), 0, 0) for f in files)


@st.cache_data(show_spinner=False, max_entries=512)
def _load_run(path: str, signature: tuple[Any, ...]) -> RunInfo | Unreadable | None:
    return run_data.load_run(Path(path))


def _scan() -> list[RunInfo | Unreadable]:
    found = (_load_run(str(path), _signature(*(path / n for n in ("manifest.json", "verdict.json", "stats.json"))))
             for path in run_data.list_run_dirs(runs_dir()))
    return [run for run in found if run is not None]


def all_runs() -> list[RunInfo]:
    """The runs whose manifest reads, newest first."""
    runs = [run for run in _scan() if isinstance(run, RunInfo)]
    return sorted(runs, key=lambda r: (r.created_at, r.name), reverse=True)


def unreadable_runs() -> list[Unreadable]:
    return [run for run in _scan() if isinstance(run, Unreadable)]


def selected_run() -> RunInfo | None:
    """The run picked in the sidebar (app.py keeps it in the `run` query parameter)."""
    name = st.session_state.get("run")
    runs = all_runs()
    return next((r for r in runs if r.name == name), runs[0] if runs else None)


def require_run() -> RunInfo:
    """The selected run, with a warning for each of its files that cannot be read; stops the page when
    there is none."""
    run = selected_run()
    if run is None:
        st.info(f"No run dirs in {md(runs_dir())}. Run `harness compare BASE.yaml CANDIDATE.yaml` "
                "(or `harness demo`) to make one.")
        st.stop()
    show_problems(run)
    return run


def show_problems(run: RunInfo, prefix: str = "") -> None:
    """One warning per file of the run that is there but cannot be read (what the page lacks, and why)."""
    for line in run.problem_lines:
        st.warning(md(f"{prefix}{line}"))


@st.cache_data(show_spinner=False, max_entries=64)
def _records(path: str, signature: tuple[Any, ...]) -> pd.DataFrame:
    return run_data.read_records(Path(path))


def _records_at(run_path: Path, stage: str) -> pd.DataFrame | None:
    file = run_data.records_file(run_path, stage)
    if file is None:
        return None
    return _records(str(file), _signature(file))


def records(run: RunInfo, stage: str) -> pd.DataFrame | None:
    return _records_at(run.path, stage)


def records_in(run_path: Path, stage: str) -> pd.DataFrame | None:
    """A stage's records of the run dir at `run_path` (another comparison of the selected run's group)."""
    return _records_at(run_path, stage)


# _run (leading underscore) is left out of the cache key: its manifest and suite copies are in the signature.
@st.cache_data(show_spinner="Reading the run's suite copies...", max_entries=16)
def _prompts(run_path: str, signature: tuple[Any, ...], _run: RunInfo) -> item_data.SuitePrompts:
    return item_data.load_prompts(_run.path, _run.manifest.suites)


def _prompts_signature(run: RunInfo) -> tuple[Any, ...]:
    copies = [run.path / s.run_copy for s in run.manifest.suites if s.run_copy is not None]
    return _signature(run.path / "manifest.json", *copies)


def prompts(run: RunInfo) -> item_data.SuitePrompts:
    return _prompts(str(run.path), _prompts_signature(run), run)


# cache_resource, not cache_data: the table of a 10,000-item run is not copied on every rerun.
# Shared between sessions, so nothing may modify it: the pages only filter and slice it.
@st.cache_resource(show_spinner="Joining answers, checks and verdicts...", max_entries=16)
def _items(run_path: str, judge: str | None, signature: tuple[Any, ...],
           _suite_prompts: item_data.SuitePrompts) -> pd.DataFrame:
    frames = {s: _records_at(Path(run_path), s) for s in ("generations", "checks", "judge")}
    verdicts = None if frames["judge"] is None else item_data.real_verdicts(frames["judge"], judge)
    assert frames["generations"] is not None
    return item_data.items_table(frames["generations"], frames["checks"], verdicts, _suite_prompts)


def items(run: RunInfo, judge: str | None) -> pd.DataFrame | None:
    """The side-by-side table, rebuilt only when a record file or a suite copy changes."""
    files = [run_data.records_file(run.path, s) for s in ("generations", "checks", "judge")]
    if files[0] is None:
        return None
    # _suite_prompts is left out of the cache key (leading underscore): its files are in the signature.
    signature = _signature(*(f for f in files if f is not None)) + _prompts_signature(run)
    return _items(str(run.path), judge, signature, prompts(run))


# notes and layout --------------------------------------------------------------

def stage_note(run: RunInfo, stage: str) -> bool:
    """A note for a stage that has not landed; True when there is nothing of it to show."""
    state = run.stage_state(stage)
    what = STAGE_WHAT.get(stage, stage)
    if state == "missing":
        st.info(f"This run has no {what} stage.")
        return True
    if state == "failed":
        entry = run.stage(stage)
        st.error(f"The {what} stage failed: {md(entry.error if entry else '?')}. Showing what it wrote before; "
                 "rerun the compare with --run-dir to finish it.")
    if state == "running":
        entry = run.stage(stage)
        count = entry.records if entry is not None else None
        st.warning(f"The {what} stage is still running (or was interrupted): showing what it has written so far"
                   + (f" ({count} records)." if count else "."))
    return False


def outcome(label: str, value: str, reason: str) -> None:
    box = OUTCOME_BOX.get(value, st.info)
    box(f"**{md(label)}: {md(value.upper())}**  \n{md(reason)}")


def paginate(frame: pd.DataFrame, key: str, sizes: tuple[int, ...] = (10, 25, 50, 100)) -> pd.DataFrame:
    """The rows of one page; the controls sit under the filters so that large runs stay fast."""
    left, right, info = st.columns([1, 1, 3])
    size = int(left.selectbox("Per page", sizes, index=1 if len(sizes) > 1 else 0, key=f"{key}-size"))
    pages = max(1, -(-len(frame) // size))
    # The row count and page size are part of the key: new filters start again at page 1.
    page = int(right.number_input("Page", min_value=1, max_value=pages, value=1, step=1,
                                  key=f"{key}-page-{len(frame)}-{size}"))
    start = (page - 1) * size
    info.caption(f"{min(start + 1, len(frame))}–{min(start + size, len(frame))} of {len(frame)} "
                 f"(page {page} of {pages})")
    return frame.iloc[start:start + size]


def column_config(data: tables.Table) -> dict[str, Any]:
    """A Table's numeric columns as st.dataframe's column_config: the grid holds the numbers (it sorts,
    filters and downloads them as numbers) and draws each with the printf-style format of its kind."""
    config: dict[str, Any] = {name: st.column_config.Column(pinned=True) for name in data.pinned}
    config.update({name: st.column_config.NumberColumn(format=spec.format, help=spec.help)
                   for name, spec in data.numbers.items()})
    return config


def table(data: tables.Table | pd.DataFrame, **kwargs: Any) -> None:
    """A dataframe: the grid draws cells as text, so untrusted values are safe in it. A missing value
    shows as summary.md prints one ("n/a")."""
    if isinstance(data, tables.Table):
        st.dataframe(data.frame, hide_index=True, column_config=column_config(data), placeholder=tables.MISSING,
                     **kwargs)
    else:
        st.dataframe(data, hide_index=True, placeholder=tables.MISSING, **kwargs)
