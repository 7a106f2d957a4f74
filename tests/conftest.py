"""Shared fixtures. The demo models are built once per test session into a
session cache dir (HARNESS_CACHE_DIR), which subprocesses inherit."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Set before any test imports harness, so every process of this session shares it.
# A developer may point it at a persistent dir to skip rebuilding between runs.
if "HARNESS_CACHE_DIR" not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="harness-test-cache-")
    os.environ["HARNESS_CACHE_DIR"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness.processes import free_port  # noqa: E402  (after the environment above; tests import it from here)


@pytest.fixture(scope="session")
def demo_models():
    from harness.demo.build import ensure_demo_models

    return ensure_demo_models()


@pytest.fixture()
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


@pytest.fixture(scope="session")
def vllm_server(demo_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI-compatible server for the demo base, started once per session through
    `harness serve` on 127.0.0.1 (about 40 s on two cores) and stopped at the end."""
    from harness.processes import stop_process_group, wait_until_up

    tmp = tmp_path_factory.mktemp("serve")
    config = tmp / "base.yaml"
    config.write_text(f"name: demo-base\nmodel: {demo_models.base}\nbackend: vllm\n"
                      "engine: {dtype: float32, enforce_eager: true, gpu_memory_utilization: 0.2}\n")
    port = free_port()
    log = (tmp / "server.log").open("w")
    process = subprocess.Popen(harness_cmd("serve", str(config), "--port", str(port)), cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{url}/v1/models", 240, tmp / "server.log", "vLLM server")
        yield f"{url}/v1"
    finally:
        stop_process_group(process)
        log.close()


def base_with_another_template(demo_models, folder: Path) -> Path:
    """A copy of the demo base whose chat template differs (a system turn added): a checkpoint trained from
    demo:base is not the SFT of this one."""
    from transformers import AutoTokenizer

    other = folder / "other-base"
    shutil.copytree(demo_models.base, other)
    tok = AutoTokenizer.from_pretrained(other)
    tok.chat_template = tok.chat_template.replace("<|bos|>", "<|bos|><|system|>x<|end|>")
    tok.save_pretrained(other)
    return other
