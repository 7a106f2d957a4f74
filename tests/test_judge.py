"""The judge stage against a local judge server (tests/judge_server.py) that answers in format
by a policy and injects faults: verdict logic in both orders, re-asks, canaries, caching,
resuming, retries and failures."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.records.cache import Cache
from harness.verdict.judge_stats import summarize_judgments
from tests.judge_fixtures import generations, judge, llm_plan, make_suite
from tests.judge_server import JudgeServer

BASE = ["It is 0.", "It is 3.", "GOOD: it is 4.", "It is 6.", "It is 9.", "It is 10."]
CAND = ["GOOD: it is 0.", "GOOD: it is 2.", "It is 5.", "GOOD 6.", "It is 8.", "It is 11."]
"""Under the marker policy: candidate wins q0, q1, q3; base wins q2; q4 and q5 tie."""


@pytest.fixture()
def cache(cache_path: Path) -> Cache:
    c = Cache(cache_path)
    yield c
    c.close()


def summary(records: list) -> dict:
    """The judge summary as stats.json holds it."""
    return summarize_judgments(records, np.random.default_rng(0)).model_dump(mode="json")


def test_verdicts_count_only_when_both_orders_agree_and_a_rerun_makes_no_call(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    gens = generations(suite, BASE, CAND)
    with JudgeServer("marker") as server:
        records, stats, sink = judge(llm_plan(server.url), suite, gens, cache)
        assert server.state.requests == 12 and set(server.state.blocks) == {2}
        assert [r.preference for r in records] == ["candidate", "candidate", "base", "candidate", "tie", "tie"]
        assert all(r.consistent and not r.cached and r.calls == 2 and not r.reasked_ab for r in records)
        assert (records[0].verdict_ab, records[0].verdict_ba) == ("B", "A")  # candidate is B, then A
        assert sink.records == records  # written in pair order, none lost or repeated
        assert (stats["calls"], stats["cached"], stats["asked"], stats["retries"]) == (12, 0, 6, 0)
        again, stats2, _ = judge(llm_plan(server.url), suite, gens, cache)
        assert server.state.requests == 12  # not one more call
    assert [r.preference for r in again] == [r.preference for r in records]
    assert all(r.cached for r in again) and (stats2["calls"], stats2["cached"]) == (0, 6)
    s = summary(records)
    assert (s["judge"], s["kind"], s["model"]) == ("pairwise", "llm", "judge")
    assert (s["n"], s["wins"], s["losses"], s["ties"], s["inconsistent"]) == (6, 3, 1, 2, 0)
    assert s["swap_consistency"] == 1.0 and s["win_rate"] == pytest.approx(4 / 6)
    assert (s["calls"], s["prompt_tokens"], s["completion_tokens"]) == (12, 120, 60)


def test_retries_of_the_gold_set_and_of_the_run_both_count(tmp_path: Path, cache: Cache) -> None:
    """The stage's requests are its calls plus every retry: the gold set's (judged first) and the run's."""
    suite = make_suite(tmp_path, n=2)
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"question": "the gold question", "answer_a": "a GOOD", "answer_b": "b", "label": "A"}\n')
    with JudgeServer("marker") as server:
        server.state.faults_for = {"the gold question": ["503", "503"], "Question q1x": ["503"]}  # 2 gold, 1 run
        plan = llm_plan(server.url).model_copy(update={"gold": str(gold)})
        _, stats, _ = judge(plan, suite, generations(suite, BASE[:2], CAND[:2]), cache)
    assert (stats["calls"], stats["retries"], stats["requests"]) == (2 + 4, 3, 9)
    assert stats["gold"].agreed == 1


def test_a_judge_that_always_says_a_gives_only_ties(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    with JudgeServer("always_a") as server:
        records, _, _ = judge(llm_plan(server.url), suite, generations(suite, BASE, CAND), cache)
    assert {r.preference for r in records} == {"tie"} and not any(r.consistent for r in records)
    s = summary(records)
    assert (s["wins"], s["losses"], s["ties"], s["inconsistent"]) == (0, 0, 6, 6)
    assert s["swap_consistency"] == 0.0 and s["win_rate"] == 0.5 and s["sign_test_p"] == 1.0


def test_a_reply_out_of_format_is_reasked_once(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path, n=2)
    with JudgeServer("fix_on_reask") as server:
        records, _, _ = judge(llm_plan(server.url), suite, generations(suite, BASE[:2], CAND[:2]), cache)
        assert server.state.requests == 8
    for r in records:
        assert r.reasked_ab and r.reasked_ba and r.calls == 4 and r.preference == "candidate"
        assert r.raw_ab.startswith("Both answers have merits") and json.loads(r.reask_raw_ab)["verdict"] == "B"


def test_a_judge_that_never_answers_in_format_is_recorded_unparsed_not_dropped(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path, n=3)
    gens = generations(suite, BASE[:3], CAND[:3])
    with JudgeServer("garbage") as server:
        records, _, _ = judge(llm_plan(server.url), suite, gens, cache)
        assert server.state.requests == 12
        judge(llm_plan(server.url), suite, gens, cache)  # an unparsed reply is a result: cached
        assert server.state.requests == 12
    assert len(records) == 3
    for r in records:
        assert r.preference == "unparsed" and r.consistent is None and r.verdict_ab is None
        assert r.raw_ab and r.raw_ba and r.reask_raw_ab and r.reask_raw_ba and r.reasked_ab and r.reasked_ba
    s = summary(records)
    assert (s["unparsed"], s["judged"], s["parse_failure_rate"], s["win_rate"]) == (3, 0, 1.0, None)


def test_fenced_json_is_accepted_without_a_reask(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path, n=2)
    with JudgeServer("fenced") as server:
        records, _, _ = judge(llm_plan(server.url), suite, generations(suite, BASE[:2], CAND[:2]), cache)
    assert [r.preference for r in records] == ["candidate", "candidate"]  # the longer answer wins
    assert not any(r.reasked_ab or r.reasked_ba for r in records)


def test_faults_end_judged_or_failed_with_the_configured_retries(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    gens = generations(suite, BASE, CAND)
    faults = {"q1x": ["500", "429"], "q2x": ["timeout"], "q3x": ["truncated", "malformed"], "q4x": ["html", "400"],
              "q5x": ["500"] * 6}
    with JudgeServer("longer", faults_for=faults, slow_s=1.5) as server:
        plan = llm_plan(server.url, max_retries=2, timeout_s=0.5)
        records, stats, _ = judge(plan, suite, gens, cache)
        # q1-q3 recover within two retries; q4's 400 is not retried; q5 fails all 3 attempts in both orders.
        assert [r.preference for r in records[:4]] == ["candidate", "candidate", "base", "base"]
        assert [r.preference for r in records[4:]] == ["failed", "failed"]
        assert "HTTP 400" in records[4].error and records[5].error.count("gave up after 3 attempts") == 2
        assert stats["retries"] == 2 + 1 + 2 + 1 + 4 and stats["failed"] == 2
        assert stats["requests"] == stats["calls"] + stats["retries"] == server.state.requests
        assert server.state.served["500"] == 7 and server.state.served["ok"] == 9
        assert sum(server.state.served.values()) == server.state.requests == 22
        # Failures were not cached; the orders that succeeded were: a rerun asks only for what failed.
        server.state.faults_for = {}
        again, stats2, _ = judge(plan, suite, gens, cache)
        assert server.state.requests == 22 + 3 and stats2["calls"] == 3
    assert [r.preference for r in again] == ["candidate", "candidate", "base", "base", "tie", "tie"]
    assert sum(r.cached for r in again) == 4
    assert summary(records)["failure_rate"] == pytest.approx(2 / 6)


def test_concurrency_is_bounded(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    with JudgeServer("longer", delay_s=0.3) as server:
        plan = llm_plan(server.url, max_concurrency=3).model_copy(update={"chunk_size": 6})
        judge(plan, suite, generations(suite, BASE, CAND), cache)
        assert 2 <= server.state.peak <= 3


class Killed(Exception):
    pass


def test_an_interrupted_stage_resumes_where_it_stopped(tmp_path: Path, cache: Cache) -> None:
    """Writing the records fails the second time: the conversations saved by then are never asked again,
    and the interrupt lost at most the calls in flight (the window, 2 here)."""
    from harness.stages.checks import run_checks
    from harness.stages.judge.llm import NAMESPACE
    from harness.stages.judge.stage import run_judging

    suite = make_suite(tmp_path)
    gens = generations(suite, BASE, CAND)
    emitted: list = []

    def dies_on_second_write(records: list) -> None:
        if emitted:
            raise Killed()
        emitted.extend(records)

    with JudgeServer("longer") as server:
        plan = llm_plan(server.url, max_concurrency=2)
        with pytest.raises(Killed):
            run_judging(plan, [suite], gens, run_checks([suite], gens), cache, dies_on_second_write, 0)
        first, saved = server.state.requests, cache.count(NAMESPACE)
        assert emitted and saved >= 2 * len(emitted) and first - saved <= 2
        records, stats, sink = judge(plan, suite, gens, cache)
        assert server.state.requests - first == 12 - saved  # only what was not saved
    assert [r.preference for r in records] == ["candidate", "candidate", "base", "base", "tie", "tie"]
    assert emitted == [r.model_copy(update={"cached": False}) for r in records[:len(emitted)]]
    assert sink.records == records and stats["cached"] == sum(r.cached for r in records) >= len(emitted)


def test_longer_is_better_judge_lets_the_padded_canary_win(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    with JudgeServer("longer") as server:
        records, stats, _ = judge(llm_plan(server.url, canaries=2), suite, generations(suite, BASE, CAND), cache)
    assert stats["pairs"] == 6 and stats["canary_pairs"] == 8
    canaries = [r for r in records if r.canary]
    assert {r.canary for r in canaries} == {"empty", "injection", "question", "padded"}
    assert all(r.item_id in ("q0", "q1") for r in canaries)
    s = summary(records)
    assert s["n"] == 6  # canaries stay out of the win/loss numbers
    assert "padded" in s["canaries"]["won"] and "empty" not in s["canaries"]["won"]
    assert s["canaries"]["by_kind"]["padded"] == {"total": 2, "wins": 2}
    assert {"kind": "padded", "suite": "math", "item_id": "q0"} in s["canaries"]["won_items"]


def test_single_answer_grader_prefers_the_higher_grade(tmp_path: Path, cache: Cache) -> None:
    suite = make_suite(tmp_path)
    with JudgeServer("marker") as server:
        records, _, _ = judge(llm_plan(server.url, definition="single-grade"), suite,
                              generations(suite, BASE, CAND), cache)
        assert set(server.state.blocks) == {1}
    assert [(r.score_base, r.score_candidate) for r in records[:3]] == [(3, 9), (3, 9), (9, 3)]
    assert [r.preference for r in records] == ["candidate", "candidate", "base", "candidate", "tie", "tie"]
    assert all(r.consistent is None and r.verdict_ab is None for r in records)
    assert summary(records)["swap_consistency"] is None


def test_the_stage_serves_a_judge_checkpoint_itself_and_stops_it(tmp_path: Path, cache: Cache, demo_models,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`checkpoint:` starts a server on 127.0.0.1, waits for it, judges, and stops it. vLLM's start-up is
    covered by test_judge_vllm; here the command it would run is replaced by the local judge server."""
    import harness.engines.vllm_server as serve
    from harness.config.schema import JudgeConfig

    ports: list[int] = []

    def fake_command(file: Path, host: str, port: int, config: object = None) -> tuple[list[str], dict[str, str]]:
        assert host == "127.0.0.1" and config is None and file == checkpoint
        ports.append(port)
        return [sys.executable, "-m", "tests.judge_server", "--port", str(port), "--policy", "marker"], dict(os.environ)

    monkeypatch.setattr(serve, "server_command", fake_command)
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    checkpoint = tmp_path / "judge.yaml"
    checkpoint.write_text(f"name: demo-judge\nmodel: {demo_models.base}\nbackend: vllm\n")
    suite = make_suite(tmp_path, n=2)
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"question": "q", "answer_a": "a", "answer_b": "b", "label": "A"}\n')
    plan = JudgeConfig(kind="llm", checkpoint=str(checkpoint), canaries=0, startup_timeout_s=60, gold=str(gold))
    records, stats, _ = judge(plan, suite, generations(suite, BASE[:2], CAND[:2]), cache)
    assert [r.preference for r in records] == ["candidate", "candidate"] and stats["calls"] == 4 + 2
    assert records[0].model == str(demo_models.base) and stats["gold"].items == 1
    assert len(ports) == 1  # one server for the gold set and the run's pairs
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", ports[0]), timeout=2):
        pass  # the server is gone
    again, stats, _ = judge(plan, suite, generations(suite, BASE[:2], CAND[:2]), cache)
    assert stats["calls"] == 0 and len(ports) == 1  # every verdict cached: no server started
    assert [r.preference for r in again] == ["candidate", "candidate"]


def test_a_judge_server_that_dies_at_start_is_an_infra_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.engines.vllm_server as serve
    from harness.errors import InfraError

    monkeypatch.setattr(serve, "server_command", lambda *a, **k: (
        [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"], dict(os.environ)))
    with pytest.raises(InfraError, match=r"^the judge server exited with code 3: CUDA out of memory$"):
        with serve.served(str(tmp_path / "judge.yaml"), timeout_s=30, label="judge server"):
            pass
