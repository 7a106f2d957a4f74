"""`harness report`: the Streamlit app in reports/ over a directory of run dirs.

Streamlit binds every interface unless told otherwise (streamlit #10155), and
the report shows model outputs and configs: the address is always passed
explicitly, loopback by default, and anything else needs `allow_remote`.
The app finds the runs through HARNESS_RUNS_DIR (Streamlit's own argv parsing
would need a `--` separator that is easy to get wrong).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

from harness.errors import ConfigError, InfraError
from harness.processes import run_foreground, stop_process_group
from harness.resources import shipped_dir

APP = shipped_dir("reports") / "app.py"
RUNS_DIR_ENV = "HARNESS_RUNS_DIR"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


def report_command(runs_dir: Path, host: str = "127.0.0.1", port: int = 8501,
                   allow_remote: bool = False) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` argv and environment; refuses what it must not start."""
    if not runs_dir.is_dir():
        raise ConfigError(str(runs_dir), None, "runs dir does not exist (run `harness compare` first, "
                          "or name the directory that holds the run dirs)")
    if not 1 <= port <= 65535:
        raise ConfigError(None, "--port", f"{port} is not a TCP port (1-65535)")
    if not is_loopback(host):
        if not allow_remote:
            raise ConfigError(None, "--host", f"{host} is not a loopback address: the report would be reachable "
                              "from other machines; pass --allow-remote if you mean it")
        print(f"warning: binding {host}: the report (model outputs, configs, paths) is reachable from other "
              "machines", file=sys.stderr)
    if not APP.is_file():
        raise InfraError(f"the report app is missing ({APP}); install harness from a source checkout")
    command = [sys.executable, "-m", "streamlit", "run", str(APP),
               "--server.address", host, "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false",
               # A viewer's toolbar: no "Deploy" button or developer menu in a read-only report.
               "--client.toolbarMode", "viewer"]
    env = {**os.environ, RUNS_DIR_ENV: str(runs_dir.resolve())}
    return command, env


def start_report(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The server in its own process group, so stopping it stops everything it started."""
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_report(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    stop_process_group(process, timeout)


def run_report(command: list[str], env: dict[str, str]) -> int:
    """Run in the foreground until Ctrl-C or SIGTERM."""
    return run_foreground(command, env)
