"""`harness validate` finds at load time what compare would otherwise hit later with a traceback: a chat
template that does not compile, a model directory without weights, an output_dir that is a file, a
symlink loop or an over-long name in any path field, an empty file, a misspelt key, a duplicate key and
broken training data. Each is exit 2 and one line, from `validate` and `compare` alike, writing nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config.loading import load_checkpoint, load_plan
from harness.config.suites import load_suite
from harness.errors import ConfigError
from tests.conftest import ROOT

BAD_TEMPLATE = "{% for m in messages %}\n{{ m.content }\n{% endfor %}\n"
LONG = "a" * 300
ROWS = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]}\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def model_dir(path: Path, *files: str) -> Path:
    path.mkdir(parents=True)
    for name in ("config.json", *files):
        (path / name).write_text("{}")
    return path


def validate(path: Path) -> str:
    """`harness validate PATH` must fail with exit 2 and one line; the line, without 'error: '."""
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.output
    return result.stderr.strip().removeprefix("error: ")


def compare_fails(tmp_path: Path, candidate: Path) -> str:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["compare", str(ROOT / "examples" / "base.yaml"), str(candidate),
                                      "--runs-dir", str(runs), "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not runs.exists() and not (tmp_path / "c.sqlite").exists()
    return result.stderr.strip().removeprefix("error: ")


# ---------------------------------------------------------------------------- chat templates
def test_a_template_file_that_is_not_jinja_is_refused_with_its_line(tmp_path: Path) -> None:
    template = write(tmp_path / "t.jinja", BAD_TEMPLATE)
    cand = write(tmp_path / "c.yaml", "name: c\nmodel: demo:candidate\nchat_template: t.jinja\n"
                                      "plan: {suites: [s.yaml], forgetting: null, judge: null}\n")
    write(tmp_path / "s.yaml", "name: s\nitems: [{id: a, prompt: hi}]\n")
    expected = f"{cand}: chat_template: the chat template {template} is not valid Jinja: line 2: unexpected '}}'"
    assert validate(cand) == expected
    assert compare_fails(tmp_path, cand) == expected


def test_the_tokenizers_own_template_is_compiled_too(tmp_path: Path) -> None:
    model = model_dir(tmp_path / "m", "model.safetensors")
    write(model / "chat_template.jinja", BAD_TEMPLATE)
    cand = write(tmp_path / "c.yaml", "name: c\nmodel: ./m\n")
    assert validate(cand) == (f"{cand}: model: the chat template {model}/chat_template.jinja is not valid Jinja: "
                              "line 2: unexpected '}'")
    (model / "chat_template.jinja").unlink()
    write(model / "tokenizer_config.json", '{"chat_template": "{% if %}"}')
    assert validate(cand).startswith(f"{cand}: model: the chat template {model}/tokenizer_config.json (chat_template) "
                                     "is not valid Jinja: line 1:")
    write(model / "tokenizer_config.json", '{"chat_template": "{% generation %}{{ m }}{% endgeneration %}"}')
    assert load_checkpoint(cand).model == str(model)  # transformers' generation tag is valid


def test_a_template_first_seen_when_the_tokenizer_loads_is_bad_input(tmp_path: Path) -> None:
    """A hub tokenizer's template is only seen at resolve time: still a ConfigError, before any run dir."""
    from harness.config.schema import CheckpointConfig
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.records.cache import Cache

    model = tmp_path / "m"
    shutil.copytree(ROOT / "harness" / "demo" / "base", model)
    write(model / "chat_template.jinja", BAD_TEMPLATE)
    config = CheckpointConfig(name="c", model=str(model), backend="transformers")  # as if from the hub
    with pytest.raises(ConfigError) as info:
        resolve_checkpoint(config, "c.yaml", Cache(tmp_path / "c.sqlite"))
    assert str(info.value) == (f"c.yaml: model: the chat template of the tokenizer at {model} is not valid Jinja: "
                               "line 2: unexpected '}'")


# ---------------------------------------------------------------------------- model directories
def test_a_model_directory_needs_weights(tmp_path: Path) -> None:
    model_dir(tmp_path / "m")
    cand = write(tmp_path / "c.yaml", "name: c\nmodel: ./m\nplan: {suites: [s.yaml]}\n")
    expected = (f"{cand}: model: {tmp_path}/m holds no weights (*.safetensors, *.bin, or a sharded index such as "
                "model.safetensors.index.json); expected a saved model directory")
    assert validate(cand) == expected
    assert compare_fails(tmp_path, cand) == expected
    (tmp_path / "m" / "training_args.bin").write_bytes(b"")  # a trainer's file is not weights
    assert validate(cand) == expected


def test_a_sharded_model_needs_every_shard(tmp_path: Path) -> None:
    model = model_dir(tmp_path / "m", "model-00001-of-00002.safetensors")
    write(model / "model.safetensors.index.json", '{"weight_map": {"a": "model-00001-of-00002.safetensors", '
                                                  '"b": "model-00002-of-00002.safetensors"}}')
    cand = write(tmp_path / "c.yaml", "name: c\nmodel: ./m\n")
    assert validate(cand) == (f"{cand}: model: {model}: model.safetensors.index.json names "
                              "model-00002-of-00002.safetensors, which is missing (1 of 2 shards); copy the whole "
                              "model directory")
    (model / "model-00002-of-00002.safetensors").write_text("")
    assert load_checkpoint(cand).model == str(model)


def test_an_adapter_needs_its_weights(tmp_path: Path) -> None:
    model_dir(tmp_path / "lora").joinpath("adapter_config.json").write_text("{}")
    cand = write(tmp_path / "c.yaml", "name: c\nmodel: demo:base\nadapter: ./lora\n")
    assert validate(cand) == (f"{cand}: adapter: {tmp_path}/lora has adapter_config.json but no adapter weights "
                              "(adapter_model.safetensors or adapter_model.bin); expected a saved adapter directory")
    (tmp_path / "lora" / "adapter_model.safetensors").write_bytes(b"")
    assert load_checkpoint(cand).adapter == str(tmp_path / "lora")


# ---------------------------------------------------------------------------- training
def test_an_output_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", ROWS)
    write(tmp_path / "taken", "")
    cand = write(tmp_path / "c.yaml", "name: c\ntrain: {base: demo:base, data: [d.jsonl], output_dir: taken}\n"
                                      "plan: {suites: [s.yaml]}\n")
    expected = (f"{cand}: train.output_dir: {tmp_path}/taken is an existing file; expected a directory for the "
                "trained checkpoint")
    assert validate(cand) == expected
    assert compare_fails(tmp_path, cand) == expected
    write(cand, "name: c\ntrain: {base: demo:base, data: [d.jsonl], output_dir: taken/out}\n")
    assert validate(cand) == (f"{cand}: train.output_dir: {tmp_path}/taken is a file, so {tmp_path}/taken/out "
                              "cannot be made; expected a directory for the trained checkpoint")


def test_validate_reads_the_training_data(tmp_path: Path) -> None:
    data = write(tmp_path / "d.jsonl", ROWS * 3 + '{"messages": [{"role": "user", "content": "no answer"}]}\n')
    cand = write(tmp_path / "c.yaml", "name: c\ntrain: {base: demo:base, data: [d.jsonl]}\n")
    assert validate(cand) == (f"{data}: line 4: 1 of 4 rows are not valid messages (first: line 4: no assistant "
                              "turn); at most 5% may be")
    write(cand, "name: c\ntrain: {base: demo:base, data: [d.jsonl], max_bad_share: 0.5}\n")
    result = CliRunner().invoke(app, ["validate", str(cand)])
    assert result.exit_code == 0, result.output
    assert "training data: 3 conversation(s), 1 bad row(s) skipped" in result.stdout


# ---------------------------------------------------------------------------- paths the OS refuses
PATH_FIELDS = [
    ("model", "name: x\nmodel: {p}\n"),
    ("tokenizer", "name: x\nmodel: demo:base\ntokenizer: {p}\n"),
    ("adapter", "name: x\nmodel: demo:base\nadapter: {p}\n"),
    ("chat_template", "name: x\nmodel: demo:base\nchat_template: {p}\n"),
    ("train.base", "name: x\ntrain: {{base: {p}, data: [d.jsonl]}}\n"),
    ("train.data[0]", "name: x\ntrain: {{base: demo:base, data: [{p}]}}\n"),
    ("train.output_dir", "name: x\ntrain: {{base: demo:base, data: [d.jsonl], output_dir: {p}}}\n"),
    ("plan.suites[0]", "name: x\nmodel: demo:base\nplan: {{suites: [{p}]}}\n"),
    ("plan.forgetting.tasks[0]", "name: x\nmodel: demo:base\nplan: {{forgetting: {{tasks: [{p}]}}}}\n"),
    ("plan.judge.definition", "name: x\nmodel: demo:base\nplan: {{judge: {{kind: llm, definition: {p}, "
                              "endpoint: {{base_url: 'http://127.0.0.1:1/v1', model: m}}}}}}\n"),
    ("plan.judge.checkpoint", "name: x\nmodel: demo:base\nplan: {{judge: {{kind: llm, checkpoint: {p}}}}}\n"),
]


@pytest.mark.parametrize(("field", "text"), PATH_FIELDS, ids=[f[0] for f in PATH_FIELDS])
def test_a_symlink_loop_in_any_path_field(tmp_path: Path, field: str, text: str) -> None:
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    write(tmp_path / "d.jsonl", ROWS)
    cand = write(tmp_path / "c.yaml", text.format(p="./loop-a"))
    assert validate(cand) == (f"{cand}: {field}: {tmp_path}/loop-a is a symlink loop (or a chain of too many "
                              "links); point it at a real file")


@pytest.mark.parametrize(("field", "text"), PATH_FIELDS, ids=[f[0] for f in PATH_FIELDS])
def test_a_name_longer_than_255_bytes_in_any_path_field(tmp_path: Path, field: str, text: str) -> None:
    write(tmp_path / "d.jsonl", ROWS)
    cand = write(tmp_path / "c.yaml", text.format(p=f"./{LONG}"))
    assert validate(cand) == (f"{cand}: {field}: file name {'a' * 60}...{'a' * 60} is 300 bytes long; "
                              "at most 255 are allowed")


def test_a_plan_file_and_the_file_given_are_checked_the_same_way(tmp_path: Path) -> None:
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    plan = write(tmp_path / "p.yaml", f"suites: [./{LONG}]\n")
    assert validate(plan).startswith(f"{plan}: suites[0]: file name aaaa")
    assert validate(tmp_path / "loop-a") == f"{tmp_path}/loop-a: {tmp_path}/loop-a is a symlink loop (or a chain of " \
                                            "too many links); point it at a real file"
    cand = write(tmp_path / "c.yaml", "name: x\nmodel: ./loop-a\n")
    assert compare_fails(tmp_path, cand).startswith(f"{cand}: model: {tmp_path}/loop-a is a symlink loop")


# ---------------------------------------------------------------------------- what the file says
def test_an_empty_file_is_not_a_plan_or_a_suite(tmp_path: Path) -> None:
    empty = write(tmp_path / "p.yaml", "# nothing yet\n")
    with pytest.raises(ConfigError, match=r"p.yaml: the file is empty; expected a mapping of plan settings"):
        load_plan(empty)
    with pytest.raises(ConfigError, match=r"p.yaml: the file is empty; expected a mapping with 'name' and 'items'"):
        load_suite(empty)
    assert validate(empty).startswith(f"{empty}: the file is empty; expected a")
    assert validate(write(tmp_path / "s.jsonl", "\n")) == f"{tmp_path}/s.jsonl: suite has no items"


def test_a_misspelt_key_is_named_before_the_field_it_leaves_missing(tmp_path: Path) -> None:
    cand = write(tmp_path / "c.yaml", "name: x\nmodle: demo:base\n")
    assert validate(cand) == (f"{cand}: modle: unknown key; expected one of: adapter, backend, chat_template, "
                              "endpoint, engine, model, name, plan, revision, sampling, tokenizer, train")
    suite = write(tmp_path / "s.yaml", "nmae: s\nitems: [{id: a, prompt: hi}]\n")
    assert validate(suite) == f"{suite}: nmae: unknown key; expected one of: checks, description, items, name " \
                              "(and 1 more)"


def test_field_errors_come_before_path_checks(tmp_path: Path) -> None:
    cand = write(tmp_path / "c.yaml", "name: x\nmodel: ./nowhere\nsampling: {temperature: -1}\n")
    assert validate(cand) == f"{cand}: sampling.temperature: Input should be greater than or equal to 0 (got -1)"
    write(tmp_path / "d.jsonl", ROWS)
    train = write(tmp_path / "t.yaml", "name: x\ntrain: {base: ./nobase, data: [d.jsonl], epochs: 0}\n")
    assert validate(train) == f"{train}: train.epochs: Input should be greater than 0 (got 0)"


@pytest.mark.parametrize(("name", "text", "line"), [
    ("c.yaml", "name: a\nmodel: demo:base\nname: b\n",
     "line 3, column 1: duplicate key 'name' (first given on line 1)"),
    ("n.yaml", "name: a\nmodel: demo:base\nsampling:\n  temperature: 0.5\n  temperature: 0\n",
     "line 5, column 3: duplicate key 'temperature' (first given on line 4)"),
    ("s.yaml", "name: s\nitems:\n  - {id: a, prompt: x, prompt: y}\n",
     "line 3, column 24: duplicate key 'prompt' (first given on line 3)"),
    ("p.yaml", "seed: 1\nsuites: [a.yaml]\nseed: 2\n",
     "line 3, column 1: duplicate key 'seed' (first given on line 1)"),
    ("g.yaml", "gates: []\ngates: []\n", "line 2, column 1: duplicate key 'gates' (first given on line 1)"),
    ("j.yaml", "name: j\nmode: pairwise\nuser: a\nuser: b\n",
     "line 4, column 1: duplicate key 'user' (first given on line 3)"),
    ("t.yaml", "task: t\ndataset_path: x\nprocess_docs: !function utils.docs\ntask: u\n",
     "line 4, column 1: duplicate key 'task' (first given on line 1)"),
])
def test_a_duplicate_key_in_any_yaml_file_is_an_error(tmp_path: Path, name: str, text: str, line: str) -> None:
    path = write(tmp_path / name, text)
    assert validate(path) == f"{path}: {line}; each key may appear once"


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    from harness.config.yamlio import read_yaml

    path = write(tmp_path / "c.yaml",
                 "d: &d {temperature: 0.5, max_tokens: 8}\nsampling:\n  <<: *d\n  temperature: 0.7\n")
    assert read_yaml(path)["sampling"] == {"temperature": 0.7, "max_tokens": 8}


def test_a_task_file_a_plan_names_is_checked_for_duplicate_keys(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", "name: s\nitems: [{id: a, prompt: hi}]\n")
    shutil.copy(ROOT / "suites" / "forgetting" / "cloze.jsonl", tmp_path)
    task = write(tmp_path / "t.yaml", (ROOT / "suites" / "forgetting" / "cloze.yaml").read_text() + "task: again\n")
    plan = write(tmp_path / "p.yaml", f"suites: [s.yaml]\njudge: null\nforgetting: {{tasks: [{task}]}}\n")
    assert validate(plan) == f"{task}: line 24, column 1: duplicate key 'task' (first given on line 7); each key may " \
                             "appear once"
