"""Smoke-test DPO: produce a candidate checkpoint from a base with TRL's DPOTrainer on preference pairs,
and say whether the run itself was healthy (smoke.dpo_smoke_verdict).

Flow: load pairs (preference_data.py) -> drop pairs whose prompt and answer do not fit max_length
(TRL would cut them, never silently here) -> DPOTrainer against a reference (the base, or
`dpo.reference`; with LoRA the base with the adapter off), optionally LoRA -> verdict from the logged
rewards -> save. sft.ensure_trained names the output by content hash and makes the writes atomic, as
for SFT; a DPO run shares that path.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.config.training import TrainConfig
from harness.engines.checkpoint import local_model_dir
from harness.errors import ConfigError, MissingDependency, install_hint
from harness.records.run_results import TrainingResult
from harness.records.stage_records import TrainStepRecord
from harness.stages.train.preference_data import PreferencePair, load_preferences
from harness.stages.train.runtime import (
    callbacks,
    device_and_dtype,
    environment,
    lora_config,
    peak_memory_mib,
    quiet_progress,
    save_run,
    to_float,
    total_steps,
)
from harness.stages.train.smoke import DpoStep, dpo_smoke_verdict

DPO_METRICS = {"reward_margin": "rewards/margins", "reward_accuracy": "rewards/accuracies",
               "chosen_reward": "rewards/chosen", "rejected_reward": "rewards/rejected",
               "chosen_logp": "logps/chosen", "rejected_logp": "logps/rejected"}
"""TrainStepRecord field -> the key TRL's DPOTrainer logs it under (mean over the step's batch)."""


def run_dpo(train: TrainConfig, base_dir: Path, out: Path, file: str,
            chat_template: Path | None = None) -> TrainingResult:
    try:
        import torch
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise MissingDependency(exc.name or "trl", install_hint("train")) from None
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base_dir)
    if chat_template is not None:
        tok.chat_template = chat_template.read_text(encoding="utf-8")
    if not tok.chat_template:
        raise ConfigError(file, "train.base", f"{base_dir} has no chat template; DPO renders each prompt and answer "
                          "with it (set chat_template: to a Jinja file)")
    loaded = load_preferences([Path(p) for p in train.data], train.max_bad_share)
    fits = [p for p in loaded.pairs if _longest(tok, p) <= train.max_length]
    if len(fits) < 2:
        raise ConfigError(file, "train.data", f"{len(fits)} preference pair(s) fit train.max_length "
                          f"({train.max_length} tokens; {len(loaded.pairs) - len(fits)} longer ones dropped); "
                          "need at least 2")
    reference = (local_model_dir(train.dpo.reference, None, file, "train.dpo.reference")
                 if train.dpo.reference is not None else None)
    with environment(TENSORBOARD_LOGGING_DIR=str(out / "tensorboard")):
        trainer, device = make_dpo_trainer(train, base_dir, reference, tok, fits, out)
    crashed = None
    try:
        trainer.train()
    except torch.OutOfMemoryError as exc:
        crashed = f"out of memory: {str(exc)[:200]}"
    steps = dpo_step_records(trainer.state.log_history)
    verdict = dpo_smoke_verdict([DpoStep(s.loss, s.reward_margin or 0.0, s.reward_accuracy or 0.0,
                                         s.chosen_reward or 0.0, s.rejected_reward or 0.0, s.chosen_logp or 0.0)
                                 for s in steps], train.dpo.beta, crashed)
    save_run(trainer, tok, out, steps)
    seconds = time.perf_counter() - started
    tokens = float(trainer.state.num_input_tokens_seen or 0)
    return TrainingResult.model_validate({
        "smoke": {"passed": verdict.passed, "checks": [asdict(c) for c in verdict.checks], "reasons": verdict.reasons},
        "data": {"files": loaded.formats, "rows": len(loaded.pairs) + len(loaded.bad_rows),
                 "bad_rows": len(loaded.bad_rows), "bad_examples": [asdict(b) for b in loaded.bad_rows[:5]],
                 "curation": {"too_long": len(loaded.pairs) - len(fits)}, "flagged_refusals": 0,
                 "kept": len(fits), "train": len(fits), "validation": 0},
        "preflight": {"method": "dpo", "beta": train.dpo.beta, "pairs": len(fits),
                      "reference": str(reference) if reference else "the base"},
        "steps": len(steps), "eval_loss": None, "train_sample_loss": None, "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1) if seconds and tokens else None,
        "peak_memory_mib": peak_memory_mib(torch, device), "device": device, "lora": train.lora is not None,
        "method": "dpo",
    })


def _longest(tok: Any, pair: PreferencePair) -> int:
    """Tokens of the prompt with its longer answer, as the chat template renders them."""
    return max(len(tok.apply_chat_template(pair.prompt + answer, tokenize=True)) for answer in (pair.chosen,
                                                                                                  pair.rejected))


def make_dpo_trainer(train: TrainConfig, base_dir: Path, reference: Path | None, tok: Any,
                     pairs: list[PreferencePair], out: Path) -> tuple[Any, str]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    quiet_progress()
    device, dtype = device_and_dtype(train, torch)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    ref_model = AutoModelForCausalLM.from_pretrained(reference, dtype=dtype) if reference is not None else None
    steps = total_steps(train, len(pairs))
    args = DPOConfig(
        output_dir=str(out / "trainer"), use_cpu=device == "cpu", report_to=list(train.report_to), seed=train.seed,
        data_seed=train.seed, beta=train.dpo.beta, max_length=train.max_length,
        per_device_train_batch_size=train.batch_size, gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate, lr_scheduler_type=train.lr_scheduler,
        warmup_steps=int(train.warmup_ratio * steps), weight_decay=train.weight_decay,
        num_train_epochs=train.epochs, max_steps=train.max_steps or -1, logging_steps=1, save_strategy="no",
        disable_tqdm=True, bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16,
        include_num_input_tokens_seen=True)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, processing_class=tok,
                         peft_config=lora_config(train), train_dataset=Dataset.from_list([p.row() for p in pairs]),
                         callbacks=callbacks(None))
    trainer.remove_callback(PrinterCallback)
    return trainer, device


def dpo_step_records(history: list[dict[str, Any]]) -> list[TrainStepRecord]:
    """One record per optimizer step: the loss and the DPO metrics TRL logged for it."""
    steps = []
    for entry in history:
        if "loss" not in entry or "rewards/margins" not in entry:
            continue
        steps.append(TrainStepRecord(
            step=int(entry.get("step", 0)), loss=float(entry["loss"]), grad_norm=to_float(entry.get("grad_norm")),
            learning_rate=float(entry.get("learning_rate", 0.0)), epoch=float(entry.get("epoch", 0.0)),
            **{name: to_float(entry.get(key)) for name, key in DPO_METRICS.items()}))
    return steps
