"""Config loading: valid files resolve; each kind of broken file gives its exact one-line message."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config.loading import load_checkpoint, load_plan
from harness.config.schema import DEFAULT_SUITES_DIR
from harness.errors import ConfigError

SUITE = "name: s\nitems:\n  - id: a\n    prompt: hi\n"


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"")
    return d


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_checkpoint_resolves_relative_paths(tmp_path: Path, model_dir: Path) -> None:
    write(tmp_path, "s.yaml", SUITE)
    path = write(tmp_path, "c.yaml", "name: c\nmodel: ./model\nplan:\n  suites: [s.yaml]\n")
    config = load_checkpoint(path)
    assert config.model == str(model_dir)
    assert config.plan is not None and config.plan.suites == [str(tmp_path / "s.yaml")]
    assert config.sampling.temperature == 0 and config.backend == "auto"


def test_hub_id_and_demo_are_accepted(tmp_path: Path) -> None:
    hub = load_checkpoint(write(tmp_path, "h.yaml", "name: h\nmodel: Qwen/Qwen2.5-0.5B\n"))
    assert hub.model == "Qwen/Qwen2.5-0.5B"
    assert load_checkpoint(write(tmp_path, "d.yaml", "name: d\nmodel: demo:base\n")).is_demo


def test_plan_defaults_to_shipped_suites(tmp_path: Path) -> None:
    assert load_plan(write(tmp_path, "p.yaml", "{}\n")).suites == [str(DEFAULT_SUITES_DIR)]


BROKEN = [
    ("bad_yaml", "name: x\nmodel: [unclosed\n",
     "{f}: line 3, column 1: invalid YAML (did not find expected ',' or ']')"),  # libyaml's wording
    ("not_mapping", "- just\n- a list\n",
     "{f}: expected a mapping of checkpoint settings (name, model, ...)"),
    ("unknown_key", "name: x\nmodel: demo:base\ntemprature: 0.5\n",
     "{f}: temprature: unknown key; expected one of: adapter, backend, chat_template, endpoint, engine, "
     "model, name, plan, revision, sampling, tokenizer, train"),
    ("unknown_nested_key", "name: x\nmodel: demo:base\nsampling:\n  max_token: 5\n",
     "{f}: sampling.max_token: unknown key; expected one of: max_tokens, n, seed, temperature, top_p"),
    ("wrong_type", "name: x\nmodel: demo:base\nsampling:\n  max_tokens: many\n",
     "{f}: sampling.max_tokens: Input should be a valid integer, unable to parse string as an integer (got 'many')"),
    ("out_of_range", "name: x\nmodel: demo:base\nsampling:\n  temperature: -1\n",
     "{f}: sampling.temperature: Input should be greater than or equal to 0 (got -1)"),
    ("missing_model", "name: x\n", "{f}: model: required field is missing (or give a 'train' block that produces it)"),
    ("missing_model_dir", "name: x\nmodel: ./nowhere\n", "{f}: model: directory {d}/nowhere does not exist"),
    ("model_dir_without_config", "name: x\nmodel: ./empty\n",
     "{f}: model: {d}/empty has no config.json; expected a saved model directory"),
    ("bad_backend", "name: x\nmodel: demo:base\nbackend: tgi\n",
     "{f}: backend: Input should be 'auto', 'vllm', 'transformers' or 'openai' (got 'tgi')"),
    ("openai_without_endpoint", "name: x\nmodel: m\nbackend: openai\n",
     "{f}: backend 'openai' needs an 'endpoint' block with base_url"),
    ("bad_url", "name: x\nmodel: m\nbackend: openai\nendpoint:\n  base_url: localhost:8000\n",
     "{f}: endpoint.base_url: must start with http:// or https:// (got 'localhost:8000')"),
    ("n_without_sampling", "name: x\nmodel: demo:base\nsampling:\n  n: 4\n",
     "{f}: sampling: n > 1 needs temperature > 0 (greedy answers would be identical)"),
    ("unknown_demo", "name: x\nmodel: demo:large\n",
     "{f}: model: unknown demo model 'demo:large'; expected one of: demo:base, demo:candidate, demo:judge"),
    ("missing_adapter", "name: x\nmodel: demo:base\nadapter: ./lora\n",
     "{f}: adapter: directory {d}/lora does not exist"),
    ("train_and_model", "name: x\nmodel: demo:base\ntrain: {base: demo:base, data: [d.jsonl]}\n",
     "{f}: 'train' produces the model; leave out 'model' and 'adapter'"),
    ("train_missing_data_file", "name: x\ntrain: {base: demo:base, data: [nope.jsonl]}\n",
     "{f}: train.data[0]: data file {d}/nope.jsonl does not exist"),
    ("train_missing_base", "name: x\ntrain: {base: ./nobase, data: [d.jsonl]}\n",
     "{f}: train.base: directory {d}/nobase does not exist"),
    ("train_unknown_key", "name: x\ntrain: {base: demo:base, data: [d.jsonl], epoch: 3}\n",
     "{f}: train.epoch: unknown key; expected one of: base, batch_size, curation, data, device, dpo, dtype, "
     "early_stopping_patience, epochs, eval_every, format, gradient_accumulation, learning_rate, lora, "
     "lr_scheduler, max_bad_share, max_length, max_steps, method, output_dir, report_to, seed, validation_share, "
     "warmup_ratio, weight_decay"),
    ("train_bad_lora", "name: x\ntrain: {base: demo:base, data: [d.jsonl], lora: {r: 0}}\n",
     "{f}: train.lora.r: Input should be greater than or equal to 1 (got 0)"),
    ("train_bad_format", "name: x\ntrain: {base: demo:base, data: [d.jsonl], format: csv}\n",
     "{f}: train.format: Input should be 'auto', 'alpaca', 'sharegpt', 'messages' or 'preference' (got 'csv')"),
    ("openai_with_adapter", "name: x\nmodel: m\nadapter: ./empty\nbackend: openai\n"
     "endpoint: {base_url: 'http://127.0.0.1:1/v1'}\n",
     "{f}: an endpoint serves its own weights; 'adapter' needs backend vllm or transformers"),
    ("adapter_without_config", "name: x\nmodel: demo:base\nadapter: ./empty\n",
     "{f}: adapter: {d}/empty has no adapter_config.json; expected a saved model directory"),
    ("vllm_data_parallel", "name: x\nmodel: demo:base\nbackend: vllm\nengine: {data_parallel_size: 2}\n",
     "{f}: engine.data_parallel_size > 1 needs vLLM's server (harness serve) or Ray; the offline engine runs "
     "one replica"),
    ("bad_name", "name: has space\nmodel: demo:base\n",
     "{f}: name: String should match pattern '^[\\w.@+-]+$' (got 'has space')"),
]


@pytest.mark.parametrize(("case", "text", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_checkpoint_files(tmp_path: Path, case: str, text: str, expected: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = write(tmp_path, f"{case}.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_checkpoint(path)
    assert str(info.value) == expected.format(f=path, d=tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: file not found$"):
        load_checkpoint(tmp_path / "nope.yaml")


def test_endpoint_only_with_openai(tmp_path: Path) -> None:
    path = write(tmp_path, "e.yaml", "name: x\nmodel: demo:base\nendpoint:\n  base_url: http://127.0.0.1:1/v1\n")
    with pytest.raises(ConfigError, match=r"'endpoint' is only used with backend 'openai'"):
        load_checkpoint(path)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, "good.yaml", "name: x\nmodel: demo:base\n")
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert f"ok: {good}: checkpoint 'x'" in result.stdout
    bad = write(tmp_path, "bad.yaml", "name: x\nmodel: demo:base\nsampling: {top_p: 2}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: sampling.top_p: Input should be less than or equal to 1 (got 2)"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("path", "shown"), [
    ("judges/pairwise.yaml", "judge 'pairwise' (pairwise)"),
    ("suites/forgetting/cloze.yaml", "lm-eval task 'demo_cloze'"),
    ("harness/verdict/default_policy.yaml", "policy with "),  # the count changes with the shipped policy
    ("suites/demo/finance.yaml", "suite 'finance' with 60 items"),
])
def test_validate_knows_every_file_kind(path: str, shown: str) -> None:
    from tests.conftest import ROOT

    result = CliRunner().invoke(app, ["validate", str(ROOT / path)])
    assert result.exit_code == 0 and f"{shown}" in result.stdout, result.output


def test_validate_refuses_a_directory_in_one_line() -> None:
    from tests.conftest import ROOT

    result = CliRunner().invoke(app, ["validate", str(ROOT / "suites" / "demo")])
    assert result.exit_code == 2 and result.stderr.strip().endswith(
        "is a directory; give one file (a suite directory is checked through the plan that names it)")


def test_schema_is_json_schema() -> None:
    import json

    result = CliRunner().invoke(app, ["schema", "checkpoint"])
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert "sampling" in schema["properties"]
    assert CliRunner().invoke(app, ["schema", "nope"]).exit_code == 2


def test_validate_recognises_a_training_checkpoint() -> None:
    from tests.conftest import ROOT

    result = CliRunner().invoke(app, ["validate", str(ROOT / "examples" / "sft.yaml")])
    assert result.exit_code == 0 and "trained from demo:base" in result.stdout


def test_base_and_candidate_need_distinct_names_and_set_key_variables(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.stages.pipeline import prepare

    write(tmp_path, "s.yaml", SUITE)
    base = write(tmp_path, "b.yaml", "name: same\nmodel: demo:base\n")
    cand = write(tmp_path, "c.yaml", "name: same\nmodel: demo:candidate\nplan: {suites: [s.yaml]}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: name: the base is also named 'same'"):
        prepare(base, cand)
    monkeypatch.delenv("HARNESS_NO_SUCH_KEY", raising=False)
    remote = write(tmp_path, "r.yaml", "name: r\nmodel: m\nbackend: openai\nendpoint: {base_url: "
                   "'http://127.0.0.1:1/v1', api_key_env: HARNESS_NO_SUCH_KEY}\nplan: {suites: [s.yaml]}\n")
    with pytest.raises(ConfigError, match=r"r.yaml: endpoint.api_key_env: environment variable HARNESS_NO_SUCH_KEY"):
        prepare(base, remote)
