"""Shared fixtures. The demo models are built once per test session into a
session cache dir (HARNESS_CACHE_DIR), which subprocesses inherit."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
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


@pytest.fixture(scope="session")
def demo_models():
    from harness.demo.build import ensure_demo_models

    return ensure_demo_models()


@pytest.fixture()
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]
