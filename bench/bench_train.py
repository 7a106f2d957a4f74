"""Smoke-test SFT against plain TRL doing the same work, measured side by side in one run.

The model is a synthetic Llama (bench/models.py, `--model train`: one step of batch 16 on the demo
SFT data takes about a second on two cores), so a few dozen steps measure compute, not start-up.
`--model demo` runs the tiny demo base instead.

ceiling, train only: plain TRL `SFTTrainer` on the harness's training rows, no evaluation, saved.
ceiling, same work: the same plus the evaluations the harness makes: the validation set every
`eval_every` steps and, after training, the validation set and an equal sample of training rows
(what the smoke verdict compares), with the harness's own schedule and rows.
harness: `ensure_trained` end to end (load, curate, split, preflight, train with its periodic
evaluations, final evaluation, smoke verdict, save). Its parts are timed from inside: the trainer's
own log holds each evaluation's runtime.

The rows (curation and split) are computed once, untimed, for the ceilings. Rounds alternate the
three `--repeat` times in one process, each side first in turn; medians, and the median of per-round ratios.

    python bench/bench_train.py [--model train|demo] [--steps 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import bench_model, describe  # noqa: E402

import harness.stages.train.sft as sft  # noqa: E402
from harness.config.schema import CheckpointConfig  # noqa: E402
from harness.config.training import TrainConfig  # noqa: E402
from harness.records.cache import Cache  # noqa: E402
from harness.stages.train.curation import curate  # noqa: E402
from harness.stages.train.data import load_conversations, split  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "demo-sft.jsonl"
SETTINGS: dict[str, Any] = {"learning_rate": 3e-4, "batch_size": 16, "max_length": 256, "validation_share": 0.05}


def harness_rows(train: TrainConfig, base: Path) -> tuple[Any, list[Any], list[Any]]:
    """The training and validation rows the harness trains on (its curation and split)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    template = sft.check_template(tok, base, "bench")
    count = sft._token_counter(tok)
    kept = curate(load_conversations([DATA], train.format, train.max_bad_share).conversations, train.curation,
                  count).kept
    kept = [c for c in kept if count(sft._render(tok, template, c, "bench")) <= train.max_length]
    train_rows, eval_rows = split(kept, train.validation_share, train.seed)
    return tok, train_rows, eval_rows


def plain_trl(base: Path, train: TrainConfig, rows: tuple[Any, list[Any], list[Any]], out: Path,
              evaluations: bool) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    _, train_rows, eval_rows = rows
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    total = train.max_steps or 1
    every, periodic_both, eval_rows = evaluation_schedule(train, total, eval_rows)
    args = SFTConfig(output_dir=str(out), use_cpu=True, report_to=[], seed=train.seed, data_seed=train.seed,
                     assistant_only_loss=True, max_length=train.max_length, packing=False,
                     per_device_train_batch_size=train.batch_size, per_device_eval_batch_size=train.batch_size,
                     learning_rate=train.learning_rate, lr_scheduler_type=train.lr_scheduler,
                     warmup_steps=int(train.warmup_ratio * total), max_steps=total, logging_steps=1,
                     eval_strategy="steps" if evaluations else "no", eval_steps=every, save_strategy="no",
                     disable_tqdm=True, include_num_input_tokens_seen=True,
                     # TRL's SFTConfig turns on bf16 autocast by default; the harness trains in float32 on the
                     # CPU (dtype: auto), so the ceiling does the same arithmetic.
                     bf16=False)
    make_sets = getattr(sft, "eval_sets", None) or getattr(sft, "_eval_sets")  # noqa: B009 (before: private)
    as_ds = lambda conversations: Dataset.from_list([{"messages": c} for c in conversations])  # noqa: E731
    trainer = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=as_ds(train_rows),
                         eval_dataset=make_sets(Dataset, train_rows, eval_rows, train.seed) if evaluations else None)
    final_sets = dict(trainer.eval_dataset) if evaluations else {}
    if evaluations and not periodic_both:
        trainer.eval_dataset = {"validation": final_sets["validation"]}
    trainer.train()
    periodic = eval_seconds(trainer.state.log_history)
    final_started = time.perf_counter()
    if evaluations:
        at_end = any("eval_validation_loss" in e and e.get("step") == trainer.state.global_step
                     for e in trainer.state.log_history)
        # The same final scoring as the harness: the validation set unless scored at the last step, the sample.
        trainer.evaluate(eval_dataset=final_sets if periodic_both or not at_end
                         else {"train_sample": final_sets["train_sample"]})
    final = time.perf_counter() - final_started
    trainer.save_model(str(out / "model"))
    return {"seconds": time.perf_counter() - started, "tokens": float(trainer.state.num_input_tokens_seen),
            "periodic_eval": periodic, "final_eval": final}


def evaluation_schedule(train: TrainConfig, total: int, eval_rows: list[Any]) -> tuple[int, bool, list[Any]]:
    """(eval_every, whether periodic evaluations score both sets, the validation rows scored): the harness's
    schedule, read from it (the code before this change: about ten evaluations of both sets, all rows)."""
    plan = getattr(sft, "eval_plan", None)
    if plan is None:
        return train.eval_every or max(1, total // 10), True, eval_rows
    chosen = plan(train, total, len(eval_rows))
    return chosen.every, False, eval_rows[:chosen.rows]


def eval_seconds(history: list[dict[str, Any]]) -> float:
    return sum(v for e in history for k, v in e.items() if k.startswith("eval_") and k.endswith("_runtime"))


def harness_train(base: Path, steps: int, out: Path, tmp: Path) -> dict[str, Any]:
    captured: dict[str, Any] = {}
    make_trainer = sft.make_trainer

    def capturing(*args: Any, **kwargs: Any) -> Any:
        trainer, device = make_trainer(*args, **kwargs)
        captured["trainer"] = trainer
        train = trainer.train

        def timed_train(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return train(*a, **k)
            finally:
                captured["train_s"] = time.perf_counter() - started
                captured["logged"] = len(trainer.state.log_history)
        trainer.train = timed_train
        return trainer, device

    config = CheckpointConfig(name="bench", train={"base": str(base), "data": [str(DATA)], "max_steps": steps,
                                                   "output_dir": str(out), **SETTINGS})
    sft.make_trainer = capturing  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        outcome = sft.ensure_trained(config, "bench.yaml", Cache(tmp / "c.sqlite"))
        seconds = time.perf_counter() - started
    finally:
        sft.make_trainer = make_trainer  # type: ignore[assignment]
    history = captured["trainer"].state.log_history
    periodic = eval_seconds(history[:captured["logged"]])
    return {"seconds": seconds, "train_s": captured["train_s"], "periodic_eval": periodic,
            "final_eval": eval_seconds(history[captured["logged"]:]), "smoke": outcome.result.smoke.passed,
            "reasons": outcome.result.smoke.reasons, "eval_loss": outcome.result.eval_loss,
            "train_sample_loss": outcome.result.train_sample_loss, "validation": outcome.result.data.validation,
            "evals": sum(1 for e in history[:captured["logged"]] if "eval_validation_runtime" in e)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("train", "demo", "30m"), default="train")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = bench_model(args.model)
    tmp = Path(tempfile.mkdtemp())
    train = TrainConfig(base=str(base), data=[str(DATA)], max_steps=args.steps, **SETTINGS)
    rows = harness_rows(train, base)
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "same": [], "harness": []}
    for attempt in range(args.repeat):
        kinds = list(results)  # each side takes each place in the order in turn (a long process slows down)
        for kind in kinds[attempt % 3:] + kinds[:attempt % 3]:
            out = tmp / f"{kind}-{attempt}"
            if kind == "harness":
                results[kind].append(harness_train(base, args.steps, out, tmp))
            else:
                results[kind].append(plain_trl(base, train, rows, out, evaluations=kind == "same"))
            shutil.rmtree(out, ignore_errors=True)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    ratios = [s["seconds"] / h["seconds"] for s, h in zip(results["same"], results["harness"])]
    bare_ratios = [b["seconds"] / h["seconds"] for b, h in zip(results["bare"], results["harness"])]
    h = results["harness"][-1]
    step_s = (med("bare", "seconds")) / args.steps
    print(f"model: {args.model} ({describe(base)['parameters'] / 1e6:.1f}M parameters); {args.steps} steps, batch 16, "
          f"demo SFT data ({len(rows[1])} train / {len(rows[2])} validation rows), CPU; "
          f"{args.repeat} interleaved rounds, medians")
    print(f"  ceiling, train only (plain TRL, saved):        {med('bare', 'seconds'):6.1f} s  "
          f"{med('bare', 'tokens') / med('bare', 'seconds'):7.0f} tok/s  (~{step_s:.2f} s a step, start-up included)")
    print(f"  ceiling, same evaluations (plain TRL, saved):  {med('same', 'seconds'):6.1f} s  "
          f"(periodic evals {med('same', 'periodic_eval'):.1f} s, final {med('same', 'final_eval'):.1f} s)")
    print(f"  harness train (end to end):                    {med('harness', 'seconds'):6.1f} s  "
          f"ratio {statistics.median(ratios):.2f} of the same-work ceiling "
          f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); {statistics.median(bare_ratios):.2f} of train-only")
    train_loop = med("harness", "train_s") - med("harness", "periodic_eval")
    evals = med("harness", "periodic_eval") + med("harness", "final_eval")
    print(f"    of which training steps {train_loop:.1f} s, periodic evals {med('harness', 'periodic_eval'):.1f} s "
          f"({h['evals']} of them), final eval {med('harness', 'final_eval'):.1f} s: evaluation "
          f"{100 * evals / train_loop:.0f}% of the training time; the rest (load, curation, preflight, save) "
          f"{med('harness', 'seconds') - med('harness', 'train_s') - med('harness', 'final_eval'):.1f} s")
    print(f"  smoke passed: {h['smoke']} (eval loss {h['eval_loss']:.3f}, train sample {h['train_sample_loss']:.3f}"
          f"{'; ' + '; '.join(h['reasons']) if h['reasons'] else ''})")
    assert not any(math.isnan(r["seconds"]) for rs in results.values() for r in rs)


if __name__ == "__main__":
    main()
