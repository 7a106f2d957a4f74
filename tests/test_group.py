"""`harness compare base.yaml a.yaml b.yaml`: three or more checkpoints in one run (harness/stages/group.py).

Pure parts first (the overall verdict, Holm across comparisons against statsmodels, the ranking's games
from judge records); then one three-way run of the real CLI on the demo models (the base, the trained
SFT candidate and the base cut to 10 tokens) with `pairs: all`: each checkpoint generates and is
measured by lm-eval once, every pair is judged in both orders, the ranking follows the judge's wins,
`harness gate` reproduces the verdict, and the report ranks them; and the input errors, each one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from harness.cli import app
from harness.records.group_results import CandidateVerdict
from harness.records.run_results import PairedRates, RunStats
from harness.records.stage_records import JudgmentRecord
from harness.verdict.overall import overall
from harness.verdict.ranking import Game, judged_games, ranking_stats
from harness.verdict.run_stats import apply_holm_together, paired_binary
from tests.conftest import ROOT, base_with_another_template, harness_cmd

EXAMPLES = ROOT / "examples"


# ---------------------------------------------------------------------------- pure parts
def _verdict(name: str, outcome: str) -> CandidateVerdict:
    codes = {"pass": 0, "fail": 1, "inconclusive": 3, "ungated": 0}
    return CandidateVerdict(name=name, comparison=name, outcome=outcome, exit_code=codes[outcome], reason="r")


@pytest.mark.parametrize(("outcomes", "require", "expected"), [
    (("pass", "pass"), "all", ("pass", 0)),
    (("pass", "fail"), "all", ("fail", 1)),
    (("pass", "inconclusive"), "all", ("inconclusive", 3)),
    (("fail", "inconclusive"), "all", ("fail", 1)),
    (("pass", "fail"), "any", ("pass", 0)),
    (("fail", "inconclusive"), "any", ("inconclusive", 3)),
    (("fail", "fail"), "any", ("fail", 1)),
    (("ungated", "ungated"), "all", ("ungated", 0)),
    (("ungated", "pass"), "all", ("pass", 0)),
])
def test_the_overall_verdict_follows_the_policy(outcomes: tuple[str, str], require: str,
                                                expected: tuple[str, int]) -> None:
    verdict = overall([_verdict(f"c{i}", o) for i, o in enumerate(outcomes)], require)  # type: ignore[arg-type]
    assert (verdict.outcome, verdict.exit_code) == expected
    if expected[0] == "fail" and require == "all":
        assert "c" in verdict.reason and "every candidate must pass" in verdict.reason


def _rates(p: float) -> PairedRates:
    import numpy as np

    rates = paired_binary([True, False] * 5, [True] * 10, np.random.default_rng(0))
    return rates.model_copy(update={"p_value": p})


def test_holm_adjusts_every_comparison_of_the_run_as_one_family() -> None:
    first = RunStats(seed=0, suites={"a": _rates(0.001), "b": _rates(0.04)})
    second = RunStats(seed=0, suites={"a": _rates(0.012), "b": _rates(0.3)})
    apply_holm_together([first, second])
    _, expected, _, _ = multipletests([0.001, 0.04, 0.012, 0.3], method="holm")
    got = [first.suites["a"].p_holm, first.suites["b"].p_holm, second.suites["a"].p_holm, second.suites["b"].p_holm]
    assert got == pytest.approx(list(expected))
    alone = RunStats(seed=0, suites={"a": _rates(0.001), "b": _rates(0.04)})
    apply_holm_together([alone])  # alone, a family of two: p = 0.04 stays below 0.05; in the run, 0.08
    assert alone.suites["b"].p_holm == pytest.approx(0.04) and first.suites["b"].p_holm == pytest.approx(0.08)


def _judgment(preference: str, canary: str | None = None) -> JudgmentRecord:
    return JudgmentRecord.model_validate({
        "judge": "rules", "kind": "rules", "model": None, "decided_by": "rules", "suite": "s", "item_id": "i",
        "sample_index": 0, "preference": preference, "consistent": preference in ("base", "candidate", "tie"),
        "canary": canary, "latency_s": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "calls": 2, "cached": False,
        "base_words": 1, "candidate_words": 1})


def test_a_comparisons_games_are_its_real_judged_pairs_scored_for_the_candidate() -> None:
    records = [_judgment("candidate"), _judgment("base"), _judgment("tie"), _judgment("failed"),
               _judgment("unparsed"), _judgment("candidate", canary="empty")]
    assert judged_games(records, base=0, candidate=2) == [Game(2, 0, 1.0), Game(2, 0, 0.0), Game(2, 0, 0.5)]


def test_the_ranking_counts_each_checkpoints_games_and_orders_by_strength() -> None:
    import numpy as np

    # b beats the reference 8-2, c loses to it 3-7, b beats c 6-2 with 2 ties.
    games = [Game(1, 0, 1.0)] * 8 + [Game(1, 0, 0.0)] * 2 + [Game(2, 0, 1.0)] * 3 + [Game(2, 0, 0.0)] * 7
    games += [Game(1, 2, 1.0)] * 6 + [Game(1, 2, 0.0)] * 2 + [Game(1, 2, 0.5)] * 2
    stats = ranking_stats(["ref", "b", "c"], games, np.random.default_rng(0), resamples=200)
    assert [c.name for c in stats.checkpoints] == ["b", "ref", "c"]
    wlt = {c.name: (c.wins, c.losses, c.ties) for c in stats.checkpoints}
    assert wlt == {"ref": (9, 11, 0), "b": (14, 4, 2), "c": (5, 13, 2)}
    ref = next(c for c in stats.checkpoints if c.name == "ref")
    assert (ref.strength, ref.win_probability) == (0.0, 0.5)
    judged = {(p.first, p.second): p.judged for p in stats.pairs}
    assert judged == {("ref", "b"): 10, ("ref", "c"): 10, ("b", "c"): 10}
    for c in stats.checkpoints:
        assert c.strength_ci[0] <= c.strength <= c.strength_ci[1]
    assert stats.games == 30


def test_the_report_names_a_group_file_that_does_not_read(tmp_path: Path) -> None:
    from harness.report.group_data import group_of
    from harness.report.run_data import Unreadable

    member = tmp_path / "group" / "a-vs-b"
    member.mkdir(parents=True)
    assert group_of(member) is None  # a run of two checkpoints
    (tmp_path / "group" / "group.json").write_text('{"schema_version": 1, "group_id": ')
    found = group_of(member)
    assert isinstance(found, Unreadable) and "group.json" in found.reason


# ---------------------------------------------------------------------------- the CLI, end to end
def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd("compare", *args), capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def three_way(demo_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("group")
    sft = tmp / "sft.yaml"
    sft.write_text((EXAMPLES / "sft.yaml").read_text().split("plan:")[0].replace("data/", f"{EXAMPLES / 'data'}/"))
    short = tmp / "short.yaml"
    short.write_text((EXAMPLES / "base.yaml").read_text().replace("name: demo-base", "name: demo-short")
                     .replace("max_tokens: 48", "max_tokens: 10"))
    plan = tmp / "plan.yaml"
    task = ROOT / "suites" / "forgetting" / "arithmetic.yaml"
    plan.write_text(f"suites: [{ROOT / 'suites' / 'demo'}]\npairs: all\nforgetting: {{tasks: [{task}]}}\n"
                    "gates:\n  - {name: judge-prefers-candidate, metric: judge.win_rate, test: at_least, "
                    "threshold: 0.5}\n")
    result = compare(str(EXAMPLES / "base.yaml"), str(sft), str(short), "--plan", str(plan), "--limit", "12",
                     "--runs-dir", str(tmp / "runs"), "--cache", str(tmp / "cache.sqlite"))
    assert result.returncode in (0, 1), result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("run dir: ")][-1]  # the group's, printed last
    return Path(line.removeprefix("run dir: ")), result


@pytest.mark.slow
def test_three_checkpoints_each_generate_once_and_every_pair_is_judged_both_ways(
        three_way: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    group, result = three_way
    manifest = json.loads((group / "group.json").read_text())
    assert manifest["checkpoints"] == ["demo-base", "demo-sft", "demo-short"]
    pairs = [(c["base"], c["candidate"], c["gated"]) for c in manifest["comparisons"]]
    assert pairs == [("demo-base", "demo-sft", True), ("demo-base", "demo-short", True),
                     ("demo-sft", "demo-short", False)]
    stages = [json.loads((group / c["dir"] / "manifest.json").read_text())["stages"] for c in manifest["comparisons"]]
    answers = 2 * 12  # two suites of 12 items, one sample each
    # Three checkpoints: each generates its answers once; the second comparison of each reads the cache.
    assert sum(s["generations"]["generated"] for s in stages) == 3 * answers
    assert sum(s["generations"]["cached"] for s in stages) == 3 * answers
    # lm-eval scores weights, not sampling: demo-short is demo-base's weights, so two models are evaluated once
    # each, and the other four (checkpoint, task) results of the three comparisons come from the cache.
    assert sum(s["forgetting"]["evaluated"] for s in stages) == 2
    assert sum(s["forgetting"]["cached"] for s in stages) == 4
    for c in manifest["comparisons"]:
        judged = pd.read_parquet(group / c["dir"] / "records" / "judge.parquet")
        real = judged[judged["canary"].isna()]
        assert len(real) == answers and real["verdict_ab"].notna().all() and real["verdict_ba"].notna().all()
    assert "ranking (Bradley-Terry" in result.stdout


@pytest.mark.slow
def test_the_ranking_follows_the_judges_wins_and_holm_spans_the_run(
        three_way: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    group, _ = three_way
    manifest = json.loads((group / "group.json").read_text())
    score: dict[str, float] = {name: 0.0 for name in manifest["checkpoints"]}
    for c in manifest["comparisons"]:  # the judge's wins, counted here from the records
        judged = pd.read_parquet(group / c["dir"] / "records" / "judge.parquet")
        real = judged[judged["canary"].isna()]
        score[c["candidate"]] += (real["preference"] == "candidate").sum() + 0.5 * (real["preference"] == "tie").sum()
        score[c["base"]] += (real["preference"] == "base").sum() + 0.5 * (real["preference"] == "tie").sum()
    ranking = json.loads((group / "stats.json").read_text())["ranking"]
    order = [c["name"] for c in ranking["checkpoints"]]
    # Every pair is judged on the same items, so the fitted order is the order of total wins.
    assert order == sorted(score, key=lambda name: -score[name])
    assert order[0] == "demo-sft" and order[-1] == "demo-short"  # answers cut at 10 tokens fail the checks
    # Holm: one family of every test of the three comparisons.
    p_values, adjusted = [], []
    for c in manifest["comparisons"]:
        stats = json.loads((group / c["dir"] / "stats.json").read_text())
        assert stats["holm_family"] == [f"{x['base']} vs {x['candidate']}" for x in manifest["comparisons"]]
        for entry in [*stats["suites"].values(), *stats["forgetting"]["tasks"].values()]:
            p_values.append(entry["p_value"])
            adjusted.append(entry["p_holm"])
    assert len(p_values) == 3 * 3
    assert adjusted == pytest.approx(list(multipletests(p_values, method="holm")[1]))


@pytest.mark.slow
def test_a_verdict_per_candidate_and_gate_reproduces_it(
        three_way: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    group, result = three_way
    verdict = json.loads((group / "verdict.json").read_text())
    outcomes = {c["name"]: c["outcome"] for c in verdict["candidates"]}
    assert outcomes == {"demo-sft": "pass", "demo-short": "fail"}  # the pair of candidates has no verdict
    assert (verdict["outcome"], verdict["exit_code"], result.returncode) == ("fail", 1, 1)
    ungated = json.loads((group / "demo-sft-vs-demo-short" / "verdict.json").read_text())
    assert ungated["outcome"] == "ungated" and ungated["gates"] == []
    summary = (group / "summary.md").read_text()
    assert "## Ranking" in summary and "| demo-short | **FAIL** |" in summary
    junit = (group / "junit.xml").read_text()
    assert junit.count("<testsuite ") == 2 and 'failures="1"' in junit
    gate = subprocess.run(harness_cmd("gate", str(group)), capture_output=True, text=True, cwd=ROOT)
    assert gate.returncode == 1 and "demo-short" in gate.stdout
    assert json.loads((group / "verdict.json").read_text()) == verdict
    gate = subprocess.run(harness_cmd("gate", str(group), "--json"), capture_output=True, text=True, cwd=ROOT)
    assert json.loads(gate.stdout) == verdict


@pytest.mark.slow
def test_require_any_passes_when_one_candidate_does(three_way: tuple[Path, subprocess.CompletedProcess[str]],
                                                     tmp_path: Path) -> None:
    group, _ = three_way
    manifest = json.loads((group / "group.json").read_text())
    manifest["require"] = "any"
    copy = tmp_path / group.name
    subprocess.run(["cp", "-r", str(group), str(copy)], check=True)
    (copy / "group.json").write_text(json.dumps(manifest))
    gate = subprocess.run(harness_cmd("gate", str(copy)), capture_output=True, text=True, cwd=ROOT)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert json.loads((copy / "verdict.json").read_text())["reason"].startswith("passed: demo-sft")


@pytest.mark.slow
def test_the_report_ranks_the_checkpoints_and_shows_any_two(three_way: tuple[Path, subprocess.CompletedProcess[str]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.report.launcher import APP, RUNS_DIR_ENV

    group, _ = three_way
    monkeypatch.setenv(RUNS_DIR_ENV, str(group.parent))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    names = at.sidebar.selectbox[0].options
    assert sorted(names) == sorted(f"{group.name}/{c}" for c in ("demo-base-vs-demo-sft", "demo-base-vs-demo-short",
                                                                 "demo-sft-vs-demo-short"))
    at.switch_page("views/ranking.py").run()
    assert not at.exception
    ranked = at.dataframe[0].value
    assert list(ranked["checkpoint"])[0] == "demo-sft"
    at.selectbox(key="rank-first").set_value("demo-sft").run()
    at.selectbox(key="rank-second").set_value("demo-short").run()
    assert not at.exception
    assert at.metric[0].label == "P(demo-sft beats demo-short)"
    answers = at.dataframe[1].value
    assert {"demo-sft", "demo-short"} <= set(answers.columns) and len(answers) > 0
    for page in ("overview", "side_by_side"):  # a comparison of the group is an ordinary run to every page
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception


# ---------------------------------------------------------------------------- bad input
def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def test_bad_input_to_a_run_of_several_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    base = str(EXAMPLES / "base.yaml")
    a = _file(tmp_path, "a.yaml", "name: a\nmodel: demo:base\nplan: {seed: 7}\n")
    b = _file(tmp_path, "b.yaml", "name: b\nmodel: demo:base\n")
    also_b = _file(tmp_path, "also-b.yaml", "name: b\nmodel: demo:base\n")
    c = _file(tmp_path, "c.yaml", "name: c\nmodel: demo:base\n")
    runs = tmp_path / "runs"
    cases = [
        ([base, b, c, "--adapter", "x"], "--adapter: names the adapter of the one candidate"),
        ([base, b, also_b], f"{also_b}: name: {b} is also named 'b'"),
        ([base, a, b], f"{b}: plan: differs from the plan {a} gives"),
        ([base, b, "--require", "most"], "--require: 'most'; expected all or any"),
        ([base], "CHECKPOINTS: got 1; give a base and at least one candidate"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, ["compare", *args, "--runs-dir", str(runs)])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        [line] = result.stderr.strip().splitlines()
        assert message in line, line
    assert not runs.exists()


@pytest.mark.slow
def test_training_refused_in_a_run_of_several_leaves_nothing_behind(demo_models, tmp_path: Path) -> None:
    # The third file trains from demo:base, whose chat template differs from the reference's: a two-file run
    # refuses that before writing anything, and so does a run of several.
    other = base_with_another_template(demo_models, tmp_path)
    base = _file(tmp_path, "base.yaml", f"name: other\nmodel: {other}\nbackend: transformers\n")
    plain = _file(tmp_path, "plain.yaml", f"name: plain\nmodel: {other}\nbackend: transformers\n")
    sft = _file(tmp_path, "sft.yaml", f"name: sft\ntrain: {{base: demo:base, data: "
                f"[{EXAMPLES / 'data' / 'demo-sft.jsonl'}], output_dir: {tmp_path / 'out'}}}\n")
    plan = _file(tmp_path, "plan.yaml", f"suites: [{ROOT / 'suites' / 'demo'}]\n")
    result = compare(base, plain, sft, "--plan", plan, "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith("train.base: the tokenizer or chat template 'sft' is trained with "
                                          "differs from that of 'other'; train from the same base")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_two_file_run_never_writes_into_a_run_of_several(three_way: tuple[Path, subprocess.CompletedProcess[str]],
                                                           tmp_path: Path) -> None:
    group, _ = three_way
    before = {p: p.stat().st_mtime_ns for p in group.rglob("*") if p.is_file()}
    sft = next(Path(x) for x in json.loads((group / "group.json").read_text())["files"] if "sft" in x)
    for target in (group, group / "demo-base-vs-demo-sft"):
        result = compare(str(EXAMPLES / "base.yaml"), str(sft), "--run-dir", str(target))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"belongs to the run of several checkpoints in {group}" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in group.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_the_same_command_with_run_dir_resumes_the_whole_run(three_way: tuple[Path, subprocess.CompletedProcess[str]]
                                                             ) -> None:
    group, first = three_way
    tmp = group.parent.parent
    manifest = json.loads((group / "group.json").read_text())
    verdict = (group / "verdict.json").read_text()
    (group / "verdict.json").unlink()  # as if it stopped before its end
    again = compare(*manifest["files"], "--plan", str(tmp / "plan.yaml"), "--limit", "12", "--cache",
                    str(tmp / "cache.sqlite"), "--run-dir", str(group))
    assert again.returncode == first.returncode, again.stderr
    assert (group / "verdict.json").read_text() == verdict
    resumed = json.loads((group / "group.json").read_text())
    assert resumed["created_at"] == manifest["created_at"] and resumed["comparisons"] == manifest["comparisons"]
    for c in manifest["comparisons"]:  # every answer from the records and the cache
        stages = json.loads((group / c["dir"] / "manifest.json").read_text())["stages"]
        assert stages["generations"]["generated"] == 0
