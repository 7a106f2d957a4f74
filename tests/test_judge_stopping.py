"""judge.stop_early: the stage judges items in a seeded random order and stops once every win-rate gate
is settled by its confidence sequence (harness/stages/judge/stopping.py). Against the local judge
server (tests/judge_server.py, the marker policy: the answer holding GOOD wins), compared with the
full run on the same answers."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.config.schema import GateConfig, JudgeConfig, StopEarly
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.records.run_results import JudgeSummary, SequentialGate, SequentialSummary
from harness.stages.judge.stopping import Stopper, check_stop_early, gate_rules, judging_plan
from harness.verdict.gate import decide, evaluate_gate
from harness.verdict.judge_stats import SCORE, summarize_judgments
from harness.verdict.sequential import SequentialRule, judging_order
from tests.conftest import ROOT, harness_cmd
from tests.judge_fixtures import generations, judge, llm_plan, make_suite
from tests.judge_server import JudgeServer
from tests.test_exit_codes import endpoint_checkpoint

SUPERIORITY = GateConfig(name="judge-prefers-candidate", metric="judge.win_rate", test="superiority", threshold=0.5)
ITEMS = 200


@pytest.fixture()
def cache(cache_path: Path) -> Cache:
    c = Cache(cache_path)
    yield c
    c.close()


def marked_answers(n: int, cand_good: float, base_good: float, seed: int) -> tuple[list[str], list[str]]:
    """Answers the marker judge prefers by the GOOD in them: each side holds it with its own probability."""
    rng = random.Random(seed)
    base = [f"{'GOOD ' if rng.random() < base_good else ''}it is {i}." for i in range(n)]
    cand = [f"{'GOOD ' if rng.random() < cand_good else ''}it is {i}!" for i in range(n)]
    return base, cand


def stopping_plan(url: str, canaries: int = 0, **stop: object) -> JudgeConfig:
    return llm_plan(url, canaries=canaries).model_copy(update={"stop_early": StopEarly(**stop)})  # type: ignore[arg-type]


def run_both(tmp_path: Path, cache_path: Path, cand_good: float, base_good: float, gates: list[GateConfig],
             canaries: int = 0) -> tuple[dict, dict, int, int]:
    """The full run and the stopping run on the same answers, each against a fresh server and cache:
    (full summary, stopping summary, requests of each)."""
    suite = make_suite(tmp_path, ITEMS)
    gens = generations(suite, *marked_answers(ITEMS, cand_good, base_good, seed=7))
    out = []
    for name, plan_of in (("full", lambda url: llm_plan(url, canaries=canaries)),
                          ("early", lambda url: stopping_plan(url, canaries=canaries))):
        cache = Cache(cache_path.with_name(f"{name}.sqlite"))
        with JudgeServer("marker") as server:
            from harness.stages.checks import run_checks
            from harness.stages.judge.stage import run_judging

            records, stats = run_judging(plan_of(server.url), [suite], gens, run_checks([suite], gens), cache,
                                         lambda recs: None, 0, gates=gates)
            out.append((summarize_judgments(records, np.random.default_rng(0), stats.get("sequential")),
                        server.state.requests))
        cache.close()
    (full, full_requests), (early, early_requests) = out
    return full, early, full_requests, early_requests


def test_a_clear_win_stops_with_at_most_half_the_calls_and_the_same_verdict(tmp_path: Path, cache_path: Path) -> None:
    # A true win rate near 0.8 (the candidate marked in 70% of the items, the base in 10%).
    full, early, full_requests, early_requests = run_both(tmp_path, cache_path, 0.7, 0.1, [SUPERIORITY])
    assert full.sequential is None and early.sequential is not None
    seq = early.sequential
    assert seq.stopped_early and seq.items == ITEMS and seq.judged_items < ITEMS / 2
    assert early_requests <= full_requests / 2 and early.n == seq.judged_items  # one pair per item here
    assert seq.calls_saved >= ITEMS  # two orders per item not judged, less the calls in flight at the stop
    [g] = seq.gates
    assert g.outcome == "above" and g.lower > 0.5 and g.n == seq.judged_items and g.population is None
    for summary in (full, early):
        assert decide([SUPERIORITY], _stats(summary), {}).outcome == "pass"
    [result] = evaluate_gate(SUPERIORITY, _stats(early), {})
    assert result.ci == (g.lower, g.upper)
    assert "confidence sequence" in result.reason and "stopped after" in result.reason


def test_a_clear_loss_stops_too_and_fails(tmp_path: Path, cache_path: Path) -> None:
    full, early, full_requests, early_requests = run_both(tmp_path, cache_path, 0.1, 0.7, [SUPERIORITY])
    assert early.sequential is not None and early.sequential.stopped_early
    assert early_requests <= full_requests / 2 and early.sequential.gates[0].outcome == "below"
    assert decide([SUPERIORITY], _stats(full), {}).outcome == decide([SUPERIORITY], _stats(early), {}).outcome == "fail"


def test_a_close_comparison_falls_back_to_the_full_run(tmp_path: Path, cache_path: Path) -> None:
    full, early, full_requests, early_requests = run_both(tmp_path, cache_path, 0.4, 0.4, [SUPERIORITY])
    seq = early.sequential
    assert seq is not None and not seq.stopped_early and seq.judged_items == ITEMS and seq.calls_saved == 0
    assert early_requests == full_requests and early.n == full.n
    assert (early.wins, early.losses, early.ties) == (full.wins, full.losses, full.ties)
    assert decide([SUPERIORITY], _stats(early), {}) == decide([SUPERIORITY], _stats(full), {})
    assert "full-run test decides" in _summary_line(early)


def test_a_point_gate_settles_on_these_items_and_at_most_passes_below(tmp_path: Path, cache_path: Path) -> None:
    at_most = GateConfig(name="not-too-good", metric="judge.win_rate", test="at_most", threshold=0.6)
    full, early, _, _ = run_both(tmp_path, cache_path, 0.1, 0.6, [at_most], canaries=3)
    seq = early.sequential
    assert seq is not None and seq.stopped_early and seq.gates[0].population == ITEMS
    assert seq.gates[0].outcome == "below" and early.canaries.total == full.canaries.total == 12  # every canary
    assert decide([at_most], _stats(early), {}).outcome == decide([at_most], _stats(full), {}).outcome == "pass"


def _stats(summary: JudgeSummary):  # type: ignore[no-untyped-def]
    from harness.records.run_results import RunStats

    return RunStats(seed=0, suites={}, judge=summary)


def _summary_line(summary: JudgeSummary) -> str:
    from harness.render.run_summary import stopping_line

    return stopping_line(summary) or ""


def test_a_rerun_stops_at_the_same_item_from_the_cache_and_an_interrupted_run_resumes(tmp_path: Path,
                                                                                   cache: Cache) -> None:
    suite = make_suite(tmp_path, ITEMS)
    gens = generations(suite, *marked_answers(ITEMS, 0.7, 0.1, seed=3))
    with JudgeServer("marker", delay_s=0.002) as server:
        plan = stopping_plan(server.url)
        first, stats, sink = judge(plan, suite, gens, cache, gates=[SUPERIORITY])
        asked = server.state.requests
        again, stats2, _ = judge(plan, suite, gens, cache, gates=[SUPERIORITY])
        assert server.state.requests == asked and stats2["calls"] == 0  # all from the cache
    assert [(r.item_id, r.preference) for r in again] == [(r.item_id, r.preference) for r in first]
    assert all(r.cached for r in again) and sink.records == first
    one, two = stats["sequential"], stats2["sequential"]
    assert one.stopped_early and (one.judged_items, one.gates) == (two.judged_items, two.gates)
    # Judged in the seeded order, item by item: the records are that order's first items.
    order = judging_order(ITEMS, 0)
    assert [r.item_id for r in first] == [f"q{i}" for i in order[:len(first)]]

    # Killed after its first write, then run again: the same records, the same stopping point.
    fresh = Cache(tmp_path / "other.sqlite")
    with JudgeServer("marker", delay_s=0.002) as server:
        from harness.stages.checks import run_checks
        from harness.stages.judge.stage import run_judging

        writes = []

        def dies_on_second_write(records: list) -> None:
            writes.append(records)
            if len(writes) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_judging(plan.model_copy(update={"endpoint": plan.endpoint.model_copy(update={"base_url": server.url})}),
                        [suite], gens, run_checks([suite], gens), fresh, dies_on_second_write, 0, gates=[SUPERIORITY])
        resumed, _, _ = judge(plan.model_copy(update={"endpoint": plan.endpoint.model_copy(
            update={"base_url": server.url})}), suite, gens, fresh, gates=[SUPERIORITY])
    fresh.close()
    assert [(r.item_id, r.preference) for r in resumed] == [(r.item_id, r.preference) for r in first]


# ---------------------------------------------------------------------------- the pieces


def test_the_judging_plan_puts_canaries_first_then_each_items_pairs_together_in_seeded_order(tmp_path: Path) -> None:
    from harness.stages.judge.pairs import build_pairs

    suite = make_suite(tmp_path, 10)
    gens = generations(suite, ["b"] * 10, ["c"] * 10)
    gens += [g.model_copy(update={"sample_index": 1}) for g in gens]  # two samples per item
    pairs, _ = build_pairs([suite], gens, canaries=2)
    plan = judging_plan(pairs, seed=5)
    assert sorted(plan.order) == list(range(len(pairs)))
    canaries = [pairs[i] for i in plan.order[:8]]
    assert all(p.canary for p in canaries) and not any(pairs[i].canary for i in plan.order[8:])
    items = [pairs[plan.order[start]].item.id for start, _ in plan.spans]
    assert items == [f"q{i}" for i in judging_order(10, 5)]
    for start, end in plan.spans:
        assert end - start == 2 and len({pairs[i].item.id for i in plan.order[start:end]}) == 1
    assert judging_plan(pairs, seed=5) == plan and judging_plan(pairs, seed=6).order != plan.order


def test_the_stopper_settles_where_the_rule_does_on_item_means() -> None:
    # Items of two samples each; the stopper scores an item by the mean of its judged pairs, and an item
    # whose pairs all failed counts for nothing. Fed in arbitrary batches, it stops where the rule stops
    # on the item means, and keeps exactly the pairs of the items up to there.
    from harness.records.stage_records import JudgmentRecord

    rng = np.random.default_rng(1)
    prefs = rng.choice(["candidate"] * 3 + ["tie", "base", "base", "failed"], size=(600, 2))
    spans = [(3 + 2 * i, 5 + 2 * i) for i in range(600)]  # three canaries first
    records = [JudgmentRecord(judge="j", kind="llm", model="m", decided_by="j", suite="s", item_id=f"i{k // 2}",
                              sample_index=k % 2, preference=p, consistent=True, latency_s=0, prompt_tokens=0,
                              completion_tokens=0, calls=2, cached=False, base_words=1, candidate_words=1)
               for k, p in enumerate(prefs.ravel())]
    made = [None] * 3 + records
    rule_of = gate_rules(StopEarly(min_items=10), [SUPERIORITY], 600)
    stopper = Stopper(rule_of, spans, StopEarly(min_items=10))
    whole, written = 3, 0
    while not stopper.update(whole, made) and whole < len(made):
        # What the stage may write so far: never past an item the stopper has not looked at yet (it looks
        # again only as the judged items grow by 1%), so the stopping point is never among written records.
        assert stopper.looked_at <= whole
        written = max(written, stopper.looked_at)
        whole = min(len(made), whole + int(rng.integers(1, 9)))  # batches of any size
    assert stopper.cap is not None and stopper.cap >= written and stopper.looked_at == stopper.cap
    means = [np.mean([SCORE[p] for p in row if p in SCORE]) for row in prefs if any(p in SCORE for p in row)]
    kept = [i for i, row in enumerate(prefs) if any(p in SCORE for p in row)]
    stop, side = SequentialRule(min_items=10).settle(np.asarray(means))
    assert stop[0] > 100 and side[0] == 1, "the fixture is meant to settle after the stopper looks less often"
    assert stopper.cap == spans[kept[stop[0] - 1]][1]
    stopper.account(calls=10, calls_saved=5)
    summary = stopper.summary()
    assert summary.judged_items == kept[stop[0] - 1] + 1 and summary.stopped_early
    assert summary.gates[0].n == stop[0] and summary.gates[0].outcome == "above"


def test_stop_early_config_is_checked_before_anything_runs() -> None:
    assert JudgeConfig.model_validate({"kind": "llm", "endpoint": {"base_url": "http://x/v1", "model": "j"},
                                       "stop_early": True}).stop_early == StopEarly()
    assert JudgeConfig.model_validate({"kind": "rules", "stop_early": False}).stop_early is None
    with pytest.raises(ValueError, match="'stop_early' is only used with kind 'llm'"):
        JudgeConfig.model_validate({"kind": "rules", "stop_early": {"min_items": 5}})
    with pytest.raises(ValueError, match="min_items"):
        JudgeConfig.model_validate({"kind": "llm", "endpoint": {"base_url": "http://x/v1", "model": "j"},
                                    "stop_early": {"min_items": 0}})
    plan = JudgeConfig.model_validate({"kind": "llm", "endpoint": {"base_url": "http://x/v1", "model": "j"},
                                       "stop_early": True})
    parse_rate = GateConfig(name="p", metric="judge.parse_failure_rate", test="at_most", threshold=0.1)
    with pytest.raises(ConfigError, match=r"plan.yaml: judge.stop_early: there is nothing to settle.*default"):
        check_stop_early(plan, [parse_rate], "plan.yaml", "default")
    always = GateConfig(name="w", metric="judge.win_rate", test="at_least", threshold=1.0)
    with pytest.raises(ConfigError, match=r"gate 'w' has threshold 1.0"):
        check_stop_early(plan, [always], "plan.yaml", "default")
    check_stop_early(plan, [SUPERIORITY], "plan.yaml", "default")
    check_stop_early(None, [], "plan.yaml", "default")


def test_a_gate_the_stopping_rule_did_not_settle_is_inconclusive_after_an_early_stop() -> None:
    # `harness gate` with another policy on a run that stopped early: the fixed-sample test on the items
    # judged is not valid after stopping on them, so a win-rate gate the run did not settle cannot decide.
    seq = SequentialSummary(items=100, judged_items=30, stopped_early=True, calls=60, calls_saved=140, alpha=0.05,
                            min_items=20, gates=[SequentialGate(gate=SUPERIORITY.name, test="superiority",
                                                                threshold=0.5, population=None, outcome="above",
                                                                lower=0.55, upper=0.97, n=30)])
    base = summarize_judgments([], np.random.default_rng(0))
    stats = _stats(base.model_copy(update={"sequential": seq, "win_rate": 0.8}))
    other = GateConfig(name="clearly-better", metric="judge.win_rate", test="superiority", threshold=0.6)
    [result] = evaluate_gate(other, stats, {})
    assert result.outcome == "inconclusive" and "not valid after stopping" in result.reason
    [result] = evaluate_gate(SUPERIORITY, stats, {})
    assert result.outcome == "pass" and result.ci == (0.55, 0.97)
    at_most = GateConfig(name=SUPERIORITY.name, metric="judge.win_rate", test="at_most", threshold=0.5)
    flipped = seq.model_copy(update={"gates": [seq.gates[0].model_copy(update={"test": "at_most"})]})
    [result] = evaluate_gate(at_most, _stats(base.model_copy(update={"sequential": flipped})), {})
    assert result.outcome == "fail"  # above 0.5, so not at most 0.5


def test_compare_stops_judging_early_and_says_so(tmp_path: Path) -> None:
    # End to end: both checkpoints and the judge are endpoints on local servers; the candidate's answer
    # always holds the marker, so every pair is a win and judging stops soon after min_items.
    items = "".join(f'  - {{id: q{i}, prompt: "What is {i} plus {i}?", reference: "{2 * i}"}}\n' for i in range(120))
    (tmp_path / "s.yaml").write_text(f"name: s\nitems:\n{items}")
    gates = "[{name: judge-prefers-candidate, metric: judge.win_rate, test: superiority, threshold: 0.5}]"
    with JudgeServer(answers={"base": "It is so.", "cand": "GOOD: it is so."}) as models, \
            JudgeServer("marker") as judge_server:
        endpoint = f"{{base_url: '{judge_server.url}', model: j, max_retries: 0, backoff_s: 0}}"
        (tmp_path / "plan.yaml").write_text(
            f"suites: [{tmp_path / 's.yaml'}]\nforgetting: null\n"
            f"judge: {{kind: llm, canaries: 0, endpoint: {endpoint}, stop_early: {{min_items: 15}}}}\ngates: {gates}\n")
        base = endpoint_checkpoint(tmp_path, "base", models.url)
        cand = endpoint_checkpoint(tmp_path, "cand", models.url)
        for file, model in ((base, "base"), (cand, "cand")):
            file.write_text(file.read_text().replace("model: judge", f"model: {model}"))
        result = subprocess.run(harness_cmd("compare", str(base), str(cand), "--plan", str(tmp_path / "plan.yaml"),
                                            "--run-dir", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")),
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
        requests = judge_server.state.requests
    assert result.returncode == 0, result.stderr + result.stdout
    run = tmp_path / "run"
    seq = json.loads((run / "stats.json").read_text())["judge"]["sequential"]
    assert seq["stopped_early"] and 15 <= seq["judged_items"] < 60 and seq["items"] == 120
    assert requests <= 2 * seq["judged_items"] + 2 * 64  # at most the endpoint's concurrency in flight past the stop
    stage = json.loads((run / "manifest.json").read_text())["stages"]["judge"]
    assert (stage["judged_items"], stage["calls_saved"]) == (seq["judged_items"], seq["calls_saved"])
    verdict = json.loads((run / "verdict.json").read_text())
    [gate] = verdict["gates"]
    assert verdict["outcome"] == "pass" and "confidence sequence" in gate["reason"]
    summary = (run / "summary.md").read_text()
    assert f"Stopped early: {seq['judged_items']} of 120 items judged" in summary
    assert f"{seq['calls_saved']} judge calls saved" in summary


def test_the_gates_that_stop_judging_are_part_of_the_run_inputs(tmp_path: Path) -> None:
    # A run resumed under another win-rate gate would stop judging elsewhere: its inputs differ, so
    # --run-dir refuses to mix the two. Other gates, and every gate without stop_early, leave them as they were.
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.stages.pipeline import _manifest, prepare

    (tmp_path / "s.yaml").write_text('name: s\nitems:\n  - {id: a, prompt: "Hi?"}\n')
    files = [endpoint_checkpoint(tmp_path, name, "http://127.0.0.1:9/v1") for name in ("base", "cand")]
    endpoint = "{base_url: 'http://127.0.0.1:9/v1', model: j}"
    cache = Cache(tmp_path / "c.sqlite")

    def inputs_hash(gates: str, stop: str = ", stop_early: true") -> str:
        plan = tmp_path / "plan.yaml"
        plan.write_text(f"suites: [{tmp_path / 's.yaml'}]\nforgetting: null\n"
                        f"judge: {{kind: llm, endpoint: {endpoint}{stop}}}\ngates: {gates}\n")
        inputs = prepare(files[0], files[1], plan)
        checkpoints = {role: resolve_checkpoint(cfg, inputs.files[role], cache) for role, cfg in inputs.configs.items()}
        return _manifest(inputs, checkpoints, "run").inputs_hash

    win = "{name: w, metric: judge.win_rate, test: superiority, threshold: 0.5}"
    parse = "{name: p, metric: judge.parse_failure_rate, test: at_most, threshold: 0.1}"
    first = inputs_hash(f"[{win}]")
    assert inputs_hash(f"[{win}, {parse}]") == first
    assert inputs_hash(f"[{win.replace('0.5', '0.6')}]") != first
    assert inputs_hash(f"[{win}]", stop="") == inputs_hash(f"[{win.replace('0.5', '0.6')}]", stop="")
    cache.close()


def test_a_large_suite_stops_exactly_where_the_rule_says_on_the_full_runs_outcomes(tmp_path: Path) -> None:
    # 1,500 items and a modest win (about 0.55): the stopper looks again only as the judged items grow by 1%,
    # and the window answers in any order, yet the stage keeps exactly the items up to where the rule,
    # applied to the full run's outcomes in the seeded order, settles; and writes no record past them.
    n = 1500
    suite = make_suite(tmp_path, n)
    gens = generations(suite, *marked_answers(n, 0.35, 0.25, seed=11))
    with JudgeServer("marker") as server:
        full, _, _ = judge(llm_plan(server.url), suite, gens, Cache(tmp_path / "full.sqlite"))
        early, stats, sink = judge(stopping_plan(server.url), suite, gens, Cache(tmp_path / "early.sqlite"),
                                   gates=[SUPERIORITY])
    by_item = {r.item_id: SCORE[r.preference] for r in full if r.preference in SCORE}
    order = [f"q{i}" for i in judging_order(n, 0)]
    outcomes = [by_item[item] for item in order if item in by_item]
    stop, side = SequentialRule().settle(np.asarray(outcomes))
    assert stop[0] > 100 and side[0] == 1, "the fixture is meant to settle after the checks thin out"
    kept = [item for item in order if item in by_item][:stop[0]]
    assert [r.item_id for r in early] == order[:order.index(kept[-1]) + 1]
    assert sink.records == early and stats["sequential"].judged_items == len(early)


def test_the_ledger_writes_no_further_than_it_is_told_and_can_be_capped_there() -> None:
    from harness.records.stage_records import JudgmentRecord
    from harness.stages.judge.ledger import PairLedger
    from harness.stages.judge.llm import Outcome

    def record(index: int, *_: object) -> JudgmentRecord:
        return JudgmentRecord(judge="j", kind="llm", model="m", decided_by="j", suite="s", item_id=f"q{index}",
                              sample_index=0, preference="tie", consistent=True, latency_s=0, prompt_tokens=0,
                              completion_tokens=0, calls=2, cached=False, base_words=1, candidate_words=1)

    emitted: list[list[str]] = []
    keys = [(f"a{i}", f"b{i}") for i in range(6)]
    ledger = PairLedger(keys, record, lambda rs: emitted.append([r.item_id for r in rs]), None, every=1)
    outcome = Outcome(raw="{}", reask_raw=None, verdict="A", score=None, reason="", reasked=False, parsed=True,
                      prompt_tokens=0, completion_tokens=0, calls=1, latency_s=0.0)
    ledger.answered({k: outcome for pair in keys for k in pair})
    ledger.publish(force=True, upto=3)
    assert emitted == [["q0", "q1", "q2"]] and ledger.whole_prefix() == 6
    ledger.cap(4)
    ledger.publish(force=True)
    assert emitted[-1] == ["q3"] and [r.item_id for r in ledger.records()] == ["q0", "q1", "q2", "q3"]
    with pytest.raises(AssertionError):
        ledger.cap(2)  # below what is written
