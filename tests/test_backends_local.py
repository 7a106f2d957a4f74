"""transformers and vLLM (CPU build) generate from the tiny demo model and
agree on greedy text for the same token ids. One vLLM engine per module."""

from __future__ import annotations

import pytest

from harness.config.engine import SamplingConfig
from harness.config.schema import CheckpointConfig
from harness.config.suites import load_suite
from harness.engines import open_backend
from harness.engines.checkpoint import ResolvedCheckpoint, resolve_checkpoint
from harness.records.cache import Cache
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
GREEDY = SamplingConfig(temperature=0, max_tokens=32)


def _checkpoint(backend: str, model: str, tmp_path_factory: pytest.TempPathFactory) -> ResolvedCheckpoint:
    config = CheckpointConfig(name=backend, model=model, backend=backend,
                              engine={"dtype": "float32", "enforce_eager": True, "gpu_memory_utilization": 0.2})
    cache = Cache(tmp_path_factory.mktemp("c") / "cache.sqlite")
    return resolve_checkpoint(config, f"{backend}.yaml", cache)


@pytest.fixture(scope="module")
def requests(demo_models, tmp_path_factory):
    checkpoint = _checkpoint("transformers", str(demo_models.base), tmp_path_factory)
    suite = load_suite(ROOT / "suites" / "demo" / "finance.yaml")
    return [checkpoint.render(item.conversation, seed=0)[0] for item in suite.items[:24]]


@pytest.fixture(scope="module")
def hf_outputs(demo_models, requests, tmp_path_factory):
    backend = open_backend(_checkpoint("transformers", str(demo_models.base), tmp_path_factory))
    try:
        return backend.generate(requests, GREEDY)
    finally:
        backend.close()


@pytest.fixture(scope="module")
def lora_adapter(demo_models, tmp_path_factory) -> str:
    """A LoRA adapter from a short real TRL run (see test_train for its checks)."""
    import json

    from harness.stages.train.sft import ensure_trained

    tmp = tmp_path_factory.mktemp("lora")
    data = tmp / "data.jsonl"
    lines = (ROOT / "examples" / "data" / "demo-sft.jsonl").read_text().splitlines()[:300]
    data.write_text("\n".join(lines) + "\n")
    config = CheckpointConfig(name="lora", backend="transformers", train={
        "base": str(demo_models.base), "data": [str(data)], "max_steps": 40, "learning_rate": 2e-3,
        "batch_size": 8, "max_length": 128, "lora": {"r": 8, "alpha": 16}, "output_dir": str(tmp / "adapter")})
    outcome = ensure_trained(config, "lora.yaml", Cache(tmp / "c.sqlite"))
    assert outcome.result.smoke.passed, outcome.result.smoke.reasons
    assert json.loads((tmp / "adapter" / "adapter_config.json").read_text())["r"] == 8
    return str(tmp / "adapter")


@pytest.fixture(scope="module")
def hf_lora_outputs(demo_models, requests, lora_adapter, tmp_path_factory):
    backend = open_backend(_checkpoint("transformers", str(demo_models.base), tmp_path_factory), [lora_adapter])
    try:
        return backend.generate(requests, GREEDY, adapter=lora_adapter)
    finally:
        backend.close()


@pytest.fixture(scope="module")
def vllm_outputs(demo_models, requests, lora_adapter, tmp_path_factory):
    """One engine for the module: the base and its LoRA adapter share it."""
    backend = open_backend(_checkpoint("vllm", str(demo_models.base), tmp_path_factory), [lora_adapter])
    try:
        return backend.generate(requests, GREEDY), backend.generate(requests, GREEDY, adapter=lora_adapter)
    finally:
        backend.close()


def test_transformers_generates_real_answers(hf_outputs, requests) -> None:
    assert len(hf_outputs) == len(requests)
    assert all(o.text.strip() for o in hf_outputs)
    assert all(o.finish_reason in ("stop", "length") for o in hf_outputs)
    assert [o.prompt_tokens for o in hf_outputs] == [len(r.prompt_token_ids) for r in requests]
    assert "<|" not in "".join(o.text for o in hf_outputs)  # special tokens are not in the text


def test_batching_does_not_change_greedy_text(demo_models, requests, hf_outputs, tmp_path_factory) -> None:
    checkpoint = _checkpoint("transformers", str(demo_models.base), tmp_path_factory)
    one_by_one = open_backend(checkpoint)
    try:
        singles = [one_by_one.generate([r], GREEDY)[0].text for r in requests[:6]]
    finally:
        one_by_one.close()
    assert singles == [o.text for o in hf_outputs[:6]]


def test_vllm_and_transformers_agree_on_greedy_text(hf_outputs, vllm_outputs) -> None:
    pairs = list(zip(hf_outputs, vllm_outputs[0]))
    same = sum(h.text == v.text for h, v in pairs)
    print(f"\nvLLM vs transformers: {same}/{len(pairs)} identical greedy answers")
    assert same == len(pairs), [(h.text, v.text) for h, v in pairs if h.text != v.text][:3]
    assert [h.completion_tokens for h, _ in pairs] == [v.completion_tokens for _, v in pairs]
    assert [h.finish_reason for h, _ in pairs] == [v.finish_reason for _, v in pairs]


def test_vllm_serves_the_lora_adapter_beside_its_base(hf_outputs, hf_lora_outputs, vllm_outputs) -> None:
    base, adapted = vllm_outputs
    assert [o.text for o in adapted] != [o.text for o in base]  # the adapter really loaded
    same = sum(h.text == v.text for h, v in zip(hf_lora_outputs, adapted))
    print(f"\nLoRA, vLLM vs transformers+peft: {same}/{len(adapted)} identical greedy answers")
    assert same == len(adapted), [(h.text, v.text) for h, v in zip(hf_lora_outputs, adapted) if h.text != v.text][:3]
