"""Small builders shared by the judge tests: a suite on disk, generations by hand, a judge plan."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config.engine import EndpointConfig
from harness.config.schema import GateConfig, JudgeConfig
from harness.config.suites import Suite, load_suite
from harness.records.cache import Cache
from harness.records.stage_records import GenerationRecord, JudgmentRecord
from harness.stages.checks import run_checks
from harness.stages.judge.stage import run_judging


def make_suite(tmp_path: Path, n: int = 6, name: str = "math") -> Suite:
    items = [{"id": f"q{i}", "prompt": f"Question q{i}x: what is {i} plus {i}?", "reference": str(2 * i),
              "checks": [{"type": "number_matches_reference"}, {"type": "no_apology_preamble"}]}
             for i in range(n)]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "items": items}))
    return load_suite(path)


def generations(suite: Suite, base: Sequence[str], candidate: Sequence[str]) -> list[GenerationRecord]:
    out = []
    for role, texts in (("base", base), ("candidate", candidate)):
        for item, text in zip(suite.items, texts):
            out.append(GenerationRecord(role=role, checkpoint=role, suite=suite.name, item_id=item.id, sample_index=0,
                                        text=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                                        latency_s=0.0, prompt_hash="h", cache_key="k", cached=False))
    return out


def llm_plan(url: str, definition: str = "pairwise", canaries: int = 0, **endpoint: Any) -> JudgeConfig:
    settings: dict[str, Any] = {"max_retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, **endpoint}
    return JudgeConfig(kind="llm", definition=definition, canaries=canaries, chunk_size=2,
                       endpoint=EndpointConfig(base_url=url, model="judge", **settings))


class Sink:
    """Collects what run_judging emits, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[JudgmentRecord]] = []

    def __call__(self, records: list[JudgmentRecord]) -> None:
        self.batches.append(list(records))

    @property
    def records(self) -> list[JudgmentRecord]:
        return [r for batch in self.batches for r in batch]


def judge(plan: JudgeConfig, suite: Suite, gens: list[GenerationRecord], cache: Cache,
          seed: int = 0, gates: Sequence[GateConfig] = ()) -> tuple[list[JudgmentRecord], dict[str, Any], Sink]:
    sink = Sink()
    records, stats = run_judging(plan, [suite], gens, run_checks([suite], gens), cache, sink, seed, gates=gates)
    return records, stats, sink
