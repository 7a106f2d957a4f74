"""What a run records about the machine: enough to see why two machines' figures differ."""

from __future__ import annotations

import pytest

from harness.records import provenance

X86 = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16

processor	: 1
model name	: something else
flags		: fpu
"""
ARM = """processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimdhp sve bf16 i8mm
CPU implementer	: 0x41
CPU part	: 0xd40
"""


def test_cpuinfo_gives_the_model_and_vector_extensions_of_the_first_processor() -> None:
    x86 = provenance.parse_cpuinfo(X86)
    assert x86["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert x86["vector_extensions"] == ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                        "avx512vl", "avx512_bf16", "amx_tile", "amx_bf16"]
    arm = provenance.parse_cpuinfo(ARM)
    assert arm["model"] == "0xd40" and arm["vector_extensions"] == ["asimd", "asimdhp", "sve", "bf16", "i8mm"]
    assert provenance.parse_cpuinfo("") == {"model": None, "vector_extensions": []}


def test_numeric_environment_records_torch_threads_build_and_steering_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HARNESS_UNRELATED", "x")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        env = provenance.numeric_environment()
    finally:
        torch.set_num_threads(before)
    assert env["env"] == {"OMP_NUM_THREADS": "1"}
    described = env["torch"]
    assert described["threads"] == 1 and described["version"] == torch.__version__
    assert described["blas"] and described["libraries"], described  # which BLAS/oneDNN computed the figures
    assert isinstance(described["deterministic_algorithms"], bool)
    if hasattr(torch.backends, "cpu"):
        assert described["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu"] == provenance.cpu()
    assert provenance.hardware()["numeric"]["torch"]["threads"] == torch.get_num_threads()


def test_without_torch_loaded_nothing_claims_how_it_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "torch")
    env = provenance.numeric_environment()
    assert env["torch"] is None and "vector_extensions" in env["cpu"]
