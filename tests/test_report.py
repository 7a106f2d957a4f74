"""The report: the launcher's refusals, the read-only views, every page through
Streamlit's AppTest on fixture runs, and one real headless Chromium that checks
an answer carrying script and event-handler markup is shown as text."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from harness.cli import app as cli_app
from harness.errors import ConfigError
from harness.render import formatting as fmt
from harness.render.formatting import ColumnKind
from harness.report import item_data, run_data, tables
from harness.report.launcher import APP, RUNS_DIR_ENV, is_loopback, report_command, start_report, stop_report
from harness.report.worddiff import Segment, diff_markdown, escape_markdown, word_diff
from tests.conftest import free_port
from tests.report_fixture import (
    FULL_RUN,
    OLD_RUN,
    PARTIAL_RUN,
    PAYLOAD,
    SUITE,
    add_running_judge,
    build_runs,
    set_schema_version,
    set_suite_delta,
)

PAGES = ("runs", "overview", "side_by_side", "forgetting", "training")
NODE = shutil.which("node")
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)), None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_runs(tmp_path_factory.mktemp("report"))


def unescape(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


# the launcher ---------------------------------------------------------------------------

def test_launcher_binds_loopback_explicitly(runs: Path) -> None:
    command, env = report_command(runs, "127.0.0.1", 8600)
    assert command[:4] == [command[0], "-m", "streamlit", "run"] and command[4] == str(APP)
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8600"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert env[RUNS_DIR_ENV] == str(runs.resolve())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_launcher_refuses_other_addresses_unless_asked(runs: Path, host: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        report_command(runs, host, 8501)
    command, _ = report_command(runs, host, 8501, allow_remote=True)
    assert command[command.index("--server.address") + 1] == host
    assert f"warning: binding {host}" in capsys.readouterr().err


def test_launcher_refuses_missing_runs_dir_and_bad_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runs dir does not exist"):
        report_command(tmp_path / "nope", "127.0.0.1", 8501)
    with pytest.raises(ConfigError, match="not a TCP port"):
        report_command(tmp_path, "127.0.0.1", 70000)


def test_cli_exit_code_2_for_remote_host_or_missing_dir(runs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["report", str(runs), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "pass --allow-remote" in result.output
    result = CliRunner().invoke(cli_app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "runs dir does not exist" in result.output


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_the_command_stops_on_ctrl_c_or_sigterm(runs: Path, signum: str) -> None:
    """Ctrl-C (SIGINT) or SIGTERM to `harness report` stops Streamlit and returns promptly."""
    import signal
    import subprocess

    from tests.conftest import ROOT, harness_cmd

    port = free_port()
    process = subprocess.Popen(harness_cmd("report", str(runs), "--port", str(port)), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the report did not come up")
        process.send_signal(getattr(signal, signum))
        assert process.wait(timeout=20) is not None
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# views and safe text ----------------------------------------------------------------------

def test_word_diff_marks_changed_words_only() -> None:
    segments = word_diff("I'm sorry but it is $22.", "It is $60.")
    assert [s for s in segments if s.op != "equal"] == [Segment("delete", "I'm sorry but it ", ""),
                                                        Segment("insert", "", "It "), Segment("delete", "$22.", ""),
                                                        Segment("insert", "", "$60.")]
    assert "".join(s.text("candidate") for s in segments) == "It is $60."
    assert "".join(s.text("base") for s in word_diff("a\nb c", "a b d")) == "a\nb c"  # each side keeps its spacing
    assert diff_markdown(word_diff("same", "same"), "candidate") == "same"
    assert diff_markdown([], "base") == "*(empty answer)*"


def test_escape_markdown_leaves_no_markup() -> None:
    escaped = escape_markdown(PAYLOAD + " [x](javascript:alert(1)) :red[x] https://evil.example www.evil.example a@b.c")
    # Every ASCII punctuation mark is backslash-escaped: no tag, link, directive or LaTeX survives.
    assert not re.search(r"(?<!\\)[<>\[\]()*$:`&]", escaped.replace("\\\\", ""))
    assert "https\\:\u2060\\/\\/" in escaped and "www\u2060\\." in escaped and "a\u2060\\@b" in escaped
    assert escape_markdown("line one\n    indented") == "line one  \n\u00a0\u00a0\u00a0\u00a0indented"


def test_highlight_never_spans_a_line_break() -> None:
    text = diff_markdown(word_diff("a", "a\nb <i>c</i>"), "candidate")
    assert text == "a  \n:green-background[b \\<i\\>c\\<\\/i\\>]"


def test_jsonl_being_appended_is_read_up_to_its_last_whole_line(tmp_path: Path) -> None:
    file = tmp_path / "judge.jsonl"
    file.write_text('{"a": 1}\n{"a": 2}\n{"a": ', encoding="utf-8")
    assert run_data.read_records(file)["a"].tolist() == [1, 2]


def test_hardware_is_shown_one_leaf_per_row() -> None:
    hardware = {"machine": "x86_64", "numeric": {"cpu": {"model": "EPYC", "vector_extensions": ["avx2", "fma"]},
                                                 "torch": None}}
    assert tables.flatten(hardware) == {"machine": "x86_64", "numeric.cpu.model": "EPYC",
                                         "numeric.cpu.vector_extensions": "avx2, fma", "numeric.torch": None}


def test_forgetting_flips_both_ways(runs: Path) -> None:
    file = run_data.records_file(runs / FULL_RUN, "forgetting")
    assert file is not None and file.suffix == ".parquet"  # the stage is done
    records = run_data.read_records(file)
    lost = item_data.forgetting_flips(records)
    assert lost[["doc_id", "base prediction", "candidate prediction"]].values.tolist() == [[0, "Vouburg", "Vouvik"]]
    assert item_data.forgetting_flips(records, lost=False)["doc_id"].tolist() == [2]


# every page through AppTest -----------------------------------------------------------------

@pytest.fixture()
def open_page(runs: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    def open_(page: str, run: str | None = FULL_RUN, runs_dir: Path = runs, **query: str) -> AppTest:
        monkeypatch.setenv(RUNS_DIR_ENV, str(runs_dir))
        at = AppTest.from_file(str(APP), default_timeout=60)
        if run:
            at.query_params["run"] = run
        at.query_params.update(query)
        at.run()
        if page != "runs":
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_


def _markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def shown_items(at: AppTest) -> list[str]:
    """Keys of the items on the page (each has its 'Only this item' button)."""
    return [str(b.key).removeprefix("focus-") for b in at.button if b.label == "Only this item"]


approx = pytest.approx


def numbers(column: Iterable[Any]) -> list[float | None]:
    """A table column's values, a missing one as None."""
    return [None if pd.isna(v) else float(v) for v in column]


def column_config(table: Any) -> dict[str, Any]:
    """The column_config a page gave st.dataframe, as the browser receives it."""
    return dict(json.loads(table.proto.columns or "{}"))


def shown(table: Any, column: str, value: float) -> str:
    """What the grid draws for a value of a numeric column: its printf-style format applied (the grid
    uses sprintf-js, which prints these formats as Python's % does)."""
    return str(column_config(table)[column]["type_config"]["format"] % value)


def test_runs_page_lists_every_run_and_compares_two(open_page: Callable[..., AppTest]) -> None:
    at = open_page("runs")
    table = at.dataframe[0].value
    assert table["run"].tolist() == [PARTIAL_RUN, FULL_RUN, OLD_RUN]
    assert table["verdict"].tolist() == ["ungated", "fail", "pass"]
    assert numbers(table["win rate"]) == [None, 0.625, 0.55]  # OLD_RUN's files are schema 1: migrated
    assert numbers(table["forgetting capitals: delta"]) == [None, approx(-100 / 12), approx(-2.0)]  # points
    assert shown(at.dataframe[0], "forgetting capitals: delta", -100 / 12) == "-8.3 pts"  # as summary.md prints it
    assert len(at.get("vega_lite_chart")) == 2  # win rate and forgetting trends
    at.multiselect(key="compare-runs").set_value([FULL_RUN, OLD_RUN]).run()
    compared = at.dataframe[1].value
    assert compared["run"].tolist() == [FULL_RUN, OLD_RUN]  # one row per run, in the order picked
    assert numbers(compared["win rate"]) == [0.625, 0.55]
    assert numbers(compared["win rate CI low"]) == [0.31, 0.31] and numbers(compared["win rate CI high"]) == [0.86] * 2
    assert numbers(compared["suite chat: delta"]) == [approx(100 / 3)] * 2
    assert numbers(compared["suite chat: delta CI low"]) == [-10.0] * 2
    assert numbers(compared["suite chat: delta CI high"]) == [70.0] * 2
    assert compared["verdict"].tolist() == ["fail", "pass"]
    assert compared["gate judge-prefers-candidate"].tolist()[0] == "fail"


def test_overview_shows_verdict_gates_judge_and_provenance(open_page: Callable[..., AppTest]) -> None:
    at = open_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Verdict"] == "FAIL" and metrics["Win rate"] == "0.625"  # as summary.md prints it
    assert metrics["Swap consistency"] == "0.667" and metrics["Parse failures"] == "0.000"
    assert unescape(at.error[0].value).endswith("judge win rate CI lower bound 0.31 <= 0.5")
    assert at.warning[0].value == escape_markdown("a made-up warning about <b>markup</b>")
    gates = at.dataframe[0].value
    assert gates.iloc[0][["gate", "outcome", "value", "threshold", "CI low", "CI high", "p"]].tolist() == [
        "judge-prefers-candidate", "fail", 0.625, 0.5, 0.31, 0.86, 0.5]
    assert shown(at.dataframe[0], "value", 0.625) == "0.625" and shown(at.dataframe[0], "p", 0.5) == "0.500"
    assert gates.iloc[1]["gate"] == "no-forgetting[capitals]" and pd.isna(gates.iloc[1]["p"])
    suites = at.dataframe[1].value
    assert suites.iloc[0][["suite", "base", "candidate", "delta", "delta CI low", "delta CI high"]].tolist() == [
        "chat", approx(200 / 3), 100.0, approx(100 / 3), -10.0, 70.0]
    assert [shown(at.dataframe[1], c, suites.iloc[0][c]) for c in ("base", "candidate", "delta", "delta CI low")] == [
        "66.7%", "100.0%", "+33.3 pts", "-10.0 pts"]
    successes = [unescape(s.value) for s in at.success]
    assert any("candidate demo-sft: PASS" in s for s in successes)
    assert "Canaries: 0 of 1 canary answers won." in successes
    frames = [d.value for d in at.dataframe]
    assert any("fp-demo-sft" in t.to_string() for t in frames)  # fingerprints
    assert any("lm_eval" in t.to_string() and "0.4.13" in t.to_string() for t in frames)  # versions


def test_side_by_side_shows_answers_as_escaped_text(open_page: Callable[..., AppTest]) -> None:
    at = open_page("side_by_side")
    assert len(shown_items(at)) == 3
    markdown = _markdown(at)
    assert diff_markdown(word_diff("hi", PAYLOAD), "candidate") in markdown
    assert not [m for m in markdown if re.search(r"(?<!\\)[<>]", m)]  # no unescaped angle bracket anywhere
    assert any(":red[:material/close:] number_matches_reference — expected 60, got 22" in unescape(m)
               for m in markdown)
    assert PAYLOAD in [c.value for c in at.code]  # the exact bytes, as code
    judge = next(m for m in markdown if m.startswith("**Judge:** :orange[inconsistent"))
    assert "A = base, B = candidate: **A** (base)" in judge and "A = candidate, B = base: **A** (candidate)" in judge


@pytest.mark.parametrize(("widget", "value", "items"), [
    ("verdict", ["inconsistent"], ["capital-001"]),
    ("verdict", ["win"], ["interest-001", "xss-001"]),
    ("check", ["base: number_matches_reference"], ["interest-001"]),
    ("tag", ["security"], ["xss-001"]),
    ("q", "vouvik", ["capital-001"]),
])
def test_side_by_side_filters(open_page: Callable[..., AppTest], widget: str, value: str | list[str],
                              items: list[str]) -> None:
    at = open_page("side_by_side")
    if isinstance(value, str):
        at.text_input(key=widget).set_value(value).run()
    else:
        at.multiselect(key=widget).set_value(value).run()
    assert [key.split("/")[1] for key in shown_items(at)] == items


def test_one_item_from_a_link_or_a_button(open_page: Callable[..., AppTest]) -> None:
    at = open_page("side_by_side", item="chat/xss-001/0")
    assert shown_items(at) == ["chat/xss-001/0"]
    at = open_page("side_by_side")
    next(b for b in at.button if b.key == "focus-chat/capital-001/0").click().run()
    assert at.query_params["item"] == "chat/capital-001/0"
    assert shown_items(at) == ["chat/capital-001/0"]


def test_forgetting_page_shows_stored_deltas_and_flips(open_page: Callable[..., AppTest]) -> None:
    at = open_page("forgetting")
    tasks = at.dataframe[0].value
    columns = ["task", "flag", "base acc", "candidate acc", "delta", "delta CI low", "delta CI high"]
    assert tasks.iloc[0][columns].tolist() == [
        "capitals", "warn", approx(200 / 3), approx(175 / 3), approx(-25 / 3), approx(-55 / 3), approx(5 / 3)]
    assert [shown(at.dataframe[0], c, tasks.iloc[0][c]) for c in columns[2:]] == [
        "66.7%", "58.3%", "-8.3 pts", "-18.3 pts", "+1.7 pts"]
    flips = at.dataframe[1].value
    assert flips[["doc_id", "target", "candidate prediction"]].values.tolist() == [[0, "Vouburg", "Vouvik"]]
    assert len(at.get("vega_lite_chart")) == 1


def test_training_page_shows_curves_curation_and_smoke(open_page: Callable[..., AppTest]) -> None:
    at = open_page("training")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Steps"] == "4" and metrics["Final eval loss"] == "1.1"
    assert next(m for m in at.metric if m.label == "Final eval loss").proto.format == "%.4f"  # the browser's 1.1000
    frames = [d.value for d in at.dataframe]
    assert frames[0].values.tolist() == [["loss_falling", True, "first tenth 4.0, last 1.0"]]  # a checkbox
    assert dict(frames[1].values.tolist()) == {"empty_response": 3, "exact_duplicate": 7, "near_duplicate": 3}
    assert len(at.get("vega_lite_chart")) == 4  # loss, grad norm, lr, curation


def test_a_run_without_most_stages_says_so_on_every_page(open_page: Callable[..., AppTest]) -> None:
    notes = {page: [unescape(i.value) for i in open_page(page, run=PARTIAL_RUN).info] for page in PAGES}
    assert "This run has no judge stage." in notes["overview"]
    assert "No release gates were applied to this run." in notes["overview"]
    assert "This run has no train stage: neither checkpoint was trained by the harness." in notes["overview"]
    assert notes["forgetting"] == ["This run has no forgetting stage."]
    assert notes["training"] == ["This run has no smoke-test SFT (train) stage."]
    at = open_page("side_by_side", run=PARTIAL_RUN)
    assert len(shown_items(at)) == 3
    at = open_page("overview", run=PARTIAL_RUN)
    assert at.metric[0].value == "UNGATED"
    assert at.dataframe[0].value.iloc[0][["base", "candidate", "delta"]].tolist() == [
        approx(200 / 3), 100.0, approx(100 / 3)]


def test_a_stage_still_writing_shows_what_it_has(open_page: Callable[..., AppTest], runs: Path,
                                                 tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs / PARTIAL_RUN, copy / PARTIAL_RUN)
    add_running_judge(copy / PARTIAL_RUN)
    at = open_page("side_by_side", run=PARTIAL_RUN, runs_dir=copy)
    assert any("judge stage is still running" in w.value for w in at.warning)
    assert sum(m.startswith("**Judge:** :green[candidate wins]") for m in _markdown(at)) == 1


def test_a_failed_stage_says_why_on_its_page_and_in_the_runs_table(open_page: Callable[..., AppTest], runs: Path,
                                                                  tmp_path: Path) -> None:
    from harness.records.manifest import StageEntry
    from harness.records.run_dir import RunDir

    copy = tmp_path / "runs"
    shutil.copytree(runs / PARTIAL_RUN, copy / PARTIAL_RUN)
    add_running_judge(copy / PARTIAL_RUN)
    run = RunDir.open(copy / PARTIAL_RUN)
    run.manifest.stages["judge"] = StageEntry(status="failed", started_at="2026-01-03T09:05:00+00:00",
                                              error="https://judge.example/v1: gave up after 5 attempts")
    run.save_manifest()
    at = open_page("side_by_side", run=PARTIAL_RUN, runs_dir=copy)
    assert any("judge stage failed" in e.value and "gave up after 5 attempts" in e.value for e in at.error)
    info = run_data.load_run(copy / PARTIAL_RUN)
    assert isinstance(info, run_data.RunInfo) and "judge (failed)" in tables.runs_table([info]).frame["stages"][0]


@pytest.mark.parametrize("change", ["deleted", "edited"])
def test_prompts_come_from_the_runs_copy_of_the_suite(open_page: Callable[..., AppTest], tmp_path: Path,
                                                      change: str) -> None:
    runs = build_runs(tmp_path)
    original = tmp_path / "suites" / "chat.yaml"
    if change == "deleted":
        original.unlink()
    else:
        original.write_text(SUITE.replace("capital of Vouland", "capital of Elsewhere"), encoding="utf-8")
    at = open_page("side_by_side", run=FULL_RUN, runs_dir=runs, item="chat/capital-001/0")
    assert not at.warning
    assert f"**user:** {escape_markdown('What is the capital of Vouland?')}" in _markdown(at)


def test_a_schema_1_run_opens_with_items_by_id(open_page: Callable[..., AppTest], runs: Path) -> None:
    """OLD_RUN's files say schema_version 1 (no suite copies): migrated on read, its items shown by id."""
    assert json.loads((runs / OLD_RUN / "stats.json").read_text(encoding="utf-8"))["schema_version"] == 1
    run = run_data.load_run(runs / OLD_RUN)
    assert isinstance(run, run_data.RunInfo) and not run.problems
    assert run.manifest.schema_version == 2 and run.manifest.suites[0].run_copy is None
    at = open_page("overview", run=OLD_RUN)
    assert at.metric[0].value == "PASS" and not at.warning
    at = open_page("side_by_side", run=OLD_RUN)
    assert [unescape(w.value) for w in at.warning] == [
        "suite chat: this run predates suite copies (schema 1); items are shown by id only"]
    assert shown_items(at) == ["chat/capital-001/0", "chat/interest-001/0", "chat/xss-001/0"]
    assert sum(c.value.startswith("Prompt not available") for c in at.caption) == 3


def test_an_edited_or_missing_copy_is_a_note(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / PARTIAL_RUN, tmp_path / PARTIAL_RUN)
    run = run_data.load_run(tmp_path / PARTIAL_RUN)
    assert isinstance(run, run_data.RunInfo)
    copy = tmp_path / PARTIAL_RUN / "suites" / "chat.yaml"
    copy.write_text(SUITE + "# edited\n", encoding="utf-8")
    edited = item_data.load_prompts(run.path, run.manifest.suites)
    assert edited.notes == ["suite chat: the run's copy suites/chat.yaml was edited after the run; "
                            "prompts may not match the answers"] and len(edited.items) == 3
    copy.unlink()
    gone = item_data.load_prompts(run.path, run.manifest.suites)
    assert not gone.items and len(gone.notes) == 1 and "\n" not in gone.notes[0]
    assert gone.notes[0].startswith("suite chat: the run's copy cannot be read (")
    assert gone.notes[0].endswith("suite file not found); items are shown by id only")


NEWER = ("stats.json: schema_version: written by a newer harness (schema 99; this one reads 1 to 2); "
         "upgrade harness to read it")


def test_a_file_from_a_newer_harness_is_one_line_and_the_rest_still_shows(
        open_page: Callable[..., AppTest], runs: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs / FULL_RUN, copy / FULL_RUN)
    set_schema_version(copy / FULL_RUN / "stats.json", 99)
    run = run_data.load_run(copy / FULL_RUN)
    assert isinstance(run, run_data.RunInfo) and run.stats is None and run.verdict is not None
    assert run.problem_lines == [NEWER]
    at = open_page("runs", runs_dir=copy)
    assert [unescape(w.value) for w in at.warning] == [f"{FULL_RUN}: {NEWER}"]
    assert numbers(at.dataframe[0].value["win rate"]) == [None]
    for page in PAGES[1:]:
        at = open_page(page, runs_dir=copy)
        assert unescape(at.warning[0].value) == NEWER
    at = open_page("overview", runs_dir=copy)
    assert at.metric[0].value == "FAIL"  # the verdict still reads


def test_a_run_whose_manifest_cannot_be_read_is_listed_with_why(open_page: Callable[..., AppTest], runs: Path,
                                                               tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    for name in (FULL_RUN, OLD_RUN):
        shutil.copytree(runs / name, copy / name)
    manifest = copy / OLD_RUN / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8")[:200], encoding="utf-8")
    unreadable = run_data.load_run(copy / OLD_RUN)
    assert isinstance(unreadable, run_data.Unreadable)
    assert unreadable.reason.startswith("manifest.json: not valid JSON (")
    assert unreadable.reason.endswith("): the file is truncated or corrupt") and "\n" not in unreadable.reason
    at = open_page("runs", runs_dir=copy)
    assert [unescape(w.value) for w in at.warning] == [f"{OLD_RUN} cannot be read: {unreadable.reason}"]
    assert at.dataframe[0].value["run"].tolist() == [FULL_RUN]
    assert not open_page("side_by_side", run=OLD_RUN, runs_dir=copy).warning  # the sidebar falls back to FULL_RUN


def test_an_empty_directory_shows_every_page(open_page: Callable[..., AppTest], tmp_path: Path) -> None:
    for page in PAGES:
        at = open_page(page, run=None, runs_dir=tmp_path)
        assert any(i.value.startswith("No run dirs in") for i in at.info)


# tables hold numbers ---------------------------------------------------------------------------

FORMATTERS: dict[ColumnKind, Callable[[Any], str]] = {
    "pct": fmt.pct, "delta_pts": fmt.delta_pts, "pts": fmt.pts, "fraction": fmt.fraction, "loss": fmt.loss,
    "p_value": fmt.p_value, "count": str}
VALUES = (0.0, 0.001, 0.009, 0.0833, 0.09, 0.1, 0.31, 1 / 3, 0.5, 0.61, 0.625, 2 / 3, 0.86, 0.999, 1.0, 1.5, 12.0,
          -1 / 12, -0.02, -0.1, -0.183, -0.999)


def samples(kind: ColumnKind) -> list[float]:
    if kind == "count":
        return [0, 1, 3, 12, 4096]
    return [v for v in VALUES if kind != "p_value" or v >= 0.001]  # below 0.001 the text says "<0.001"


@pytest.mark.parametrize("kind", list(FORMATTERS))
def test_a_column_format_prints_what_the_text_formatter_prints(kind: ColumnKind) -> None:
    form = fmt.column_format(kind)
    assert [form.printf % (form.scale * v) for v in samples(kind)] == [FORMATTERS[kind](v) for v in samples(kind)]


def grid_format(pairs: list[tuple[str, float]]) -> list[str]:
    """Numbers as the report's grid draws them: Streamlit's own number formatter (from its frontend
    bundle, the function NumberColumn(format=...) goes through), run in node."""
    import subprocess

    import streamlit

    bundles = sorted((Path(streamlit.__file__).parent / "static" / "static" / "js").glob("formatNumber.*.js"))
    if not bundles:
        pytest.skip("this Streamlit has no formatNumber bundle")
    script = ("globalThis.window ??= {};"
              "const module = await import(process.env.BUNDLE);"
              "const format = Object.values(module).find(f => typeof f === 'function' && f.length === 3);"
              "if (!format) process.exit(3);"
              "console.log(JSON.stringify(JSON.parse(process.env.PAIRS).map(([f, v]) => format(v, f))));")
    assert NODE is not None
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BUNDLE": bundles[0].as_uri(), "PAIRS": json.dumps(pairs)})
    if done.returncode == 3:
        pytest.skip(f"{bundles[0].name} exports no number formatter")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_the_grid_draws_what_summary_md_prints() -> None:
    """The grid's own formatter (sprintf-js) prints each column format as the text formatter prints the
    stored value: the report's tables and summary.md agree on every digit."""
    cases = [(kind, v) for kind in FORMATTERS for v in samples(kind)]
    pairs = [(fmt.column_format(kind).printf, fmt.column_format(kind).scale * v) for kind, v in cases]
    assert grid_format(pairs) == [FORMATTERS[kind](v) for kind, v in cases]


FORMATTED = re.compile(r"^[+-]?\d+(\.\d+)? ?(pts|%)$|^\[.*, .*\]$|^n/a$|^<0\.001$")
"""A number formatted as text (what the tables held before they held numbers)."""
NUMERIC = {  # columns each page of FULL_RUN holds as numbers (at least)
    "runs": {"win rate", "win rate CI low", "win rate CI high", "suite chat: delta", "suite chat: delta CI low",
             "suite chat: delta CI high", "forgetting capitals: delta", "gates failed"},
    "overview": {"value", "threshold", "CI low", "CI high", "p", "n", "base", "base CI low", "base CI high",
                 "candidate", "candidate CI low", "candidate CI high", "delta", "delta CI low", "delta CI high",
                 "p (Holm)", "MDE", "seconds", "records", "items"},
    "side_by_side": set(),
    "forgetting": {"n", "base acc", "base stderr", "candidate acc", "candidate stderr", "delta", "delta CI low",
                   "delta CI high", "p", "p (Holm)"},
    "training": {"removed"},
}


@pytest.mark.parametrize(("page", "run"), [("runs", FULL_RUN)] + [  # the runs page lists every run whichever is picked
    (page, run) for page in PAGES[1:] for run in (FULL_RUN, OLD_RUN, PARTIAL_RUN)])
def test_every_page_renders_and_its_tables_hold_numbers(open_page: Callable[..., AppTest], page: str,
                                                        run: str) -> None:
    at = open_page(page, run=run)  # no exception
    if page == "runs":
        at.multiselect(key="compare-runs").set_value([FULL_RUN, OLD_RUN]).run()
        assert not at.exception, [e.value for e in at.exception]
    numeric: set[str] = set()
    for table in at.dataframe:
        frame = table.value
        assert table.proto.placeholder == "n/a"  # a missing value, as summary.md prints it
        for name, config in column_config(table).items():
            if config.get("type_config", {}).get("type") == "number":
                assert pd.api.types.is_numeric_dtype(frame[name]), (name, frame[name].dtype)
                numeric.add(name)
        for name in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[name]):
                assert not [v for v in frame[name] if isinstance(v, str) and FORMATTED.match(v)], name
    if run == FULL_RUN:
        assert NUMERIC[page] <= numeric, NUMERIC[page] - numeric


def test_a_delta_column_sorts_by_value(open_page: Callable[..., AppTest], runs: Path, tmp_path: Path) -> None:
    """+9 points sorts before +10 (and -2 before both): the column holds numbers, not "+10.0 pts"."""
    copy = tmp_path / "runs"
    for name, delta in ((FULL_RUN, 0.10), (PARTIAL_RUN, 0.09), (OLD_RUN, -0.02)):
        shutil.copytree(runs / name, copy / name)
        set_suite_delta(copy / name, "chat", delta)
    at = open_page("runs", runs_dir=copy)
    table, column = at.dataframe[0], "suite chat: delta"
    assert table.value["run"].tolist() == [PARTIAL_RUN, FULL_RUN, OLD_RUN]  # newest first
    assert column_config(table)[column]["type_config"]["type"] == "number"  # the grid sorts it as numbers
    ordered = table.value.sort_values(column)
    assert ordered["run"].tolist() == [OLD_RUN, PARTIAL_RUN, FULL_RUN]
    assert [shown(table, column, v) for v in ordered[column]] == ["-2.0 pts", "+9.0 pts", "+10.0 pts"]
    assert sorted(["-2.0 pts", "+9.0 pts", "+10.0 pts"]) == ["+10.0 pts", "+9.0 pts", "-2.0 pts"]  # as text


PERCENT = 100
"""Rates are in the tables in percent, differences in points: the stored fraction times 100."""


def test_tables_hold_the_numbers_the_run_files_store(open_page: Callable[..., AppTest], runs: Path) -> None:
    """The tables against an independent read of stats.json and verdict.json (json, not the models)."""
    stats = json.loads((runs / FULL_RUN / "stats.json").read_text(encoding="utf-8"))
    verdict = json.loads((runs / FULL_RUN / "verdict.json").read_text(encoding="utf-8"))
    suite, task, judge = stats["suites"]["chat"], stats["forgetting"]["tasks"]["capitals"], stats["judge"]

    def paired(stored: dict[str, Any], rate: str) -> dict[str, Any]:
        """What the tables hold of a stored PairedRates: n, rates and CIs, the delta and its CI, p-values."""
        scaled = {f"base{rate}": "base_rate", f"candidate{rate}": "candidate_rate", "delta": "delta"}
        out: dict[str, Any] = {name: approx(PERCENT * stored[key]) for name, key in scaled.items()}
        for name, key in (("base", "base_ci"), ("candidate", "candidate_ci"), ("delta", "delta_ci")):
            out[f"{name} CI low"], out[f"{name} CI high"] = (approx(PERCENT * v) for v in stored[key])
        return {**out, "n": stored["n"], "p": stored["p_value"], "p (Holm)": stored["p_holm"]}

    at = open_page("overview")
    gates = at.dataframe[0].value
    assert gates["gate"].tolist() == [g["label"] for g in verdict["gates"]]
    for row, gate in zip(gates.to_dict("records"), verdict["gates"]):
        assert numbers([row["value"], row["threshold"], row["CI low"], row["CI high"], row["p"]]) == [
            gate["value"], gate["threshold"], *gate["ci"], gate["p_value"]]
    suites = at.dataframe[1].value.to_dict("records")
    expected = {**paired(suite, ""), "MDE": approx(PERCENT * suite["mde"])}
    assert [row["suite"] for row in suites] == list(stats["suites"])
    assert {k: suites[0][k] for k in expected} == expected

    tasks = open_page("forgetting").dataframe[0].value.to_dict("records")
    expected = {k: v for k, v in paired(task, " acc").items() if "CI" not in k or k.startswith("delta")}
    expected.update({f"{side} stderr": approx(PERCENT * task[f"{side}_stderr"]) for side in ("base", "candidate")})
    assert [row["task"] for row in tasks] == list(stats["forgetting"]["tasks"]) and tasks[0]["flag"] == task["flag"]
    assert {k: tasks[0][k] for k in expected} == expected

    row = open_page("runs").dataframe[0].value.set_index("run").loc[FULL_RUN]
    assert numbers([row["win rate"], row["win rate CI low"], row["win rate CI high"]]) == [
        judge["win_rate"], *judge["win_rate_ci"]]
    assert row["suite chat: delta"] == approx(PERCENT * suite["delta"])
    assert row["forgetting capitals: delta"] == approx(PERCENT * task["delta"])
    assert row["gates failed"] == sum(g["outcome"] == "fail" for g in verdict["gates"])


def test_several_samples_per_item_are_numbers(open_page: Callable[..., AppTest], runs: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs / FULL_RUN, copy / FULL_RUN)
    stats_file = copy / FULL_RUN / "stats.json"
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    delta = {"n": 3, "base": 0.5, "candidate": 0.75, "delta": 0.25, "delta_ci": [0.1, 0.4],
             "delta_lower_one_sided": 0.12, "p_value": 0.03, "p_holm": 0.06, "mde": 0.2}
    stats["sampled"] = {"chat": {"samples_per_item": 4.0, "pass_at_k": {"1": delta}, "majority_vote": delta}}
    stats_file.write_text(json.dumps(stats), encoding="utf-8")
    at = open_page("overview", runs_dir=copy)
    table = next(t for t in at.dataframe if "figure" in t.value)
    sampled = table.value
    assert sampled["figure"].tolist() == ["pass@1", "majority vote"]
    columns = ["items", "base", "candidate", "delta", "delta CI low", "delta CI high", "p (Holm)"]
    assert sampled[columns].values.tolist() == [[3, 50.0, 75.0, 25.0, 10.0, 40.0, 0.06]] * 2
    assert [shown(table, c, sampled.iloc[0][c]) for c in columns[1:]] == [
        "50.0%", "75.0%", "+25.0 pts", "+10.0 pts", "+40.0 pts", "0.060"]


def test_consistency_changes_are_counts() -> None:
    rows = [{"role": role, "suite": "s", "item_id": "i", "sample_index": n, "check": "c", "passed": passed,
             "detail": ""} for role, outcomes in (("base", (True, True)), ("candidate", (True, False)))
            for n, passed in enumerate(outcomes)]
    changes = item_data.consistency_changes(pd.DataFrame(rows))
    assert changes.to_dict("records") == [{"suite": "s", "item_id": "i", "base right": 2, "base samples": 2,
                                           "candidate right": 1, "candidate samples": 2,
                                           "change": "less consistent"}]


# a real browser ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[str]:
    port = free_port()
    command, env = report_command(runs, "127.0.0.1", port)
    process = start_report(command, env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the report server did not start (exit code {process.poll()})") from None
                time.sleep(0.3)
        yield url
    finally:
        stop_report(process)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")
def test_browser_shows_verdict_and_never_runs_answer_markup(server: str, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/overview?run={FULL_RUN}")
            page.get_by_text("Verdict: FAIL").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "overview.png"))

            page.goto(f"{server}/side-by-side?run={FULL_RUN}&item=chat/xss-001/0")
            page.get_by_text("chat / xss-001").wait_for(timeout=60_000)
            answer = page.get_by_test_id("stMarkdownContainer").filter(has_text="window.__pwned=1").first
            answer.wait_for(timeout=30_000)
            page.wait_for_timeout(500)  # an injected onerror would have fired by now
            page.screenshot(path=str(tmp_path / "side-by-side.png"), full_page=True)
            assert '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">' in answer.inner_text()
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator('img[src="x"]').count() == 0
            assert page.evaluate("[...document.scripts].some(s => s.text.includes('__pwned'))") is False
        finally:
            browser.close()
    assert (tmp_path / "side-by-side.png").stat().st_size > 10_000
