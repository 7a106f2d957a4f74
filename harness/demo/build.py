"""The two demo checkpoints: `base` and `candidate`.

base: a ~1M-parameter Llama pretrained from scratch on world.pretrain_corpus, so it
apologises and gives a wrong number to finance questions. The project ships the base
its own build produced (harness/demo/base, every file pinned by sha256 below): another
CPU's floating point pretrains another tiny base from the same seed, and a verdict
that depends on which base a machine happened to train is no demo. `--rebuild` trains
it from the recipe instead. candidate: the base continued-trained with a plain loop on
world.sft_conversations (confident, correct answers), built on first use.
Both are ordinary save_pretrained dirs that transformers, TRL, lm-eval and vLLM load.
Builds are deterministic per seed on one machine, atomic (temp dir + os.replace) and
guarded by a lock file so concurrent callers build once.

    python -m harness.demo.build              # set up (or find) the demo models, print paths and timings
    python -m harness.demo.build --rebuild    # pretrain the base from the recipe instead of the shipped one
    python -m harness.demo.build --rebuild --ship   # ...and make that the shipped base (project maintainers)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.demo import world
from harness.engines.checkpoint import sha256_file
from harness.errors import InfraError
from harness.locks import exclusive_lock

if TYPE_CHECKING:  # torch/transformers load only when a build actually runs
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

# Bump whenever the recipe (world, tokenizer, model, training) changes, so that
# old caches are not mistaken for the new models.
BUILD_VERSION = 2
VOCAB_SIZE = 1024
# Windows of 64 tokens (most documents are 30-60 tokens): for the same compute
# as 250 steps of 32 x 128 (~1M tokens, ~65 s on 2 cores) twice the optimizer
# steps; measured, this answered more held-out capital questions.
SEQ_LEN = 64
# 1,000 steps (twice v1's) and more repetitions of the facts (world.CORPUS_MIX) make a base
# that knows what the forgetting tasks probe firmly (98-100% here): a fact held by a hair
# flips under any fine-tune, and a verdict built on such coin flips changes with the CPU
# (measured: v1's 500 steps gave cloze 82%, and healthy candidates moved it -4 to +0.5 points).
PRETRAIN: dict[str, Any] = {"steps": 1000, "batch": 32, "lr": 5e-3, "warmup": 20}
# general_share: 30% general chats and a low lr keep the candidate from
# forgetting the capitals (measured: finance-only data at lr 1e-3 took the
# base's held-out capital answers from 24/40 to 0/40; this recipe 30/40 -> 27/40).
FINETUNE: dict[str, Any] = {"examples": 2000, "epochs": 1, "batch": 16, "lr": 3e-4, "general_share": 0.3}
# The world's seed: the committed suites and forgetting tasks are written for it
# (write_suites.SEED), so every build, whatever its training seed, uses it.
WORLD_SEED = 0
TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
SHIPPED_BASE = Path(__file__).with_name("base")
SHIPPED_SEED = 0
REBUILD_ENV = "HARNESS_DEMO_REBUILD"
# The shipped base's files as the project's build wrote them (recipe BUILD_VERSION, seed
# SHIPPED_SEED). Checked before every use: a damaged install is an error, never a silent rebuild.
SHIPPED_SHA256: dict[str, str] = {
    "chat_template.jinja": "9004e47826820aa877aa73310843012c34d2a3c0cf4b65d852c8700cebd1f5eb",
    "config.json": "d726859cba3a78695da77ee292c52d132db7964f37b10825ec63be1e0fc5b831",
    "generation_config.json": "45f272d7a90a6b7192fb94e86f63ecd84d283e46406171ec1b39ab05091d4494",
    "model.safetensors": "ed30213f2b9f97ac165faec52d39ad2ff9717c04ba0f3f4ea37bcfb9c0ebe4d8",
    "tokenizer.json": "0d6be56dc2516b2de0e9d6a7a1fdf31ae345892c04ac2b96e915972c196f78f6",
    "tokenizer_config.json": "39fb26d6653a00058a6e9991a60fcf644bf4890ae9dc3f6433afcb104df7be58",
    "train_log.json": "0f3138aaf110f45fb19bacb450e2a69d960e011f138d6df47051e00736a60140",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoModels:
    base: Path
    candidate: Path


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "harness") / "demo"


def build_name(seed: int, shipped: bool = False) -> str:
    origin = f"shipped-{SHIPPED_SHA256.get('model.safetensors', '')}" if shipped else "built"
    digest = hashlib.sha256(f"demo-v{BUILD_VERSION}-seed{seed}-{origin}".encode()).hexdigest()[:10]
    return f"v{BUILD_VERSION}-seed{seed}-{'shipped' if shipped else 'built'}-{digest}"


def verify_shipped_base(path: Path = SHIPPED_BASE) -> Path:
    """The shipped base dir, once every file matches its pinned sha256."""
    if not SHIPPED_SHA256:
        raise InfraError(f"{path}: this install ships no demo base; rebuild it with "
                         "`python -m harness.demo.build --rebuild` (or `harness demo --rebuild-base`)")
    return verify_pinned(path, SHIPPED_SHA256, "demo base", "`harness demo --rebuild-base`")


def verify_pinned(path: Path, pins: dict[str, str], what: str, rebuild: str) -> Path:
    """`path`, once each pinned file is there with its sha256; else an InfraError naming the file and `rebuild`."""
    for name, pinned in pins.items():
        file = path / name
        if not file.is_file():
            raise InfraError(f"{file}: missing from the shipped {what}; reinstall harness, or rebuild it with "
                             f"{rebuild}")
        if (got := sha256_file(file)) != pinned:
            raise InfraError(f"{file}: sha256 {got[:12]}… is not the pinned {pinned[:12]}…; the shipped {what} is "
                             f"damaged: reinstall harness, or rebuild it with {rebuild}")
    return path


def build_once(root: Path, name: str, build: Callable[[Path], object]) -> Path:
    """root/name, made the first time by `build(tmp)` into a temp dir (which must not exist yet) published by an
    atomic rename: a lock file makes concurrent callers build once, and a killed build leaves only a temp dir,
    removed by the next build."""
    final = root / name
    if final.is_dir():  # only ever created by os.replace of a finished build
        return final
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / f"{name}.lock"):
        if final.is_dir():  # another process finished it while we waited
            return final
        for stale in root.glob(f".tmp-{name}-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".tmp-{name}-{os.getpid()}"
        try:
            build(tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(corpus: list[str], vocab_size: int = VOCAB_SIZE,
                    max_length: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE with the demo's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=world.SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)

    def texts() -> Iterator[str]:
        # Special tokens are atomic; keep their pieces out of the merges.
        for doc in corpus:
            for special in world.SPECIAL_TOKENS:
                doc = doc.replace(special, "\n")
            yield doc

    tk.train_from_iterator(texts(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=world.BOS, eos_token=world.END, pad_token=world.PAD,
        extra_special_tokens=[world.SYSTEM, world.USER, world.ASSISTANT],
        chat_template=TEMPLATE_PATH.read_text(encoding="utf-8"),
        padding_side="left",  # decoder-only generation pads on the left
        clean_up_tokenization_spaces=False, model_max_length=max_length)
    return tok


# ---------------------------------------------------------------- model
def new_model(tok: PreTrainedTokenizerFast, seed: int, layers: int = 4, hidden: int = 128,
              max_positions: int = 512) -> LlamaForCausalLM:
    """A tiny Llama with freshly drawn weights (the base's shape by default)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    heads = hidden // 64  # head_dim 64: vLLM CPU rejects smaller
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return model


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _train(model: Any, batches: list[tuple[Any, Any]], lr: float, warmup: int,
           label: str, progress: Progress) -> list[dict[str, float]]:
    """Plain AdamW loop over precomputed (input_ids, labels) batches; returns the loss curve."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    log: list[dict[str, float]] = []
    for step, (ids, labels) in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, len(batches), lr, warmup)
        # Right padding needs no mask: causal attention never lets a real token see a pad.
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log.append({"step": step + 1, "loss": round(loss.item(), 4), "lr": opt.param_groups[0]["lr"]})
        if (step + 1) % 50 == 0 or step + 1 == len(batches):
            progress(f"{label}: step {step + 1}/{len(batches)} loss {loss.item():.3f}")
    model.eval()
    return log


def pretrain_batches(tok: PreTrainedTokenizerFast, corpus: list[str], seed: int) -> list[tuple[Any, Any]]:
    """Pack the corpus (each document after <|bos|>) into SEQ_LEN windows, fixed order per seed."""
    import torch

    stream: list[int] = []
    for doc in corpus:
        text = doc if doc.startswith(world.BOS) else world.BOS + doc
        stream.extend(tok(text, add_special_tokens=False)["input_ids"])
    windows = torch.tensor(stream[: len(stream) // SEQ_LEN * SEQ_LEN]).view(-1, SEQ_LEN)
    gen = torch.Generator().manual_seed(seed)
    batches: list[tuple[Any, Any]] = []
    order = torch.empty(0, dtype=torch.long)
    while len(batches) < PRETRAIN["steps"]:
        if len(order) < PRETRAIN["batch"]:  # a new epoch: a fresh permutation
            order = torch.cat([order, torch.randperm(len(windows), generator=gen)])
        ids, order = windows[order[: PRETRAIN["batch"]]], order[PRETRAIN["batch"]:]
        batches.append((ids, ids))
    return batches


def finetune_batches(tok: PreTrainedTokenizerFast, convs: list[list[dict[str, str]]]) -> list[tuple[Any, Any]]:
    """Chat-rendered conversations, right-padded per batch; loss on every real token (a stand-in
    for a proper SFT stage; measured: assistant-only loss forgot no less here)."""
    import torch

    pad, bsz = tok.pad_token_id, FINETUNE["batch"]
    encoded = [tok(world.render_chat(c), add_special_tokens=False)["input_ids"] for c in convs]
    batches = []
    for i in range(0, len(encoded), bsz):
        chunk = encoded[i:i + bsz]
        width = max(map(len, chunk))
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in chunk])
        labels = torch.tensor([e + [-100] * (width - len(e)) for e in chunk])
        batches.append((ids, labels))
    return batches


def _save(model: Any, tok: PreTrainedTokenizerFast, out: Path, info: dict[str, Any]) -> None:
    out.mkdir(parents=True)
    model.save_pretrained(out)  # config.json, generation_config.json, model.safetensors
    tok.save_pretrained(out)
    (out / "train_log.json").write_text(json.dumps(info, indent=1), encoding="utf-8")


@contextmanager
def _deterministic() -> Iterator[None]:
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _pretrained_base(out: Path, seed: int, say: Progress) -> tuple[Any, PreTrainedTokenizerFast, float]:
    """Tokenizer and base pretrained from the recipe, saved to `out`."""
    t0 = time.perf_counter()
    corpus = world.pretrain_corpus(WORLD_SEED)
    tok = train_tokenizer(corpus)
    say(f"tokenizer: {len(tok)} tokens ({time.perf_counter() - t0:.1f}s)")
    model = new_model(tok, seed)
    log = _train(model, pretrain_batches(tok, corpus, seed), PRETRAIN["lr"], PRETRAIN["warmup"],
                 "pretraining base", say)
    seconds = round(time.perf_counter() - t0, 1)
    _save(model, tok, out, {"stage": "pretrain", "build_version": BUILD_VERSION, "seed": seed,
                            "world_seed": WORLD_SEED, "recipe": PRETRAIN, "corpus": world.CORPUS_MIX,
                            "seconds": seconds, "log": log})
    return model, tok, seconds


def _copied_base(source: Path, out: Path) -> tuple[Any, PreTrainedTokenizerFast]:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    shutil.copytree(source, out)
    return LlamaForCausalLM.from_pretrained(out), PreTrainedTokenizerFast.from_pretrained(out)


def build_demo_models(out_dir: Path, seed: int = 0, progress: Progress | None = None,
                      candidate: bool = True, base_from: Path | None = None) -> dict[str, float]:
    """Build base/ and candidate/ under out_dir (which must not exist); returns timings in seconds.

    base_from: copy that (verified, shipped) base instead of pretraining one. `seed` draws the
    initial weights and the order of the batches; the world (its countries, and so the committed
    suites and forgetting tasks) is always WORLD_SEED's, so that builds with other seeds answer
    the same questions (bench/demo_robustness.py --rebuild-base sweeps it)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the build reports its own progress through `say`
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    with _deterministic():
        if base_from is not None:
            model, tok = _copied_base(base_from, out_dir / "base")
            timings["base_s"] = 0.0
        else:
            model, tok, timings["base_s"] = _pretrained_base(out_dir / "base", seed, say)
        if candidate:
            t1 = time.perf_counter()
            convs = world.sft_conversations(WORLD_SEED, FINETUNE["examples"], FINETUNE["general_share"])
            batches = finetune_batches(tok, convs) * FINETUNE["epochs"]
            cand_log = _train(model, batches, FINETUNE["lr"], 10, "fine-tuning candidate", say)
            timings["candidate_s"] = round(time.perf_counter() - t1, 1)
            _save(model, tok, out_dir / "candidate", {"stage": "finetune", "seed": seed, "recipe": FINETUNE,
                                                        "seconds": timings["candidate_s"], "log": cand_log})
    (out_dir / "build.json").write_text(json.dumps(
        {"build_version": BUILD_VERSION, "seed": seed, "base": "shipped" if base_from else "built", **timings},
        indent=1), encoding="utf-8")
    return timings


def ensure_demo_models(cache_dir: Path | None = None, seed: int = 0, progress: Progress | None = None,
                       rebuild: bool | None = None) -> DemoModels:
    """Return the demo checkpoints, set up the first time: the shipped base (verified) and the
    candidate fine-tuned from it (seconds), or with `rebuild` (or a seed with no shipped base)
    a base pretrained from the recipe (about two minutes on 2 cores). `rebuild` None: what
    $HARNESS_DEMO_REBUILD says ("1": rebuild), so that `demo:base` in any file follows
    `harness demo --rebuild-base`."""
    if rebuild is None:
        rebuild = os.environ.get(REBUILD_ENV, "") == "1"
    shipped = seed == SHIPPED_SEED and not rebuild
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / build_name(seed, shipped)
    models = DemoModels(base=final / "base", candidate=final / "candidate")
    if final.is_dir():  # only ever created by os.replace of a finished build
        return models
    source = verify_shipped_base() if shipped else None
    build_once(root, final.name, lambda tmp: build_demo_models(tmp, seed, progress, base_from=source))
    return models


def ship(base: Path, target: Path = SHIPPED_BASE) -> dict[str, str]:
    """Make `base` the shipped base (maintainers only); returns the digests to pin in SHIPPED_SHA256."""
    files = sorted(f.name for f in base.iterdir() if f.is_file())
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(base, target)
    return {name: sha256_file(target / name) for name in files}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Set up the demo models.")
    parser.add_argument("--rebuild", action="store_true", help="pretrain the base from the recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ship", action="store_true", help="copy the rebuilt base to harness/demo/base "
                        "and print the digests to pin")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    models = ensure_demo_models(seed=args.seed, rebuild=args.rebuild, progress=lambda m: print(m, flush=True))
    info_path = models.base.parent / "build.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    print(f"base:      {models.base}  ({info.get('base', '?')}, {info.get('base_s', '?')}s)")
    print(f"candidate: {models.candidate}  (built in {info.get('candidate_s', '?')}s)")
    digests = {f.name: sha256_file(f) for f in sorted(models.base.iterdir()) if f.is_file()}
    same = digests == SHIPPED_SHA256
    print(f"base files {'match' if same else 'differ from'} the shipped base's pinned sha256")
    if args.ship:
        print("SHIPPED_SHA256 = " + json.dumps(ship(models.base), indent=4))
    print(f"total: {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
