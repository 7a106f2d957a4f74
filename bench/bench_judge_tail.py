"""The LLM judge stage against an endpoint whose latency has a heavy tail.

A local OpenAI-compatible judge server (asyncio streams, in its own process so that it takes no CPU
from the client's event loop) answers every call as tests/judge_server.py's "longer" judge, after a
log-normal delay: median 200 ms, p99 2 s (sigma = ln(10) / 2.326). Each request's delay is drawn
from a generator seeded by --seed and the request's content, so every harness version meets the
same delays for the same calls.

ideal: the sum of the delays served divided by the concurrency, the time a window that is always
full would take. ratio: ideal / actual, where actual is `run_judging`'s wall time on an empty cache
(render, call, parse, combine both orders, cache and record writes). Also printed: the mean number of
calls in flight that the server saw, the client's CPU per call, and the same ratio for a perfect
sliding window and for fixed chunks of 32 pairs, simulated over the delays served (no harness, no
HTTP). --ceiling adds the stage's prompts sent as raw AsyncOpenAI calls in a window of the same
size; --profile prints where the client's CPU goes (cProfile).

    python bench/bench_judge_tail.py [--pairs 10000] [--concurrency 64] [--seed 0] [--ceiling] [--profile]
    python bench/bench_judge_tail.py --harness-root /tmp/old   # another checkout's harness (e.g. HEAD's)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEDIAN_S = 0.2
SIGMA = math.log(10) / 2.326
"""p99 / median = exp(2.326 sigma) = 10: p99 2 s."""


def delay_s(seed: int, body: bytes) -> float:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return random.Random(f"{seed}:{digest}").lognormvariate(math.log(MEDIAN_S), SIGMA)


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.delay_sum = 0.0
        self.delays: list[float] = []
        """In arrival order."""
        self.in_flight = self.peak = 0
        self.busy = 0.0
        """Integral of calls in flight over time."""
        self.first = self.last = 0.0
        self._since = time.monotonic()

    def change(self, by: int) -> None:
        now = time.monotonic()
        self.busy += self.in_flight * (now - self._since)
        self._since = now
        self.in_flight += by
        self.peak = max(self.peak, self.in_flight)
        if by > 0:
            self.first = self.first or now
        else:
            self.last = now

    def as_dict(self) -> dict[str, Any]:
        span = self.last - self.first
        return {"requests": self.requests, "delay_sum": self.delay_sum, "peak": self.peak,
                "mean_in_flight": self.busy / span if span > 0 else 0.0, "delays": self.delays}


def serve(port: int, seed: int) -> None:
    """The server process: POST .../chat/completions, GET /stats, POST /reset; HTTP/1.1 keep-alive."""
    sys.path.insert(0, str(ROOT))
    from tests.judge_server import decide

    stats = Stats()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal stats
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if ":" in h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path.endswith("/chat/completions"):
                    request = json.loads(body)
                    wait = delay_s(seed, body)
                    stats.requests += 1
                    stats.delay_sum += wait
                    stats.delays.append(wait)
                    stats.change(+1)
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        stats.change(-1)
                    reply = decide("longer", request["messages"])
                    data = json.dumps({
                        "id": "j", "object": "chat.completion", "created": 0, "model": request["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
                elif path.endswith("/reset"):
                    stats = Stats()
                    data = b"{}"
                else:
                    data = json.dumps(stats.as_dict()).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(data)).encode() + b"\r\n\r\n" + data)  # one write: no Nagle stall
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


def _get(url: str, path: str, method: str = "GET") -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url + path, data=b"{}" if method == "POST" else None,
                                                       method=method), timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def simulated(delays: list[float], concurrency: int, chunk_calls: int | None) -> float:
    """ideal / time for these delays in start order: a perfect sliding window (chunk_calls None: each
    slot takes the next call the moment it is free) or fixed chunks (each waits for its slowest call)."""
    ideal = sum(delays) / concurrency
    if chunk_calls:
        total = 0.0
        for s in range(0, len(delays), chunk_calls):
            total += _window_time(delays[s:s + chunk_calls], concurrency)
        return ideal / total
    return ideal / _window_time(delays, concurrency)


def _window_time(delays: list[float], concurrency: int) -> float:
    free = [0.0] * min(concurrency, len(delays))
    end = 0.0
    for d in delays:
        start = heapq.heappop(free)
        end = max(end, start + d)
        heapq.heappush(free, start + d)
    return end


def raw_calls(url: str, conversations: list[list[dict[str, str]]], concurrency: int) -> dict[str, Any]:
    """The ceiling: the stage's conversations (rendered beforehand) sent straight through
    `openai.AsyncOpenAI` in a sliding window of the same size; nothing parsed, cached or written."""
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=120)
        queue = iter(conversations)

        async def slot() -> None:
            for messages in queue:
                await client.chat.completions.create(model="judge", max_completion_tokens=256, temperature=0,
                                                     top_p=1.0, seed=0, messages=messages)
        await asyncio.gather(*(slot() for _ in range(concurrency)))
        await client.close()

    _get(url, "/reset", "POST")
    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(main())
    return {"actual": time.perf_counter() - started, "cpu": time.process_time() - cpu, **_get(url, "/stats")}


def _conversations(pairs: int) -> list[list[dict[str, str]]]:
    """The judge prompts the stage sends (both orders of every pair), rendered as it renders them."""
    from harness.stages.judge.prompt import delimiter_tag, load_definition, render

    loaded = load_definition("pairwise", "bench")
    out = []
    for i in range(pairs):
        question = f"Question q{i}x: what is {i} plus {i}?"
        base, cand = f"It is {2 * i}.", f"The answer is {2 * i}, since {i} plus {i} is {2 * i}."
        for answers in ({"answer_a": base, "answer_b": cand}, {"answer_a": cand, "answer_b": base}):
            tag = delimiter_tag(0, f"{i}:{answers['answer_a']}")
            out.append([{"role": r, "content": c} for r, c in render(loaded, question, None, answers, tag)])
    return out


def run(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    if args.harness_root:
        sys.path.insert(0, str(Path(args.harness_root).resolve()))
    sys.path.insert(1 if args.harness_root else 0, str(ROOT))
    import harness
    from harness.config.engine import EndpointConfig
    from harness.config.schema import JudgeConfig
    from harness.records.cache import Cache
    from harness.stages.judge.stage import run_judging
    from tests.judge_fixtures import generations, make_suite

    print(f"harness from {Path(harness.__file__).parent}")
    suite = make_suite(tmp, n=args.pairs)
    gens = generations(suite, [f"It is {2 * i}." for i in range(args.pairs)],
                       [f"The answer is {2 * i}, since {i} plus {i} is {2 * i}." for i in range(args.pairs)])
    plan = JudgeConfig(kind="llm", definition="pairwise", canaries=0, endpoint=EndpointConfig(
        base_url=url, model="judge", max_concurrency=args.concurrency, timeout_s=120, max_retries=2))
    records_file = (tmp / "judge.jsonl").open("a", encoding="utf-8")

    def emit(records: list[Any]) -> None:  # as the run dir writes them: appended, flushed, fsynced
        for record in records:
            records_file.write(record.model_dump_json() + "\n")
        records_file.flush()
        os.fsync(records_file.fileno())

    cache = Cache(tmp / "cache.sqlite")
    _get(url, "/reset", "POST")
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    cpu, started = time.process_time(), time.perf_counter()
    records, stats = run_judging(plan, [suite], gens, [], cache, emit, 0)
    actual, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profile:
        import pstats

        profile.disable()
        _print_profile(pstats.Stats(profile))
    served = _get(url, "/stats")
    assert stats["calls"] == served["requests"] == 2 * args.pairs and stats["failed"] == 0, (stats, served)
    assert sum(r.preference == "candidate" for r in records) == args.pairs  # the longer answer, both orders
    return {"actual": actual, "cpu": cpu, "judge_seconds": stats["judge_seconds"], **served}


def _print_profile(stats: Any) -> None:
    """Own time by where the code lives (a third-party package, the standard library, the harness),
    then the hottest functions."""
    by_place: dict[str, float] = {}
    for (file, _line, _name), row in stats.stats.items():
        parts = Path(file).parts
        if file == "~":
            place = "built-ins (socket sends, epoll, isinstance, ...)"
        elif "site-packages" in parts:
            place = parts[parts.index("site-packages") + 1]
        elif "harness" in parts:
            place = "/".join(parts[parts.index("harness"):][:3])
        elif file.startswith(sys.base_prefix) or file.startswith("<frozen"):
            place = "stdlib " + Path(file).stem.strip(">")
        else:
            place = file
        by_place[place] = by_place.get(place, 0.0) + row[2]
    total = sum(by_place.values())
    print(f"own time by place (profiled, {total:.1f} s in all):")
    for place, seconds in sorted(by_place.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {seconds:7.2f} s  {seconds / total:5.1%}  {place}")
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--harness-root", help="import harness from this checkout (its judge stage is measured)")
    parser.add_argument("--profile", action="store_true", help="cProfile the stage (the client side)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time the same number of raw AsyncOpenAI calls in a window of the same size")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.seed)
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve", "0", "--seed", str(args.seed)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            got = run(args, url, Path(tmp))
            raw = raw_calls(url, _conversations(args.pairs), args.concurrency) if args.ceiling else None
    finally:
        server.terminate()
        server.wait()
    calls, c = 2 * args.pairs, args.concurrency
    ideal = got["delay_sum"] / c
    print(f"{args.pairs} pairs ({calls} calls), concurrency {c}, log-normal latency median "
          f"{MEDIAN_S * 1000:.0f} ms, p99 {MEDIAN_S * math.exp(2.326 * SIGMA):.1f} s, seed {args.seed}")
    print(f"delays served: mean {got['delay_sum'] / got['requests'] * 1000:.0f} ms, "
          f"ideal {ideal:.1f} s (sum / concurrency)")
    print(f"harness judge stage:   {got['actual']:7.1f} s  ratio {ideal / got['actual']:.3f}  "
          f"(calls alone {got['judge_seconds']:.1f} s: {ideal / got['judge_seconds']:.3f}); "
          f"in flight: mean {got['mean_in_flight']:.1f}, peak {got['peak']}")
    print(f"client CPU: {got['cpu']:.1f} s, {got['cpu'] / calls * 1000:.2f} ms per call "
          f"({got['cpu'] / got['actual']:.0%} of one core); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if raw:
        print(f"ceiling, the same prompts as raw AsyncOpenAI calls: {raw['actual']:7.1f} s  ratio "
              f"{raw['delay_sum'] / c / raw['actual']:.3f}; in flight: mean {raw['mean_in_flight']:.1f}; "
              f"client CPU {raw['cpu'] / calls * 1000:.2f} ms per call")
    delays = got["delays"]  # in the order they arrived, which is about the order the calls started
    print(f"simulated over the same delays: perfect sliding window {simulated(delays, c, None):.3f}, "
          f"fixed chunks of 32 pairs {simulated(delays, c, 64):.3f}")


if __name__ == "__main__":
    main()
