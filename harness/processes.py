"""Process groups for the servers the harness starts (vLLM's, Streamlit's): run one in the foreground,
stop it together with the workers it started, wait until it answers, pick a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from harness.errors import InfraError


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
