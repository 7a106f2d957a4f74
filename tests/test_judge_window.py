"""The judge's sliding window (harness/stages/judge/window.py) against a fake endpoint in the same
event loop: records do not depend on the order calls finish in, the window never holds more than
its size and stays full while work remains, and a failed save stops it at once."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.config.engine import SamplingConfig
from harness.engines.base import Caller, CallFailure, ChatRequest, Completion
from harness.records.cache import Cache
from harness.stages.judge.llm import Outcome, Task
from harness.stages.judge.prompt import load_definition
from harness.stages.judge.window import run_window
from tests.judge_fixtures import generations, judge, llm_plan, make_suite
from tests.judge_server import decide

N = 24
REASKED, FAILED = ("q2x", "q11x"), "q5x"
"""Items whose first reply is out of format (re-asked once), and one whose every call fails. Items q0-q2
also get the canaries (canaries: 3), so q2's four canary pairs are re-asked too."""


def answers(n: int) -> tuple[list[str], list[str]]:
    base = [f"It is {2 * i}." for i in range(n)]
    cand = [f"The answer is {2 * i}, since {i} plus {i} is {2 * i}." for i in range(n)]
    cand[7] = base[7]  # both orders are one conversation: asked once
    return base, cand


def _digest(request: ChatRequest) -> int:
    return int(hashlib.sha256(repr(request.messages).encode()).hexdigest()[:8], 16)


class FakeEndpoint:
    """A CallingBackend whose calls sleep `delay(request)` and answer as tests/judge_server.py's "longer"
    judge (re-asks and failures for the items above). Latency in a Completion is derived from the
    request, not measured, so records can be compared across runs."""

    name = "fake"

    def __init__(self, delay: Callable[[ChatRequest], float], limit: int) -> None:
        self.delay, self.limit = delay, limit
        self.retries_used = 0
        self.in_flight = self.peak = self.calls = 0
        self.finished: list[int] = []
        """Call numbers (in start order) in the order the calls finished."""
        self.changes: list[tuple[float, int]] = []
        """(time, calls in flight) after every start and finish."""

    def _note(self, change: int) -> None:
        self.in_flight += change
        assert self.in_flight <= self.limit, f"{self.in_flight} calls in flight, window {self.limit}"
        self.peak = max(self.peak, self.in_flight)
        self.changes.append((time.perf_counter(), self.in_flight))

    def generate(self, *args: Any, **kwargs: Any) -> list[Completion]:
        raise NotImplementedError

    def close(self) -> None:
        return None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Caller]:
        async def call(request: ChatRequest, sampling: SamplingConfig) -> Completion | CallFailure:
            number = self.calls
            self.calls += 1
            self._note(+1)
            try:
                await asyncio.sleep(self.delay(request))
            finally:
                self._note(-1)
                self.finished.append(number)
            text = " ".join(content for _, content in request.messages)
            if FAILED in text:
                return CallFailure("HTTP 500: injected", 1)
            messages = [{"role": role, "content": content} for role, content in request.messages]
            policy = "fix_on_reask" if any(marker in text for marker in REASKED) else "longer"
            reply = decide(policy, messages)
            return Completion(reply, 10 + _digest(request) % 7, 5, "stop", latency_s=(_digest(request) % 997) / 1000)
        yield call


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, endpoint: FakeEndpoint,
         concurrency: int, n: int = N) -> tuple[list[Any], dict[str, Any], list[Any]]:
    import harness.engines

    monkeypatch.setattr(harness.engines, "open_endpoint", lambda *args: endpoint)
    suite = make_suite(tmp_path, n=n)
    plan = llm_plan("http://127.0.0.1:9/v1", canaries=3, max_concurrency=concurrency).model_copy(
        update={"chunk_size": 5})
    cache = Cache(tmp_path / f"{name}.sqlite")
    try:
        records, stats, sink = judge(plan, suite, generations(suite, *answers(n)), cache)
    finally:
        cache.close()
    for key in ("seconds", "judge_seconds"):
        stats.pop(key)
    return records, stats, sink.records


def test_records_do_not_depend_on_the_order_calls_finish_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order = FakeEndpoint(lambda request: 0.0, limit=1)
    expected, expected_stats, written = _run(tmp_path, monkeypatch, "in-order", in_order, concurrency=1)
    assert in_order.finished == sorted(in_order.finished)
    assert written == expected  # the run's records, in pair order
    prefs = [r.preference for r in expected]
    assert prefs[5] == "failed" and prefs[7] == "tie" and expected[7].calls == 1  # one conversation, both orders
    assert expected[2].reasked_ab and expected[2].reasked_ba and expected[2].calls == 4
    assert (expected_stats["asked"], expected_stats["failed"], expected_stats["cached"]) == (N + 12, 1, 0)
    # q7 asked once for both orders; q2 (and its 4 canaries) and q11 re-asked in both orders
    assert expected_stats["calls"] == in_order.calls == 2 * (N + 12) - 1 + 2 * 6
    for seed in range(3):
        rng = random.Random(seed)
        delays: dict[int, float] = {}

        def delay(request: ChatRequest, delays: dict[int, float] = delays, rng: random.Random = rng) -> float:
            return delays.setdefault(_digest(request), rng.expovariate(1 / 0.004))

        shuffled = FakeEndpoint(delay, limit=6)
        records, stats, written = _run(tmp_path, monkeypatch, f"shuffled{seed}", shuffled, concurrency=6)
        assert shuffled.finished != sorted(shuffled.finished)  # the calls really did finish out of order
        assert records == expected and written == expected and stats == expected_stats


def test_a_rerun_asks_nothing_and_gives_the_same_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = FakeEndpoint(lambda request: 0.001 * (_digest(request) % 5), limit=4)
    records, _, _ = _run(tmp_path, monkeypatch, "cache", first, concurrency=4)
    again = FakeEndpoint(lambda request: 0.0, limit=4)
    rerun, stats, written = _run(tmp_path, monkeypatch, "cache", again, concurrency=4)
    assert again.calls == 2  # only the failed item's two orders, again
    assert written == rerun and stats["cached"] == len(records) - 1
    assert [r.model_copy(update={"cached": False}) for r in rerun] == records


def _occupancy(changes: Sequence[tuple[float, int]], size: int) -> float:
    """Mean share of the window in use from the first call's start to the last call's start (after
    which the window can only drain)."""
    starts = [i for i in range(1, len(changes)) if changes[i][1] > changes[i - 1][1]]
    last = starts[-1]
    busy = sum((changes[i + 1][0] - changes[i][0]) * changes[i][1] for i in range(last))
    return busy / ((changes[last][0] - changes[0][0]) * size)


def test_the_window_never_exceeds_its_size_and_stays_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1)
    endpoint = FakeEndpoint(lambda request: rng.lognormvariate(-3.9, 1.0), limit=8)  # median 20 ms, a heavy tail
    _run(tmp_path, monkeypatch, "window", endpoint, concurrency=8, n=120)
    assert endpoint.peak == 8  # reached; never above (FakeEndpoint asserts it at every start)
    assert _occupancy(endpoint.changes, 8) > 0.9


def _tasks(n: int) -> list[Task]:
    return [Task(f"k{i:03d}", (("user", f"<<ANSWER-0>>\nA{i}\n<<END-0>>\n<<ANSWER-1>>\nB{i}x\n<<END-1>>"),))
            for i in range(n)]


def test_a_save_that_fails_stops_the_window_at_once() -> None:
    loaded = load_definition("pairwise", "plan")
    endpoint = FakeEndpoint(lambda request: 0.001 + (_digest(request) % 3) / 1000, limit=4)
    saved: list[str] = []

    def save(outcomes: dict[str, Outcome]) -> None:
        if len(saved) >= 10:
            raise OSError("disk full")
        saved.extend(outcomes)

    with pytest.raises(OSError, match="disk full"):
        run_window(endpoint, _tasks(100), loaded, SamplingConfig(), 4, save)
    assert 10 <= len(saved) and endpoint.calls <= len(saved) + 4  # in flight or in the failed batch: the window
    assert endpoint.in_flight == 0  # the calls in flight were cancelled, none left running


def test_every_outcome_is_saved_before_its_slot_moves_on() -> None:
    loaded = load_definition("pairwise", "plan")
    endpoint = FakeEndpoint(lambda request: (_digest(request) % 4) / 1000, limit=5)
    saved: list[str] = []

    def save(outcomes: dict[str, Outcome]) -> None:
        # Started but not saved: at most the window (the calls in flight and the batch being saved).
        assert endpoint.calls - len(saved) <= 5
        saved.extend(outcomes)
        assert all(o.verdict == "B" for o in outcomes.values())

    run_window(endpoint, _tasks(60), loaded, SamplingConfig(), 5, save)
    assert sorted(saved) == [t.key for t in _tasks(60)] and endpoint.calls == 60
