"""Engines: vllm, transformers and OpenAI-compatible endpoints behind one protocol (base.py), the
checkpoints they load (checkpoint.py) and vLLM's server (vllm_server.py).

Backends are imported lazily: `import harness` works without vllm or torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.engines.base import Backend, ChatRequest, Completion

if TYPE_CHECKING:  # checkpoint.py imports engines.base; avoid the cycle at run time
    from harness.engines.checkpoint import ResolvedCheckpoint

__all__ = ["Backend", "ChatRequest", "Completion", "choose_backend", "open_backend"]


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def choose_backend(requested: str) -> str:
    """`auto`: vLLM on a GPU (an order of magnitude faster there), else transformers
    (on the CPU, batched transformers beats vLLM's CPU build on small models)."""
    if requested != "auto":
        return requested
    import torch

    return "vllm" if torch.cuda.is_available() and vllm_available() else "transformers"


def open_backend(checkpoint: ResolvedCheckpoint, adapters: Sequence[str] = ()) -> Backend:
    config = checkpoint.config
    kind = choose_backend(config.backend)
    if kind == "openai":
        from harness.engines.openai_backend import OpenAIBackend

        assert config.endpoint is not None
        return OpenAIBackend(config.endpoint, checkpoint.model_path, checkpoint.file)
    if kind == "vllm":
        from harness.engines.vllm_backend import VLLMBackend

        return VLLMBackend(checkpoint.model_path, checkpoint.tokenizer_path or checkpoint.model_path,
                           config.engine, adapters)
    from harness.engines.transformers_backend import TransformersBackend

    return TransformersBackend(checkpoint.model_path, checkpoint.tokenizer, config.engine, adapters)
