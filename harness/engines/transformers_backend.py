"""transformers backend: batched `generate` with left padding.

Prompts are sorted by length before batching so each batch pads little;
results are put back in request order. Token ids come in already rendered
(see checkpoint.render), so this engine and vLLM see identical prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from harness.config.engine import EngineConfig, SamplingConfig
from harness.engines.base import ChatRequest, Completion
from harness.engines.checkpoint import stop_token_ids
from harness.errors import InfraError, MissingDependency, install_hint


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_path: str, tokenizer: Any, engine: EngineConfig,
                 adapters: Sequence[str] = ()) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise MissingDependency("transformers", install_hint("hf")) from None
        self._torch = torch
        hf_logging.disable_progress_bar()  # the run has its own progress display
        cuda = torch.cuda.is_available()
        if engine.device == "cuda" and not cuda:
            raise InfraError("engine.device is 'cuda' but torch sees no CUDA device on this machine")
        self.device = "cuda" if engine.device == "cuda" or (engine.device == "auto" and cuda) else "cpu"
        if engine.dtype == "auto":
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        else:
            dtype = getattr(torch, engine.dtype)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype,
                                                     trust_remote_code=engine.trust_remote_code)
        self.adapters: dict[str, str] = {}
        if adapters:
            from peft import PeftModel

            for index, path in enumerate(adapters):
                adapter_name = f"adapter{index}"
                if index == 0:
                    model = PeftModel.from_pretrained(model, path, adapter_name=adapter_name)
                else:
                    model.load_adapter(path, adapter_name=adapter_name)
                self.adapters[path] = adapter_name
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = engine.batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = stop_token_ids(model_path, tokenizer)

    def generate(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
                 adapter: str | None = None) -> list[Completion]:
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_token_ids or ()))
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            for index, completion in zip(batch, self._batch([requests[i] for i in batch], sampling, adapter)):
                out[index] = completion
        return [c for c in out if c is not None]

    def _batch(self, requests: Sequence[ChatRequest], sampling: SamplingConfig,
               adapter: str | None) -> list[Completion]:
        torch = self._torch
        prompts = [list(r.prompt_token_ids or ()) for r in requests]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: answers start at the same column
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        context: Any = nullcontext()
        if self.adapters and adapter is None:
            context = self.model.disable_adapter()  # the base's answers from the same weights
        elif adapter is not None:
            self.model.set_adapter(self.adapters[adapter])
        greedy = sampling.temperature == 0
        kwargs: dict[str, Any] = {"do_sample": not greedy, "max_new_tokens": sampling.max_tokens,
                                  "pad_token_id": self.pad_id, "eos_token_id": self.stop_ids}
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
            # One generator per batch: per-request seeds are not possible inside one
            # batched call, so sampled answers depend on the batch (documented).
            torch.manual_seed(requests[0].seed)
        started = time.perf_counter()
        with torch.inference_mode(), context:
            output = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                         **kwargs)
        latency = time.perf_counter() - started
        completions = []
        for row, prompt in enumerate(prompts):
            new = output[row, width:].tolist()
            stop_at = next((i for i, t in enumerate(new) if t in self.stop_ids), None)
            tokens = new if stop_at is None else new[:stop_at]
            completions.append(Completion(
                text=self._decode(tokens), prompt_tokens=len(prompt),
                completion_tokens=len(tokens) + (stop_at is not None),
                finish_reason="stop" if stop_at is not None else "length", latency_s=latency))
        return completions

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
