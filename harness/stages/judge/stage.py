"""Judge stage: base vs candidate answers, pair by pair, in both orders -> JudgmentRecords.

Every (suite item, sample index) that both checkpoints answered is one pair
(pairs.py, with the canaries). Order AB shows the base as A and the
candidate as B, order BA swaps them; a side wins only when both orders pick
it, any disagreement is a tie counted as inconsistent.

Judge calls run in a sliding window (window.py: at most the endpoint's
max_concurrency in flight, the next starting as each finishes) and are
cached by content as they finish, so a rerun makes no call and an
interrupted stage resumes, losing at most the calls in flight. Records are
written in pair order, whatever order the calls finished in (ledger.py).
Failed calls are recorded as failed pairs and never cached. Offline judges
(reference, rules) need no model and make no call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness.config.engine import EndpointConfig
from harness.config.loading import load_checkpoint
from harness.config.schema import CheckpointConfig, GateConfig, JudgeConfig
from harness.config.suites import Suite
from harness.engines.vllm_server import served
from harness.errors import ConfigError
from harness.records.answers import AnswerRow
from harness.records.cache import Cache
from harness.records.outcomes import CheckedAnswers
from harness.records.stage_records import CheckRecord, JudgmentRecord, Verdict
from harness.stages.judge.gold import GoldSet, load_gold
from harness.stages.judge.ledger import Emit, OnProgress, PairLedger
from harness.stages.judge.llm import NAMESPACE, Outcome, Task, from_cache, make_task, sampling_of
from harness.stages.judge.offline import check_outcomes, decide
from harness.stages.judge.pairs import CANARIES, Pair, build_pairs
from harness.stages.judge.prompt import LoadedDefinition, load_definition
from harness.stages.judge.stopping import Stopper, gate_rules, judging_plan
from harness.stages.judge.window import run_window
from harness.verdict.gold import gold_agreement

__all__ = ["CANARIES", "Judge", "Pair", "load_judge", "run_judging"]


@dataclass(frozen=True)
class Judge:
    config: JudgeConfig
    file: str
    name: str
    model: str | None
    definition: LoadedDefinition | None = None
    checkpoint: CheckpointConfig | None = None
    gold: GoldSet | None = None

    @property
    def kind(self) -> Literal["reference", "rules", "llm"]:
        return self.config.kind


def load_judge(plan: JudgeConfig, file: str) -> Judge:
    """Everything the stage needs, validated before any model loads; bad input is a ConfigError."""
    if plan.kind != "llm":
        return Judge(plan, file, plan.kind, None)
    loaded = load_definition(plan.definition, file)
    gold = load_gold(plan.gold, file) if plan.gold is not None else None
    if plan.endpoint is not None:
        plan.endpoint.api_key(file, "judge.endpoint.api_key_env")  # set, before any model loads
        return Judge(plan, file, loaded.definition.name, plan.endpoint.model, loaded, gold=gold)
    assert plan.checkpoint is not None
    checkpoint = load_checkpoint(Path(plan.checkpoint))
    if checkpoint.backend == "openai":
        raise ConfigError(file, "judge.checkpoint", f"{plan.checkpoint} is already an endpoint; "
                          "give it as judge.endpoint instead")
    if checkpoint.train is not None:
        raise ConfigError(file, "judge.checkpoint", f"{plan.checkpoint} is produced by training; "
                          "train it first (harness train) and point the judge at the result")
    return Judge(plan, file, loaded.definition.name, checkpoint.model, loaded, checkpoint, gold)


@dataclass
class JudgeStats:
    pairs: int = 0
    canary_pairs: int = 0
    unpaired_samples: int = 0
    cached: int = 0
    """Pairs (canaries included) whose verdicts came from the cache."""
    asked: int = 0
    """Pairs (canaries included) put to the judge in this run; `failed` of them got no reply. (stats.json's
    `judged` counts something else: real pairs with a verdict.)"""
    failed: int = 0
    calls: int = 0
    """Judge calls made in this run (one per order, a re-ask is another)."""
    retries: int = 0
    requests: int = 0
    """HTTP requests sent in this run: calls plus retries."""
    seconds: float = 0.0
    """The whole stage, a judge server's start-up included."""
    judge_seconds: float = 0.0
    """Time spent in judge calls."""


def run_judging(plan: JudgeConfig, suites: Sequence[Suite], generations: Iterable[AnswerRow],
                checks: Sequence[CheckRecord] | CheckedAnswers, cache: Cache, emit: Emit, seed: int,
                progress: OnProgress | None = None, file: str = "plan",
                gates: Sequence[GateConfig] = (), emit_gold: Emit | None = None, keep: bool = True
                ) -> tuple[list[JudgmentRecord], dict[str, Any]]:
    """Judge every base/candidate pair (and the canaries); records go to `emit` as they are final.
    `checks` feed the offline judges; `seed` draws the answer delimiters (and, with plan.stop_early, the
    judging order; `gates` are then the policy whose win-rate gates may stop it: stopping.py). Returns the
    records in pair order (judging order when stopping early) and the stage's counts (JudgeStats: pairs,
    cached, asked now, failed, calls, retries, requests, seconds), with `sequential` (a SequentialSummary)
    when judging could stop early. `keep=False`: the records only go to `emit` (and none come back), for a
    caller that reads them back from where they went."""
    started = time.perf_counter()
    judge = load_judge(plan, file)
    pairs, unpaired = build_pairs(suites, generations, plan.canaries)
    canaries = sum(p.canary is not None for p in pairs)
    stats = JudgeStats(pairs=len(pairs) - canaries, canary_pairs=canaries, unpaired_samples=unpaired)
    stopper = None
    gold_summary = None
    if judge.definition is None:  # offline: no model, no call, nothing worth caching
        records = _judge_offline(judge, pairs, checks, emit, progress, keep)
        stats.asked = len(pairs)
    else:
        with ExitStack() as stack:  # the judge's server, started at the first call the cache lacks, serves both
            connect = _Connection(judge, stack)
            if judge.gold is not None:  # first: the judge scored against people before it judges the run
                gold_stats = JudgeStats(pairs=len(judge.gold.pairs))
                gold = _judge_llm(judge, judge.gold.pairs, cache, emit_gold or (lambda records: None), seed,
                                  gold_stats, None, connect)
                stats.calls += gold_stats.calls
                stats.retries += gold_stats.retries
                stats.judge_seconds += gold_stats.judge_seconds
                gold_summary = gold_agreement(gold, judge.gold.labels, judge.gold.sha256)
            if plan.stop_early is not None:
                order = judging_plan(pairs, seed)
                rules = gate_rules(plan.stop_early, gates, len(order.spans))
                if rules and order.spans:
                    pairs = [pairs[i] for i in order.order]
                    stopper = Stopper(rules, order.spans, plan.stop_early)
            records = _judge_llm(judge, pairs, cache, emit, seed, stats, progress, connect, stopper)
        stats.failed = sum(r.preference == "failed" for r in records)
        if not keep:
            records = []
    stats.requests = stats.calls + stats.retries
    stats.seconds = round(time.perf_counter() - started, 3)
    out: dict[str, Any] = {"judge": judge.name, "kind": judge.kind, "model": judge.model}
    out.update(asdict(stats))
    if stopper is not None:
        out["sequential"] = stopper.summary()
    if gold_summary is not None:
        out["gold"] = gold_summary
    return records, out


def _words(text: str) -> int:
    return len(text.split())


def _outcomes(known: CheckedAnswers, pair: Pair, role: str, text: str) -> dict[str, bool]:
    """The check results of one answer: from the check stage's, else (a canary) run here."""
    found = None if role == "candidate" and pair.canary else known.named(
        role, pair.suite.name, pair.item.id, pair.sample_index)
    return found if found is not None else check_outcomes(pair.suite, pair.item, text)


OFFLINE_CHUNK = 8192
"""Offline judgments written at a time: the stage holds no more than these."""

# The offline judge's preference as each order's verdict (A is the side shown first).
_ORDERS: dict[str, tuple[Verdict, Verdict]] = {"base": ("A", "B"), "candidate": ("B", "A"), "tie": ("tie", "tie")}


def _judge_offline(judge: Judge, pairs: Sequence[Pair], checks: Sequence[CheckRecord] | CheckedAnswers, emit: Emit,
                   progress: OnProgress | None, keep: bool) -> list[JudgmentRecord]:
    """Every pair decided by the rules; the records go to `emit` a chunk at a time (and are returned if `keep`)."""
    known = CheckedAnswers.of(checks)
    kept: list[JudgmentRecord] = []
    for start in range(0, len(pairs), OFFLINE_CHUNK):
        records = [_offline_record(judge, known, p) for p in pairs[start:start + OFFLINE_CHUNK]]
        emit(records)
        if keep:
            kept.extend(records)
        if progress:
            progress(start + len(records), len(pairs))
    return kept


def _offline_record(judge: Judge, known: CheckedAnswers, p: Pair) -> JudgmentRecord:
    base = (p.base, _outcomes(known, p, "base", p.base))
    cand = (p.candidate, _outcomes(known, p, "candidate", p.candidate))
    d = decide(judge.config.kind, p.item, p.question, base, cand)  # type: ignore[arg-type]
    ab, ba = _ORDERS[d.preference]
    return JudgmentRecord(
        judge=judge.name, kind=judge.kind, model=None, decided_by=d.decided_by, suite=p.suite.name,
        item_id=p.item.id, sample_index=p.sample_index, canary=p.canary, verdict_ab=ab, verdict_ba=ba,
        reason_ab=d.reason, reason_ba=d.reason, preference=d.preference, consistent=True, latency_s=0.0,
        prompt_tokens=0, completion_tokens=0, calls=0, cached=False,
        base_words=_words(p.base), candidate_words=_words(p.candidate))


def _identity(judge: Judge, cache: Cache) -> dict[str, Any]:
    """The judge model in every cache key: the endpoint and its model name, or the served weights."""
    if judge.checkpoint is not None:
        from harness.engines.checkpoint import resolve_checkpoint

        return {"checkpoint": resolve_checkpoint(judge.checkpoint, str(judge.config.checkpoint), cache).fingerprint}
    endpoint = judge.config.endpoint
    assert endpoint is not None
    identity: dict[str, Any] = {"base_url": endpoint.base_url, "model": endpoint.model}
    sent = endpoint.sampling_sent(endpoint.model or judge.name)
    if sent != ["temperature", "top_p", "seed"]:  # a setting not sent is not applied: other replies
        identity["sampling_sent"] = sent
    return identity


def _tasks(judge: Judge, pair: Pair, identity: dict[str, Any], seed: int) -> tuple[Task, Task]:
    loaded = judge.definition
    assert loaded is not None
    ref = pair.item.reference

    def task(answers: dict[str, str]) -> Task:
        return make_task(identity, loaded, pair.question, ref, answers, seed)
    if loaded.definition.mode == "single":  # "ab" grades the base's answer, "ba" the candidate's
        return task({"answer": pair.base}), task({"answer": pair.candidate})
    return (task({"answer_a": pair.base, "answer_b": pair.candidate}),
            task({"answer_a": pair.candidate, "answer_b": pair.base}))


class _Connection:
    """The judge's endpoint for one stage, made on first use: as configured, or a server started for its checkpoint
    (once, for the gold set and the run's pairs alike; not at all when the cache holds every verdict), which the
    stage's exit stack stops."""

    def __init__(self, judge: Judge, stack: ExitStack) -> None:
        self.judge, self.stack = judge, stack
        self.endpoint: EndpointConfig | None = None

    def __call__(self) -> EndpointConfig:
        if self.endpoint is None:
            self.endpoint = self.stack.enter_context(_endpoint(self.judge))
        return self.endpoint


def _judge_llm(judge: Judge, pairs: Sequence[Pair], cache: Cache, emit: Emit, seed: int, stats: JudgeStats,
               progress: OnProgress | None, connect: _Connection, stopper: Stopper | None = None
               ) -> list[JudgmentRecord]:
    assert judge.definition is not None
    identity = _identity(judge, cache)
    tasks = [_tasks(judge, p, identity, seed) for p in pairs]
    # One process at a time asks this judge about these pairs; another waits, then finds the verdicts cached.
    with cache.work_lock("judge", sorted({t.key for ts in tasks for t in ts})):
        return _judge_tasks(judge, pairs, tasks, cache, emit, seed, stats, progress, connect, stopper)


def _judge_tasks(judge: Judge, pairs: Sequence[Pair], tasks: Sequence[tuple[Task, Task]], cache: Cache, emit: Emit,
                 seed: int, stats: JudgeStats, progress: OnProgress | None, connect: _Connection,
                 stopper: Stopper | None) -> list[JudgmentRecord]:
    from harness.engines import open_endpoint

    assert judge.definition is not None
    hits = {k: from_cache(v) for k, v in cache.get_many(NAMESPACE, (t.key for ts in tasks for t in ts)).items()}

    def record(index: int, ab: Outcome, ba: Outcome) -> JudgmentRecord:
        return combine(judge, pairs[index], ab, ba, shared=tasks[index][0].key == tasks[index][1].key)

    ledger = PairLedger([(ab.key, ba.key) for ab, ba in tasks], record, emit, progress, judge.config.chunk_size)

    def settle() -> None:
        """With stop_early, stop at the item where every win-rate gate settled. No record past it is written
        before: the ledger writes no further than the stopper has looked (Stopper.looked_at)."""
        if stopper is not None and stopper.update(ledger.whole_prefix(), ledger.made()) and stopper.cap is not None:
            if ledger.size > stopper.cap:
                ledger.cap(stopper.cap)

    ledger.answered(hits)
    settle()
    todo = [i for i in range(ledger.size) if not ledger.whole(i)]
    stats.cached = ledger.size - len(todo)
    ledger.publish(force=True, upto=stopper.looked_at if stopper is not None else None)
    asked: set[str] = set()
    if todo:
        # Only what the cache lacks, each distinct conversation once, in pair (judging) order.
        asks = list({t.key: t for i in todo for t in tasks[i] if t.key not in hits}.values())

        def pending() -> Iterator[Task]:
            for task in asks:  # taken lazily, one by one, by the window's slots
                if stopper is not None and stopper.settled:
                    return
                asked.add(task.key)
                yield task

        def save(outcomes: dict[str, Outcome]) -> None:
            good = {k: o.cache_value() for k, o in outcomes.items() if o.error is None}
            if good:
                cache.put_many(NAMESPACE, good)  # before any record: a record on disk has its cache entries
            stats.calls += sum(o.calls for o in outcomes.values())
            ledger.answered(outcomes)
            settle()
            ledger.publish(upto=stopper.looked_at if stopper is not None else None)

        endpoint = connect()
        started = time.perf_counter()
        backend = open_endpoint(endpoint, endpoint.model or judge.name, judge.file)
        run_window(backend, pending(), judge.definition, sampling_of(judge.definition, seed),
                   endpoint.max_concurrency, save)
        stats.retries += backend.retries_used  # added to the gold set's, when the stage judged one first
        stats.judge_seconds += round(time.perf_counter() - started, 3)
        stats.asked = len([i for i in todo if i < ledger.size])
        ledger.publish(force=True)
    if stopper is not None:
        kept = {t.key for ts in tasks[:ledger.size] for t in ts}
        skipped = {t.key for ts in tasks[ledger.size:] for t in ts} - kept - hits.keys() - asked
        stopper.account(len(kept), len(skipped))
    return ledger.records()


SERVED_CONCURRENCY = 64
"""Calls in flight to a judge server the stage started itself: nothing else shares it, and vLLM batches what is in
flight (the demo's 361 judge calls on two cores: 19.6 s with 16 in flight, 13.8 s with 64). An endpoint's own
max_concurrency stays the user's (a hosted API's rate limits decide it)."""


@contextmanager
def _endpoint(judge: Judge) -> Iterator[EndpointConfig]:
    """The judge's endpoint: as configured, or a server started here for its checkpoint and stopped after."""
    if judge.config.endpoint is not None:
        yield judge.config.endpoint
        return
    assert judge.checkpoint is not None and judge.config.checkpoint is not None
    with served(judge.config.checkpoint, judge.config.startup_timeout_s, "judge server") as url:
        yield EndpointConfig(base_url=url, model=judge.checkpoint.name, max_concurrency=SERVED_CONCURRENCY)


def combine(judge: Judge, pair: Pair, ab: Outcome, ba: Outcome, shared: bool = False) -> JudgmentRecord:
    """Two outcomes -> one record: failed beats unparsed beats a verdict. `shared`: both orders were one
    conversation (identical answers), so its cost counts once."""
    single = judge.definition is not None and judge.definition.definition.mode == "single"
    consistent: bool | None = None
    if ab.error or ba.error:
        preference = "failed"
    elif not (ab.parsed and ba.parsed):
        preference = "unparsed"
    elif single:
        assert ab.score is not None and ba.score is not None
        preference = "candidate" if ba.score > ab.score else "base" if ab.score > ba.score else "tie"
    else:
        first = {"A": "base", "B": "candidate", "tie": "tie"}[ab.verdict or ""]
        second = {"A": "candidate", "B": "base", "tie": "tie"}[ba.verdict or ""]
        consistent = first == second
        preference = first if consistent else "tie"
    return JudgmentRecord(
        judge=judge.name, kind="llm", model=judge.model, decided_by=judge.name, suite=pair.suite.name,
        item_id=pair.item.id, sample_index=pair.sample_index, canary=pair.canary,
        raw_ab=ab.raw, raw_ba=ba.raw, reask_raw_ab=ab.reask_raw, reask_raw_ba=ba.reask_raw,
        verdict_ab=None if single else ab.verdict, verdict_ba=None if single else ba.verdict,
        reasked_ab=ab.reasked, reasked_ba=ba.reasked, reason_ab=ab.reason, reason_ba=ba.reason,
        score_base=ab.score if single else None, score_candidate=ba.score if single else None,
        preference=preference, consistent=consistent,
        error="; ".join(e for e in (ab.error, ba.error) if e) or None,
        latency_s=round(ab.latency_s + (0 if shared else ba.latency_s), 4),
        prompt_tokens=ab.prompt_tokens + (0 if shared else ba.prompt_tokens),
        completion_tokens=ab.completion_tokens + (0 if shared else ba.completion_tokens),
        calls=ab.calls + (0 if shared else ba.calls),
        cached=ab.cached and ba.cached, base_words=_words(pair.base), candidate_words=_words(pair.candidate))
