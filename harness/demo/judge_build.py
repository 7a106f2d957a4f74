"""The demo judge: a tiny Llama trained to be the project's own pairwise-reference judge on the
demo world (judge_data.py), so that the LLM judge kind runs with no endpoint and no hub.

It reads the prompt the judge stage renders (judges/pairwise-reference.yaml: the system message,
the question, the reference, both answers between random delimiters) and replies with the strict
JSON verdict. Like the demo base it is an ordinary save_pretrained dir with the demo chat template,
so vLLM's server and the transformers engine render the judge's messages the same way; its
positions reach MAX_POSITIONS because the prompt is the definition's (about 380 tokens, 520 with
a padded canary) and the stage asks for up to 256 new tokens.

Trained from scratch (a tokenizer fitted to the world and the judge prompts, then a plain AdamW
loop, deterministic per seed on one machine). Every prompt opens with the same ~220 tokens (the
system message and "[Question]"): each step computes that prefix once and lets the whole batch
attend to it, an exact rewrite of the usual loss (prompt tokens carry no loss) at half the cost.

Variants: "balanced" learns every pair in both orders; "a_better" (a deliberately position-biased
judge, for the test that the swap-consistency gate catches one) only in the order where A is the
better answer. Both are shipped (harness/demo/judges/VARIANT, every file pinned by sha256 below), as
the demo base is: training one takes about 14 minutes on two cores, more than the whole cold demo, and
another CPU's floating point trains another judge. `--rebuild` trains one from the recipe instead, cached
per variant and seed under $HARNESS_CACHE_DIR/demo, built once behind a lock file and published by an
atomic rename, like the demo models (build.py).

    python -m harness.demo.judge_build [--variant a_better] [--audit]     # the shipped judge (verified)
    python -m harness.demo.judge_build --rebuild [--seed N] [--ship]      # trained from the recipe
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.demo import judge_data, world
from harness.demo.build import (
    WORLD_SEED,
    Progress,
    _deterministic,
    _lr_at,
    _save,
    build_once,
    default_cache_dir,
    new_model,
    ship,
    train_tokenizer,
)
from harness.demo.judge_weights import (
    SHIPPED_JUDGE_SEED,
    SHIPPED_JUDGE_SHA256,
    SHIPPED_JUDGES,
    VARIANTS,
    Variant,
    verify_shipped_judge,
)
from harness.engines.checkpoint import sha256_file
from harness.stages.judge.prompt import LoadedDefinition, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# Bump whenever the recipe (data, tokenizer, model, training) changes, so old caches are not reused.
JUDGE_VERSION = 1
MAX_POSITIONS = 2048
# pairs: distinct training pairs (x2 examples when balanced). tokenizer_examples: rendered judge
# calls the tokenizer sees beside the world's corpus, so the definition's words are single tokens.
JUDGE: dict[str, Any] = {"pairs": 4000, "steps": 900, "batch": 32, "lr": 3e-3, "warmup": 30,
                         "layers": 4, "hidden": 128, "vocab": 1024, "tokenizer_examples": 1000,
                         "sort_window": 8, "prompt_loss": 0.5}
"""The recipe; sort_window: batches drawn together and sorted by length (less padding per batch)."""


def judge_name(seed: int = 0, variant: Variant = "balanced") -> str:
    recipe = json.dumps({"version": JUDGE_VERSION, "seed": seed, "variant": variant, **JUDGE}, sort_keys=True)
    return f"judge-v{JUDGE_VERSION}-{variant}-seed{seed}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


# ---------------------------------------------------------------- data -> token batches
def _prefix(loaded: LoadedDefinition) -> str:
    """What every judge prompt starts with: the system message and the user turn up to the question."""
    system = render(loaded, "", None, {"answer_a": "", "answer_b": ""}, "0" * 12)[0][1]
    user_head = loaded.definition.user.split("$question", 1)[0]
    return world.render_chat([{"role": "system", "content": system}]) + world.USER + user_head


def encode(tok: PreTrainedTokenizerFast, examples: list[judge_data.JudgeExample],
           prefix: str) -> tuple[list[int], list[tuple[list[int], int]]]:
    """(prefix ids, [(ids after the prefix, where the reply starts in them)])."""
    prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
    assistant = tok.convert_tokens_to_ids(world.ASSISTANT)
    texts = [world.render_chat(judge_data.chat(e)).rstrip("\n") for e in examples]
    out = []
    for ids in tok(texts, add_special_tokens=False)["input_ids"]:
        if ids[:len(prefix_ids)] != prefix_ids:
            raise RuntimeError("a judge prompt does not start with the shared prefix; is the definition's "
                               "system message still free of placeholders?")
        rest = ids[len(prefix_ids):]
        out.append((rest, len(rest) - rest[::-1].index(assistant)))  # the first token after <|assistant|>
    return prefix_ids, out


PAD, PROMPT, REPLY = 0, 1, 2
"""What each position of a batch holds (the loss weighs the prompt's tokens by JUDGE["prompt_loss"])."""


def batches(encoded: list[tuple[list[int], int]], pad: int, seed: int) -> list[tuple[Any, Any]]:
    """JUDGE["steps"] right-padded batches (ids, what each position is: PAD, PROMPT or REPLY): a fresh
    permutation per epoch, then each window of sort_window batches sorted by length (a padded canary
    is 130 tokens longer than most prompts)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    bsz, window = JUDGE["batch"], JUDGE["batch"] * JUDGE["sort_window"]
    order: list[int] = []
    out: list[tuple[Any, Any]] = []
    while len(out) < JUDGE["steps"]:
        while len(order) < window:
            order += torch.randperm(len(encoded), generator=gen).tolist()
        chunk, order = sorted(order[:window], key=lambda i: len(encoded[i][0])), order[window:]
        group = []
        for start in range(0, window, bsz):
            rows = [encoded[i] for i in chunk[start:start + bsz]]
            width = max(len(ids) for ids, _ in rows)
            group.append((torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
                          torch.tensor([[PROMPT] * r + [REPLY] * (len(ids) - r) + [PAD] * (width - len(ids))
                                        for ids, r in rows])))
        for k in torch.randperm(len(group), generator=gen).tolist():
            out.append(group[k])
    return out[:JUDGE["steps"]]


# ---------------------------------------------------------------- training
def _train(model: Any, prefix_ids: list[int], steps: list[tuple[Any, Any]], say: Progress) -> list[dict[str, float]]:
    """AdamW with warmup and cosine decay; each step runs the shared prefix once (batch 1, with its
    gradient) and the batch's rest on top of the prefix's keys and values."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=JUDGE["lr"], betas=(0.9, 0.95), weight_decay=0.01)
    prefix = torch.tensor([prefix_ids])
    model.train()
    log: list[dict[str, float]] = []
    for step, (ids, kinds_of) in enumerate(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, len(steps), JUDGE["lr"], JUDGE["warmup"])
        cache = model(input_ids=prefix, use_cache=True).past_key_values
        for layer in cache.layers:  # the batch shares the prefix: a view, gradients summed over rows
            layer.keys = layer.keys.expand(len(ids), -1, -1, -1)
            layer.values = layer.values.expand(len(ids), -1, -1, -1)
        # Right padding needs no mask: causal attention never lets a real token see a pad.
        hidden = model.model(input_ids=ids, past_key_values=cache, use_cache=False).last_hidden_state[:, :-1]
        targets, kinds = ids[:, 1:], kinds_of[:, 1:]
        reply = kinds == REPLY
        loss = reply_loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[reply]), targets[reply])
        if JUDGE["prompt_loss"]:
            # The prompt's own tokens as an auxiliary language-modelling loss: its delimiter tag is one random
            # string written four times, so predicting it teaches copying from context, which the reply needs
            # (amounts, capitals) and which the reply's loss alone did not teach in the budget.
            prompt = kinds == PROMPT
            loss = loss + JUDGE["prompt_loss"] * torch.nn.functional.cross_entropy(
                model.lm_head(hidden[prompt]), targets[prompt])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log.append({"step": step + 1, "loss": round(reply_loss.item(), 4), "total_loss": round(loss.item(), 4),
                    "lr": opt.param_groups[0]["lr"]})
        if (step + 1) % 25 == 0 or step + 1 == len(steps):
            say(f"training judge: step {step + 1}/{len(steps)} reply loss {reply_loss.item():.3f} "
                f"(with the prompt's {loss.item():.3f})")
    model.eval()
    return log


def training_examples(seed: int, variant: Variant) -> list[judge_data.JudgeExample]:
    pairs = judge_data.world_pairs(JUDGE["pairs"], seed, "train")
    return judge_data.examples(pairs, seed, "both" if variant == "balanced" else "a_better")


def build_judge(out: Path, seed: int = 0, variant: Variant = "balanced",
                progress: Progress | None = None) -> dict[str, float]:
    """Train the judge into `out` (which must not exist); returns timings in seconds."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    loaded = judge_data.definition()
    examples = training_examples(seed, variant)
    texts = [world.render_chat(judge_data.chat(e)) for e in examples[:JUDGE["tokenizer_examples"]]]
    with _deterministic():
        tok = train_tokenizer(world.pretrain_corpus(WORLD_SEED) + texts, JUDGE["vocab"], MAX_POSITIONS)
        prefix_ids, encoded = encode(tok, examples, _prefix(loaded))
        steps = batches(encoded, tok.pad_token_id, seed)
        data_s = round(time.perf_counter() - t0, 1)
        say(f"judge data: {len(examples)} calls, prefix {len(prefix_ids)} tokens, "
            f"mean prompt {len(prefix_ids) + sum(len(i) for i, _ in encoded) / len(encoded):.0f} tokens ({data_s}s)")
        model = new_model(tok, seed, JUDGE["layers"], JUDGE["hidden"], MAX_POSITIONS)
        t1 = time.perf_counter()
        log = _train(model, prefix_ids, steps, say)
        train_s = round(time.perf_counter() - t1, 1)
    seconds = round(time.perf_counter() - t0, 1)
    _save(model, tok, out, {"stage": "judge", "judge_version": JUDGE_VERSION, "variant": variant, "seed": seed,
                            "definition": judge_data.DEFINITION, "definition_sha256": loaded.sha256,
                            "recipe": JUDGE, "examples": len(examples), "seconds": seconds, "log": log})
    return {"data_s": data_s, "train_s": train_s, "seconds": seconds}


def ensure_demo_judge(cache_dir: Path | None = None, seed: int = 0, variant: Variant = "balanced",
                      progress: Progress | None = None, rebuild: bool = False) -> Path:
    """The demo judge's checkpoint dir: the shipped one (verified against its pinned digests), or with
    `rebuild` (or a seed with no shipped judge) one trained from the recipe the first time (about 14
    minutes on two cores) and cached."""
    if seed == SHIPPED_JUDGE_SEED and not rebuild:
        return verify_shipped_judge(variant)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return build_once(root, judge_name(seed, variant), lambda tmp: build_judge(tmp, seed, variant, progress))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Set up (or find) the demo judge.")
    parser.add_argument("--variant", choices=VARIANTS, default="balanced")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="train it from the recipe instead of using the "
                        "shipped one")
    parser.add_argument("--ship", action="store_true", help="copy the rebuilt judge to harness/demo/judges/VARIANT "
                        "and print the digests to pin")
    parser.add_argument("--audit", action="store_true", help="audit it on held-apart pairs afterwards")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = ensure_demo_judge(seed=args.seed, variant=args.variant, rebuild=args.rebuild,
                             progress=lambda m: print(m, flush=True))
    info = json.loads((path / "train_log.json").read_text())
    print(f"judge: {path}  (trained in {info['seconds']}s)")
    digests = {f.name: sha256_file(f) for f in sorted(path.iterdir()) if f.is_file()}
    same = digests == SHIPPED_JUDGE_SHA256[args.variant]
    print(f"judge files {'match' if same else 'differ from'} the shipped judge's pinned sha256")
    if args.ship:
        print("SHIPPED_JUDGE_SHA256[" + repr(args.variant) + "] = "
              + json.dumps(ship(path, SHIPPED_JUDGES / args.variant), indent=4))
    if args.audit:
        from harness.demo.judge_audit import audit, format_audit

        print(format_audit(audit(path)))
    print(f"total: {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
