"""Synthetic Llamas for the benches: models large enough that compute, not per-call overhead,
decides the ratios.

Random weights (seeded) with the demo's tokenizer and chat template, saved as an ordinary
save_pretrained directory that transformers, TRL, lm-eval and vLLM all load. Nothing is
downloaded. Throughput does not depend on what the weights know; only greedy answers' lengths
do (a random model rarely emits the stop token, so every answer runs to max_tokens).

    python bench/models.py [30m|train|demo]   # build (or find) one, print its directory and size
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, int]] = {
    # ~30M parameters; head_dim 64 (vLLM's CPU attention rejects smaller heads).
    "30m": {"hidden_size": 512, "intermediate_size": 1792, "num_hidden_layers": 8, "num_attention_heads": 8},
    # The train bench's: one SFT step of batch 16 (demo data, ~100 tokens a row) takes about a second
    # on two cores, so a few dozen steps measure compute rather than start-up.
    "train": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
SEED = 0


def demo_base() -> Path:
    from harness.demo.build import SHIPPED_BASE, verify_shipped_base

    return verify_shipped_base(SHIPPED_BASE)


def models_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "harness") / "bench-models"


def parameters(shape: dict[str, int], vocab: int = 1024) -> int:
    h, i, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    return vocab * h + n * (4 * h * h + 3 * h * i + 2 * h) + h  # tied embeddings, no biases


def synthetic_llama(name: str, root: Path | None = None) -> Path:
    """The directory of the synthetic model `name` (a key of SHAPES), built on first use."""
    shape = SHAPES[name]
    digest = hashlib.sha256(json.dumps({"shape": shape, "seed": SEED, "v": 1}, sort_keys=True).encode()).hexdigest()
    out = (root or models_dir()) / f"{name}-{digest[:10]}"
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    source = demo_base()
    tok = AutoTokenizer.from_pretrained(source)
    config = LlamaConfig(vocab_size=len(tok), num_key_value_heads=shape["num_attention_heads"],
                         max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **shape)
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for file in TOKENIZER_FILES:
        if (source / file).is_file() and not (tmp / file).is_file():
            shutil.copy2(source / file, tmp / file)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def bench_model(name: str) -> Path:
    """`demo`: the shipped demo base; any other name: a synthetic Llama of SHAPES."""
    return demo_base() if name == "demo" else synthetic_llama(name)


def describe(path: Path) -> dict[str, Any]:
    config = json.loads((path / "config.json").read_text())
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    shape = {k: config[k] for k in keys}
    return {**shape, "parameters": parameters(shape, config["vocab_size"])}


if __name__ == "__main__":
    built = bench_model(sys.argv[1] if len(sys.argv) > 1 else "30m")
    print(built, describe(built))
