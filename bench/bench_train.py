"""Smoke-test SFT throughput against a plain TRL loop, measured in one run.

ceiling: SFTTrainer alone on the same conversations and settings (no curation,
no preflight, no evaluation, nothing saved).
harness: `ensure_trained` end to end (load, curate, split, preflight, train,
evaluate, verdict, save).

    python bench/bench_train.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness.config.schema import CheckpointConfig
from harness.demo.build import ensure_demo_models
from harness.records.cache import Cache
from harness.stages.train.sft import ensure_trained

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "demo-sft.jsonl"


def plain_trl(base: Path, steps: int, out: Path) -> tuple[float, int]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(output_dir=str(out), use_cpu=True, report_to=[], assistant_only_loss=True, max_length=256,
                     per_device_train_batch_size=16, max_steps=steps, learning_rate=3e-4, logging_steps=1,
                     save_strategy="no", disable_tqdm=True, include_num_input_tokens_seen=True)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows))
    trainer.train()
    return time.perf_counter() - started, int(trainer.state.num_input_tokens_seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    base = ensure_demo_models().base
    tmp = Path(tempfile.mkdtemp())
    raw_s, raw_tokens = plain_trl(base, args.steps, tmp / "plain")
    config = CheckpointConfig(name="bench", train={
        "base": str(base), "data": [str(DATA)], "max_steps": args.steps, "learning_rate": 3e-4, "batch_size": 16,
        "max_length": 256, "output_dir": str(tmp / "harness")})
    started = time.perf_counter()
    outcome = ensure_trained(config, "bench.yaml", Cache(tmp / "c.sqlite"))
    harness_s = time.perf_counter() - started
    print(f"steps: {args.steps}, batch 16, demo SFT data, CPU")
    print(f"ceiling (plain TRL SFTTrainer): {raw_s:6.1f} s  {raw_tokens / raw_s:8.0f} tok/s")
    print(f"harness train (end to end):     {harness_s:6.1f} s  ratio {raw_s / harness_s:.2f} of the ceiling's speed")
    print(f"  of which data-to-saved-model: {outcome.result.seconds} s; "
          f"smoke passed: {outcome.result.smoke.passed}")


if __name__ == "__main__":
    main()
