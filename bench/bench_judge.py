"""The LLM judge stage against raw client calls, measured in one run.

A local OpenAI-compatible judge server (tests/judge_server.py) answers every call
after a fixed delay, standing in for a model's latency.
ceiling: the same number of chat calls (two per pair) sent straight through
`openai.AsyncOpenAI` with the same concurrency bound, nothing rendered or parsed.
harness: `run_judging` on an empty cache (render with delimiters, call, parse,
combine both orders, records, cache writes), then again from the cache.

    python bench/bench_judge.py [--pairs 400] [--delay 0.02] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config.engine import EndpointConfig
from harness.config.schema import JudgeConfig  # noqa: E402
from harness.records.cache import Cache  # noqa: E402
from harness.stages.judge.stage import run_judging  # noqa: E402
from tests.judge_fixtures import generations, make_suite  # noqa: E402
from tests.judge_server import JudgeServer  # noqa: E402


def raw_calls(url: str, n: int, concurrency: int) -> float:
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(model="judge", max_tokens=64, temperature=0, messages=[
                    {"role": "user", "content": f"<<ANSWER-{i:06x}>>\nx\n<<END-{i:06x}>>"}])
        await asyncio.gather(*(one(i) for i in range(n)))
        await client.close()

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    suite = make_suite(tmp, n=args.pairs)
    gens = generations(suite, [f"It is {2 * i}." for i in range(args.pairs)],
                       [f"The answer is {2 * i}, since {i} plus {i} is {2 * i}." for i in range(args.pairs)])
    with JudgeServer(policy="longer", delay_s=args.delay) as server:
        raw_s = raw_calls(server.url, 2 * args.pairs, args.concurrency)
        plan = JudgeConfig(kind="llm", definition="pairwise", canaries=0, endpoint=EndpointConfig(
            base_url=server.url, model="judge", max_concurrency=args.concurrency))  # default chunk_size
        cache = Cache(tmp / "cache.sqlite")
        started = time.perf_counter()
        _, first = run_judging(plan, [suite], gens, [], cache, lambda _: None, 0)
        harness_s = time.perf_counter() - started
        started = time.perf_counter()
        _, again = run_judging(plan, [suite], gens, [], cache, lambda _: None, 0)
        cached_s = time.perf_counter() - started
    calls = 2 * args.pairs
    print(f"{args.pairs} pairs ({calls} calls), server delay {args.delay * 1000:.0f} ms, "
          f"concurrency {args.concurrency}")
    print(f"ceiling (raw AsyncOpenAI calls):  {raw_s:6.2f} s  {calls / raw_s:7.0f} calls/s")
    print(f"harness judge, empty cache:       {harness_s:6.2f} s  ratio {raw_s / harness_s:.2f}  "
          f"({first['calls']} calls, {first['retries']} retries)")
    print(f"harness judge, rerun from cache:  {cached_s:6.2f} s  ({again['calls']} calls)")


if __name__ == "__main__":
    main()
