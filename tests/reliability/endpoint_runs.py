"""Compares whose checkpoints and judge are endpoints on a local server (tests/judge_server.py):
every stage but training and forgetting runs for real, in seconds, with no model loaded, so a
reliability test can repeat them many times."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import ROOT, harness_cmd

ITEMS = 24


def write_inputs(work: Path, url: str, judge_url: str | None = None, items: int = ITEMS, chunk: int = 4) -> list[str]:
    """base.yaml, cand.yaml and plan.yaml under `work`; returns the compare arguments for them."""
    work.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"id": f"q{i:03d}", "prompt": f"What is {i} + {i}?", "reference": str(2 * i),
                        "checks": [{"type": "contains", "value": str(2 * i)}]}) for i in range(items)]
    (work / "sums.jsonl").write_text("\n".join(rows) + "\n")
    for name in ("base", "cand"):
        (work / f"{name}.yaml").write_text(
            f"name: {name}\nmodel: m-{name}\nbackend: openai\nengine: {{chunk_size: {chunk}}}\n"
            f"endpoint: {{base_url: '{url}', max_retries: 6, backoff_s: 0.01, timeout_s: 5}}\n")
    judge = "null"
    if judge_url:
        judge = (f"{{kind: llm, canaries: 4, chunk_size: {chunk}, endpoint: {{base_url: '{judge_url}', model: j, "
                 "max_retries: 6, backoff_s: 0.01, timeout_s: 5}}")
    (work / "plan.yaml").write_text(f"suites: [{work / 'sums.jsonl'}]\nforgetting: null\njudge: {judge}\n"
                                    "gates: [{name: judge-prefers-candidate, metric: judge.win_rate, "
                                    "test: superiority, threshold: 0.5, required: false}]\n")
    return [str(work / "base.yaml"), str(work / "cand.yaml"), "--plan", str(work / "plan.yaml")]


def compare(args: list[str], run_dir: Path, cache: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd("compare", *args, "--run-dir", str(run_dir), "--cache", str(cache)),
                          capture_output=True, text=True, cwd=ROOT, timeout=600, **kw)


def outcome(run_dir: Path) -> dict[str, Any]:
    """What a run decided and recorded, timings and cache flags aside."""
    def rows(stage: str, cols: list[str]) -> list[tuple[Any, ...]]:
        frame = pd.read_parquet(run_dir / "records" / f"{stage}.parquet")
        assert not frame.duplicated(["role", "suite", "item_id", "sample_index"] if stage != "judge"
                                    else ["suite", "item_id", "sample_index", "canary"]).any(), stage
        return sorted(tuple(str(v) for v in row) for row in frame[cols].itertuples(index=False, name=None))

    stats = json.loads((run_dir / "stats.json").read_text())
    for key in ("calls", "cached"):
        (stats.get("judge") or {}).pop(key, None)
    verdict = json.loads((run_dir / "verdict.json").read_text())
    return {"generations": rows("generations", ["role", "item_id", "text"]),
            "checks": rows("checks", ["role", "item_id", "check", "passed"]),
            "judge": rows("judge", ["item_id", "canary", "preference", "verdict_ab", "verdict_ba"])
            if (run_dir / "records" / "judge.parquet").exists() else [],
            "stats": stats, "verdict": {k: verdict[k] for k in ("outcome", "exit_code", "reason", "gates")}}
