"""`harness serve`: vLLM's OpenAI-compatible server for one checkpoint.

Started as `python -m vllm.entrypoints.openai.api_server` (the `vllm` console
script looks up the `vllm` distribution, which the CPU build lacks). Binds
127.0.0.1 unless told otherwise. A LoRA checkpoint serves its adapter under
the checkpoint's name and the base under NAME-base.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.checkpoint import local_model_dir
from harness.config.loading import load_checkpoint
from harness.errors import ConfigError, InfraError


def server_command(file: Path, host: str, port: int, train: bool = True) -> tuple[list[str], dict[str, str]]:
    """The server's argv; a `train:` checkpoint is trained first unless `train` is False."""
    config = load_checkpoint(file)
    if config.backend == "openai":
        raise ConfigError(str(file), "backend", "this checkpoint is already an endpoint; nothing to serve")
    if config.train is not None and not train:
        raise ConfigError(str(file), "train", "this checkpoint is produced by training; run harness train first")
    if config.train is not None:  # serve what the train block produces (training it if needed)
        from harness.records.cache import Cache, default_cache_dir
        from harness.train import ensure_trained

        cache = Cache(default_cache_dir() / "cache.sqlite")
        try:
            config = ensure_trained(config, str(file), cache).checkpoint
        finally:
            cache.close()
    assert config.model is not None
    model = str(local_model_dir(config.model, config.revision, str(file))) if config.is_demo else config.model
    engine = config.engine
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--host", host, "--port", str(port), "--dtype", engine.dtype,
           "--gpu-memory-utilization", str(engine.gpu_memory_utilization),
           "--tensor-parallel-size", str(engine.tensor_parallel_size),
           "--data-parallel-size", str(engine.data_parallel_size)]
    if config.revision:
        cmd += ["--revision", config.revision]
    if config.tokenizer:
        cmd += ["--tokenizer", config.tokenizer]
    if config.chat_template:
        cmd += ["--chat-template", config.chat_template]
    if engine.max_model_len:
        cmd += ["--max-model-len", str(engine.max_model_len)]
    if engine.enforce_eager:
        cmd += ["--enforce-eager"]
    if engine.trust_remote_code:
        cmd += ["--trust-remote-code"]
    if config.adapter:
        cmd += ["--served-model-name", f"{config.name}-base", "--enable-lora",
                "--max-lora-rank", str(engine.max_lora_rank), "--lora-modules", f"{config.name}={config.adapter}"]
    else:
        cmd += ["--served-model-name", config.name]
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # only read by the CPU build
    return cmd, env


def run_server(command: list[str], env: dict[str, str]) -> int:
    """Run in the foreground; Ctrl-C or SIGTERM stops the server and its workers."""
    return run_foreground(command, env)


def run_foreground(command: list[str], env: dict[str, str]) -> int:
    """Run a server in its own process group until it exits; Ctrl-C or SIGTERM is passed on to the whole
    group. The handler only signals: the main thread's wait() reaps the child (a second wait() inside a
    signal handler would block on the lock the interrupted one holds)."""
    process = subprocess.Popen(command, env=env, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM to the process group (a server and the workers it started), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_up(process: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path,
                  label: str = "server") -> None:
    """Poll `url` until it answers 200; a process that exits first is an error quoting its log's tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:].strip().replace("\n", " | ")
            raise InfraError(f"the {label} exited with code {process.returncode}: {tail}")
        if time.monotonic() > deadline:
            raise InfraError(f"the {label} did not answer on {url} within {timeout_s:g} s")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(checkpoint_file: str, timeout_s: float, label: str = "server") -> Iterator[str]:
    """vLLM's OpenAI-compatible server for a checkpoint on 127.0.0.1; yields its base URL (.../v1) and
    stops it (and its workers: it runs in its own process group) however the block ends."""
    port = free_port()
    command, env = server_command(Path(checkpoint_file), "127.0.0.1", port, train=False)
    log = tempfile.NamedTemporaryFile("w+", prefix="harness-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{url}/v1/models", timeout_s, Path(log.name), label)
        yield f"{url}/v1"
    finally:
        stop_process_group(process)
        log.close()
        os.unlink(log.name)
