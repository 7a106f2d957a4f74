"""The LLM judge end to end against a real vLLM OpenAI-compatible server on 127.0.0.1
(the session's shared `vllm_server`, serving the tiny demo base). The tiny model cannot
write the verdict JSON: every pair must come back unparsed with its raw text, after one
re-ask per order, and none may be dropped or guessed. A second run makes no judge call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.config.engine import EndpointConfig
from harness.config.schema import JudgeConfig
from harness.records.cache import Cache
from harness.verdict.judge_stats import summarize_judgments
from tests.judge_fixtures import generations, judge, make_suite

pytestmark = pytest.mark.slow

# The shipped judges' prompts run past the tiny model's 512-token context; this one fits, re-ask included.
TINY_JUDGE = """\
name: tiny-pairwise
system: Judge two answers. Reply with JSON only.
user: |-
  Q: $question
  A: $answer_a
  B: $answer_b
  Reply {"verdict": "A" or "B" or "tie", "reason": "..."}
reask: Not JSON. Reply with the JSON object only.
max_tokens: 24
"""


def test_tiny_model_judge_is_unparsed_honestly_and_cached(vllm_server: str, tmp_path: Path) -> None:
    definition = tmp_path / "tiny.yaml"
    definition.write_text(TINY_JUDGE)
    suite = make_suite(tmp_path)
    gens = generations(suite, [f"I'm sorry but it is {i + 1}." for i in range(6)],
                       [f"It is {2 * i}." for i in range(6)])
    plan = JudgeConfig(kind="llm", definition=str(definition), canaries=0, chunk_size=3,
                       endpoint=EndpointConfig(base_url=vllm_server, model="demo-base", max_concurrency=4,
                                               timeout_s=60, max_retries=1))
    cache = Cache(tmp_path / "cache.sqlite")
    try:
        records, stats, sink = judge(plan, suite, gens, cache)
        assert len(records) == len(sink.records) == 6 and stats["failed"] == 0
        for r in records:
            assert r.preference == "unparsed" and r.consistent is None, (r.raw_ab, r.reask_raw_ab)
            assert r.raw_ab is not None and r.raw_ba is not None  # the judge's own words, kept
            assert r.reasked_ab and r.reasked_ba and r.reask_raw_ab is not None and r.reask_raw_ba is not None
            assert r.calls == 4 and r.prompt_tokens > 0 and r.completion_tokens > 0 and r.model == "demo-base"
        assert stats["calls"] == 24 and stats["retries"] == 0
        summary = summarize_judgments(records, np.random.default_rng(0))
        assert (summary.unparsed, summary.parse_failure_rate, summary.win_rate) == (6, 1.0, None)

        again, stats2, _ = judge(plan, suite, gens, cache)
        assert stats2["calls"] == 0 and stats2["cached"] == 6 and all(r.cached for r in again)
        assert [(r.raw_ab, r.reask_raw_ba) for r in again] == [(r.raw_ab, r.reask_raw_ba) for r in records]
    finally:
        cache.close()
