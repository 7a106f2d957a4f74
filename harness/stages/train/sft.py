"""Smoke-test SFT: produce a candidate checkpoint from a base with TRL and say
whether the run itself was healthy.

Flow: load data (three formats) -> curate -> split -> training template (the
tokenizer's own when it has {% generation %} markers, else TRL's patched copy of a
stock template it ships; template.py) -> TRL SFTTrainer (loss on assistant tokens
only, optionally LoRA) -> preflight on TRL's tokenized rows (assistant mask, stop
token) -> train -> smoke verdict -> save, with the stock template. The output
directory is named by a content hash of base + data + settings, so an unchanged
candidate is trained once and a changed one is retrained. Writes are atomic: the
run trains into a temp dir that is renamed into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config.loading import load_checkpoint
from harness.config.schema import CheckpointConfig
from harness.config.training import TrainConfig
from harness.engines.checkpoint import directory_fingerprint, local_model_dir, sha256_file, stop_token_ids
from harness.errors import ConfigError, MissingDependency, install_hint
from harness.locks import exclusive_lock
from harness.records.cache import Cache, content_key, default_cache_dir
from harness.records.run_results import TrainingResult
from harness.records.stage_records import TrainStepRecord
from harness.render.formatting import removed_summary
from harness.stages.train.curation import curate
from harness.stages.train.data import Conversation, load_conversations, split
from harness.stages.train.dpo import run_dpo
from harness.stages.train.evaluation import (
    VALIDATION,
    eval_plan,
    eval_sets,
    final_losses,
    periodic_eval_sets,
)
from harness.stages.train.preference_data import load_preferences
from harness.stages.train.runtime import (
    LOG_FILE,
    device_and_dtype,
    environment,
    lora_config,
    peak_memory_mib,
    quiet_progress,
    save_run,
    to_float,
    total_steps,
)
from harness.stages.train.runtime import callbacks as stop_callbacks
from harness.stages.train.smoke import smoke_verdict
from harness.stages.train.template import FILE, TOKENIZER, TrainingTemplate, confirm, training_template

RECIPE_VERSION = 2  # bump when the training recipe changes what a config produces
RESULT_FILE = "train.json"


@dataclass(frozen=True)
class TrainOutcome:
    checkpoint: CheckpointConfig
    """The same checkpoint with `model` (and `adapter` for LoRA) pointing at the trained weights."""
    output_dir: Path
    result: TrainingResult
    """Smoke verdict, curation counts, timings and the config hash (train.json)."""
    steps: list[TrainStepRecord]
    reused: bool


_UNHASHED = {"sft": {"output_dir", "data", "report_to", "method", "dpo"},  # (an SFT run keeps its earlier hash)
             "dpo": {"output_dir", "data", "report_to"}}
"""Settings that do not change what a run produces, or (method and dpo for SFT) did not exist before."""


def train_hash(train: TrainConfig, base_dir: Path, cache: Cache, chat_template: Path | None = None) -> str:
    parts: dict[str, Any] = {"recipe": RECIPE_VERSION, "base": directory_fingerprint(base_dir, cache),
                             "data": _data_digest(train),
                             "settings": train.model_dump(mode="json", exclude=_UNHASHED[train.method])}
    if chat_template is not None:  # (absent otherwise, so that earlier results keep their hash)
        parts["chat_template"] = sha256_file(chat_template)
    return content_key(parts)


def _data_digest(train: TrainConfig) -> Any:
    """SFT: each data file's bytes. DPO: the pairs it trains on (and the rows it drops), as read: a preference
    file's other fields (an exported pair's run id, judge, item) change nothing trained, so the same pairs
    exported by another run of the same judge reuse the trained result."""
    if train.method != "dpo":
        return [sha256_file(Path(p)) for p in train.data]
    loaded = load_preferences([Path(p) for p in train.data], train.max_bad_share)
    return content_key({"pairs": [pair.row() for pair in loaded.pairs],
                        "bad": [(b.line, b.reason) for b in loaded.bad_rows]})


def ensure_trained(config: CheckpointConfig, file: str, cache: Cache, force: bool = False) -> TrainOutcome:
    """Train unless an up-to-date result exists; return the checkpoint to evaluate."""
    train = config.train
    assert train is not None
    base_dir = local_model_dir(train.base, None, file, "train.base")
    template_file = Path(config.chat_template) if config.chat_template else None
    digest = train_hash(train, base_dir, cache, template_file)
    out = Path(train.output_dir) if train.output_dir else default_cache_dir() / "train" / f"{config.name}-{digest[:16]}"
    if out.exists() and not (out / RESULT_FILE).is_file() and any(out.iterdir()):
        # Never delete a directory this stage did not write (output_dir: . would be the user's folder).
        raise ConfigError(file, "train.output_dir", f"{out} exists and is not a training output; choose another")
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out.parent / f".{out.name}.lock"):  # concurrent runs train once
        reused = _up_to_date(out, digest) and not force
        # Holding the lock, every temp dir of this output is a killed run's leftover: remove them all.
        for stale in out.parent.glob(f".tmp-{out.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if not reused:
            tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
            try:
                run = run_dpo if train.method == "dpo" else run_training
                result = run(train, base_dir, tmp, file, template_file).model_copy(update={"train_hash": digest})
                (tmp / RESULT_FILE).write_text(result.model_dump_json(indent=1), encoding="utf-8")
                shutil.rmtree(out, ignore_errors=True)
                os.replace(tmp, out)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    result = TrainingResult.model_validate_json((out / RESULT_FILE).read_text(encoding="utf-8"))
    steps = [TrainStepRecord.model_validate_json(line)
             for line in (out / LOG_FILE).read_text(encoding="utf-8").splitlines() if line]
    if train.lora is not None:
        trained = config.model_copy(update={"model": str(base_dir), "adapter": str(out), "train": None})
    else:
        trained = config.model_copy(update={"model": str(out), "train": None})
    return TrainOutcome(trained, out, result, steps, reused)


def checkpoint_to_serve(file: Path) -> CheckpointConfig:
    """The checkpoint `harness serve FILE` serves: the file's, or for a `train:` block the checkpoint its
    training produces (training it if needed)."""
    config = load_checkpoint(file)
    if config.train is None:
        return config
    cache = Cache(default_cache_dir() / "cache.sqlite")
    try:
        return ensure_trained(config, str(file), cache).checkpoint
    finally:
        cache.close()


def _up_to_date(out: Path, digest: str) -> bool:
    """A whole train.json of this harness for the same inputs (anything else is trained again)."""
    try:
        result = TrainingResult.model_validate_json((out / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # pydantic's ValidationError included
        return False
    return result.train_hash == digest


def run_training(train: TrainConfig, base_dir: Path, out: Path, file: str,
                 chat_template: Path | None = None) -> TrainingResult:
    """chat_template: the checkpoint's template file, which replaces the base tokenizer's for training
    (the saved checkpoint keeps the base's own; the checkpoint's file goes on applying at generation)."""
    try:
        import torch
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise MissingDependency(exc.name or "trl", install_hint("train")) from None
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base_dir)
    base_template = tok.chat_template
    if chat_template is not None:
        tok.chat_template = chat_template.read_text(encoding="utf-8")
    template = check_template(tok, base_dir, file, chat_template)

    loaded = load_conversations([Path(p) for p in train.data],  # (the validator refused preference data for sft)
                                "auto" if train.format == "preference" else train.format, train.max_bad_share)
    count = _token_counter(tok)
    curated = curate(loaded.conversations, train.curation, count)
    # TRL would cut anything longer than max_length (losing the stop token): drop it instead,
    # measured on the text the model actually sees, and count it with the other long ones.
    fits = [c for c in curated.kept if count(_render(tok, template, c, file)) <= train.max_length]
    curated.counts["too_long"] += len(curated.kept) - len(fits)
    curated.kept = fits
    if len(curated.kept) < 2:
        raise ConfigError(file, "train.data", f"{len(curated.kept)} conversation(s) left after curation "
                          f"(removed: {removed_summary(curated.counts)}); need at least 2")
    train_rows, eval_rows = split(curated.kept, train.validation_share, train.seed)

    # transformers' TensorBoard callback reads its directory from the environment when the trainer is built;
    # the trainer's own output dir is scratch (removed below), so the logs go beside the checkpoint.
    with environment(TENSORBOARD_LOGGING_DIR=str(out / "tensorboard")):
        trainer, device = make_trainer(train, base_dir, tok, train_rows, eval_rows, out)
    confirm(template, trainer)  # TRL tokenized with the template chosen above: the preflight checks its mask
    final_sets = dict(trainer.eval_dataset) if eval_rows else {}
    if final_sets:  # TRL tokenized both sets above; during training only the validation set is scored
        trainer.eval_dataset = periodic_eval_sets(final_sets)
    preflight = {**_preflight(trainer.train_dataset, len(train_rows), tok, stop_token_ids(base_dir, tok), file),
                 **template.record()}

    crashed = None
    try:
        trainer.train()
    except torch.OutOfMemoryError as exc:
        crashed = f"out of memory: {str(exc)[:200]}"
    history = trainer.state.log_history
    steps = _step_records(history)
    eval_loss = train_loss = None
    if final_sets and crashed is None:
        eval_loss, train_loss = final_losses(trainer, final_sets)
    verdict = smoke_verdict([s.loss for s in steps], [s.grad_norm for s in steps if s.grad_norm is not None],
                            eval_loss, crashed, final_train_loss=train_loss)
    tok.chat_template = base_template  # the checkpoint keeps the base's template (TRL's copy never entered tok)
    save_run(trainer, tok, out, steps)
    seconds = time.perf_counter() - started
    tokens = float(trainer.state.num_input_tokens_seen or 0)
    return TrainingResult.model_validate({
        "smoke": {"passed": verdict.passed, "checks": [asdict(c) for c in verdict.checks], "reasons": verdict.reasons},
        "data": {"files": loaded.formats, "rows": len(loaded.conversations) + len(loaded.bad_rows),
                 "bad_rows": len(loaded.bad_rows), "bad_examples": [asdict(b) for b in loaded.bad_rows[:5]],
                 "curation": curated.counts, "flagged_refusals": curated.flagged_refusals,
                 "kept": len(curated.kept), "train": len(train_rows), "validation": len(eval_rows)},
        "preflight": preflight,
        "steps": len(steps), "eval_loss": eval_loss, "train_sample_loss": train_loss, "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "peak_memory_mib": peak_memory_mib(torch, device), "device": device, "lora": train.lora is not None,
    })


def make_trainer(train: TrainConfig, base_dir: Path, tok: Any, train_rows: list[Conversation],
                 eval_rows: list[Conversation], out: Path) -> tuple[Any, str]:
    """TRL's SFTTrainer, loss on assistant tokens only (the {% generation %} spans of the tokenizer's
    template, or of TRL's training copy of it, which include the end-of-turn token), optionally with
    a LoRA adapter."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    quiet_progress()
    device, dtype = device_and_dtype(train, torch)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    steps = total_steps(train, len(train_rows))
    plan = eval_plan(train, steps, len(eval_rows))
    args = SFTConfig(
        output_dir=str(out / "trainer"), use_cpu=device == "cpu", report_to=list(train.report_to), seed=train.seed,
        data_seed=train.seed, assistant_only_loss=True, max_length=train.max_length, packing=False,
        per_device_train_batch_size=train.batch_size, per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation, learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler, warmup_steps=int(train.warmup_ratio * steps),
        weight_decay=train.weight_decay, num_train_epochs=train.epochs, max_steps=train.max_steps or -1,
        logging_steps=1, eval_strategy="steps" if eval_rows else "no", eval_steps=plan.every,
        save_strategy="no", disable_tqdm=True, bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16,
        load_best_model_at_end=False, include_num_input_tokens_seen=True)
    callbacks = stop_callbacks(train.early_stopping_patience if eval_rows else None)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok, peft_config=lora_config(train),
                         train_dataset=Dataset.from_list([{"messages": c} for c in train_rows]),
                         eval_dataset=eval_sets(Dataset, train_rows, eval_rows[:plan.rows], train.seed)
                         if eval_rows else None,
                         callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # the run keeps its own records; no dicts on stdout
    return trainer, device


def check_template(tok: Any, base_dir: Path, file: str, chat_template: Path | None = None) -> TrainingTemplate:
    """The template TRL will train with (template.py); a ConfigError when it has none."""
    if chat_template is not None:
        return training_template(tok, str(chat_template), file, FILE)
    return training_template(tok, str(base_dir), file, TOKENIZER)


def _render(tok: Any, template: TrainingTemplate, conversation: Conversation, file: str) -> str:
    from jinja2 import TemplateError

    try:
        return str(tok.apply_chat_template(conversation, tokenize=False, chat_template=template.patched))
    except TemplateError as exc:  # e.g. Gemma's template raises on a system message
        raise ConfigError(file, "train.data", f"the chat template ({template.source}) refuses a conversation: "
                          f"{exc}; change the data (roles: {[m['role'] for m in conversation]})") from None


def _token_counter(tok: Any) -> Any:
    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])
    return count


def _preflight(dataset: Any, rows_in: int, tok: Any, stop: list[int], file: str) -> dict[str, Any]:
    """Check TRL's own processed rows (tokenized with the template it trains with): every example
    trains some assistant tokens, and a stop token (the ids generation stops on: the generation
    config's eos and the tokenizer's) is among them, else the model never learns to stop (TRL PR #5988)."""
    rows_out = len(dataset)
    if rows_out == 0:
        raise ConfigError(file, "train.data", "the assistant-token mask is all zeros for every example; "
                          "check the chat template's {% generation %} markers")
    if not stop:
        raise ConfigError(file, "train.base", "the base names no stop token (no eos_token in its tokenizer, no "
                          "eos_token_id in its generation_config.json), so generation could never stop")
    without_stop = 0
    trained_tokens = 0
    for row in dataset:
        labels = [t for t in row["labels"] if t != -100]
        trained_tokens += len(labels)
        without_stop += not set(stop) & set(labels)
    if without_stop == rows_out:
        names = ", ".join(repr(name) for name in tok.convert_ids_to_tokens(stop))
        raise ConfigError(file, "train.base", f"the stop token{'s' if len(stop) > 1 else ''} {names} "
                          f"{'are' if len(stop) > 1 else 'is'} outside the loss mask in every example, so the "
                          "model would never learn to stop; put the end-of-turn token inside {% generation %}")
    return {"rows": rows_out, "dropped_fully_masked": rows_in - rows_out, "rows_without_stop_token": without_stop,
            "trained_tokens": trained_tokens}


def _step_records(history: list[dict[str, Any]]) -> list[TrainStepRecord]:
    steps: dict[int, dict[str, Any]] = {}
    for entry in history:
        step = int(entry.get("step", 0))
        if "loss" in entry:
            steps.setdefault(step, {}).update(loss=float(entry["loss"]), grad_norm=to_float(entry.get("grad_norm")),
                                              learning_rate=float(entry.get("learning_rate", 0.0)),
                                              epoch=float(entry.get("epoch", 0.0)))
        if f"eval_{VALIDATION}_loss" in entry and step in steps:
            steps[step]["eval_loss"] = float(entry[f"eval_{VALIDATION}_loss"])
    return [TrainStepRecord(step=k, **v) for k, v in sorted(steps.items())]


