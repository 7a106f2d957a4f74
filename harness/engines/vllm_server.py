"""`harness serve`: vLLM's OpenAI-compatible server for one checkpoint.

Started as `python -m vllm.entrypoints.openai.api_server` (the `vllm` console
script looks up the `vllm` distribution, which the CPU build lacks). Binds
127.0.0.1 unless told otherwise. A LoRA checkpoint serves its adapter under
the checkpoint's name and the base under NAME-base.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config.loading import load_checkpoint
from harness.config.schema import CheckpointConfig
from harness.engines.checkpoint import local_model_dir
from harness.engines.vllm_args import engine_args, server_flags
from harness.errors import ConfigError
from harness.processes import free_port, run_foreground, stop_process_group, wait_until_up


def server_command(file: Path, host: str, port: int,
                   checkpoint: CheckpointConfig | None = None) -> tuple[list[str], dict[str, str]]:
    """The server's argv for the checkpoint in `file`, or for `checkpoint` when given: what `file` loads
    to, or for a `train:` file what its training produced (stages.train.sft.checkpoint_to_serve). A
    checkpoint still to be trained is an error here: engines do not train."""
    config = checkpoint if checkpoint is not None else load_checkpoint(file)
    if config.backend == "openai":
        raise ConfigError(str(file), "backend", "this checkpoint is already an endpoint; nothing to serve")
    if config.train is not None:
        raise ConfigError(str(file), "train", "this checkpoint is produced by training; run harness train first")
    assert config.model is not None
    model = str(local_model_dir(config.model, config.revision, str(file))) if config.is_demo else config.model
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--host", host, "--port", str(port), *server_flags(engine_args(config.engine, lora=bool(config.adapter)))]
    if config.revision:
        cmd += ["--revision", config.revision]
    if config.tokenizer:
        cmd += ["--tokenizer", config.tokenizer]
    if config.chat_template:
        cmd += ["--chat-template", config.chat_template]
    if config.adapter:
        cmd += ["--served-model-name", f"{config.name}-base", "--lora-modules", f"{config.name}={config.adapter}"]
    else:
        cmd += ["--served-model-name", config.name]
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # only read by the CPU build
    return cmd, env


def run_server(command: list[str], env: dict[str, str]) -> int:
    """Run in the foreground; Ctrl-C or SIGTERM stops the server and its workers."""
    return run_foreground(command, env)


@contextmanager
def served(checkpoint_file: str, timeout_s: float, label: str = "server") -> Iterator[str]:
    """vLLM's OpenAI-compatible server for a checkpoint on 127.0.0.1; yields its base URL (.../v1) and
    stops it (and its workers: it runs in its own process group) however the block ends."""
    port = free_port()
    command, env = server_command(Path(checkpoint_file), "127.0.0.1", port)
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
