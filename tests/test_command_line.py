"""Models named on the command line: a model directory or a hub id in place of a checkpoint file,
with --adapter, --backend, --limit and --set, every override recorded in the manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.config.arguments import load_checkpoint_argument, parse_overrides
from harness.errors import ConfigError
from tests.conftest import ROOT, harness_cmd


def test_overrides_are_scoped_and_read_as_yaml() -> None:
    parsed = parse_overrides(["sampling.temperature=0.7", "candidate.engine.dtype=float32", "plan.seed=3",
                              "base.name=b0", "plan.judge=null", "engine.extra={enable_prefix_caching: true}"])
    assert parsed.both == [("sampling.temperature", 0.7), ("engine.extra", {"enable_prefix_caching": True})]
    assert (parsed.base, parsed.candidate) == ([("name", "b0")], [("engine.dtype", "float32")])
    assert parsed.plan == [("seed", 3), ("judge", None)]


@pytest.mark.parametrize("bad", ["temperature", "=1", "Sampling.temperature=1", "a..b=1"])
def test_a_malformed_override_is_one_line(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides([bad])
    assert info.value.field == "--set" and "expected field.path=value" in info.value.message


def test_a_model_directory_or_hub_id_becomes_a_checkpoint(tmp_path: Path) -> None:
    model, adapter = tmp_path / "my-model", tmp_path / "my-lora"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    overrides = parse_overrides(["sampling.max_tokens=16", "base.engine.dtype=float32"])
    base, label = load_checkpoint_argument(str(model), "base", overrides, backend="transformers")
    assert (base.name, base.model, base.backend, label) == ("my-model", str(model), "transformers", "BASE")
    assert (base.sampling.max_tokens, base.engine.dtype) == (16, "float32")
    cand, _ = load_checkpoint_argument(str(model), "candidate", overrides, adapter=str(adapter))
    assert (cand.name, cand.adapter, cand.engine.dtype) == ("my-model+my-lora", str(adapter), "auto")
    hub, _ = load_checkpoint_argument("Qwen/Qwen2.5-0.5B-Instruct", "base", overrides)
    assert (hub.name, hub.model) == ("Qwen_Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ConfigError, match=r"is not a checkpoint file \(\.yaml\), a model directory or a hub id"):
        load_checkpoint_argument("./no/such/dir", "base", overrides)
    with pytest.raises(ConfigError) as info:
        load_checkpoint_argument(str(model), "base", parse_overrides(["sampling.temperature=-1"]))
    assert (info.value.file, info.value.field) == ("BASE", "sampling.temperature")


@pytest.mark.slow
def test_compare_takes_two_model_directories_and_records_what_the_command_line_changed(
        demo_models, tmp_path: Path) -> None:
    sets = ["sampling.max_tokens=12", "plan.forgetting=null", "plan.judge=null", "plan.gates=[]",
            "candidate.name=tuned"]
    args = ["compare", str(demo_models.base), str(demo_models.candidate), "--limit", "3", "--backend",
            "transformers", "--run-dir", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")]
    result = subprocess.run(harness_cmd(*args, *[a for s in sets for a in ("--set", s)]), capture_output=True,
                            text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["command_line"] == {"overrides": sets, "adapter": None, "backend": "transformers", "limit": 3}
    checkpoints = manifest["checkpoints"]
    assert (checkpoints["base"]["name"], checkpoints["candidate"]["name"]) == (demo_models.base.name, "tuned")
    assert all(c["config"]["sampling"]["max_tokens"] == 12 for c in checkpoints.values())
    assert all(s["items"] == 3 for s in manifest["suites"]) and manifest["plan"]["forgetting"] is None
    generations = [json.loads(line) for line in (tmp_path / "run" / "records" / "generations.jsonl").open()]
    assert len(generations) == 2 * 3 * len(manifest["suites"])
    assert all(g["completion_tokens"] <= 12 for g in generations)
