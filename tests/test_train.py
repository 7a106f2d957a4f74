"""Smoke-test SFT with real TRL runs on the tiny demo base: loss masks for each
data form, a healthy run, a broken run, refused set-ups, LoRA and full
checkpoints that the generate stage loads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.config.schema import CheckpointConfig
from harness.config.training import TrainConfig
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.stages.train.data import load_conversations
from harness.stages.train.sft import ensure_trained, make_trainer
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
DATA = ROOT / "examples" / "data" / "demo-sft.jsonl"
MULTI_TURN = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 15% of $240?"},
              {"role": "assistant", "content": "The amount is $36."}, {"role": "user", "content": "And 10%?"},
              {"role": "assistant", "content": "It is $24."}]


def rows(n: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text().splitlines()[:n]]


def write_forms(tmp: Path) -> dict[str, Path]:
    """The same conversations in the three forms users have."""
    convs = [r["messages"] for r in rows(6)] + [MULTI_TURN]
    sharegpt_role = {"system": "system", "user": "human", "assistant": "gpt"}
    forms = {
        "messages": [{"messages": c} for c in convs],
        "sharegpt": [{"conversations": [{"from": sharegpt_role[m["role"]], "value": m["content"]} for m in c]}
                     for c in convs],
    }
    single = [c for c in convs if len(c) <= 3]
    forms["alpaca"] = [{"instruction": c[-2]["content"], "input": "", "output": c[-1]["content"],
                        **({"system": c[0]["content"]} if c[0]["role"] == "system" else {})} for c in single]
    paths = {}
    for name, data in forms.items():
        paths[name] = tmp / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in data))
    return paths


def labelled_spans(labels: list[int]) -> list[list[int]]:
    spans: list[list[int]] = []
    previous = -100
    for token in labels:
        if token != -100:
            if previous == -100:
                spans.append([])
            spans[-1].append(token)
        previous = token
    return spans


@pytest.mark.parametrize("form", ["alpaca", "sharegpt", "messages"])
def test_loss_mask_is_exactly_the_assistant_turns_and_stop_token(demo_models, tmp_path: Path, form: str) -> None:
    from transformers import AutoTokenizer

    path = write_forms(tmp_path)[form]
    loaded = load_conversations([path], "auto")
    assert loaded.formats == {str(path): form} and not loaded.bad_rows
    tok = AutoTokenizer.from_pretrained(demo_models.base)
    config = TrainConfig(base=str(demo_models.base), data=[str(path)], max_steps=1)
    trainer, _ = make_trainer(config, demo_models.base, tok, loaded.conversations, [], tmp_path / "out")
    assert len(trainer.train_dataset) == len(loaded.conversations)
    for conv, row in zip(loaded.conversations, trainer.train_dataset):
        spans = [tok.decode(s) for s in labelled_spans(row["labels"])]
        assert spans == [m["content"] + "<|end|>" for m in conv if m["role"] == "assistant"]
    if form != "alpaca":
        assert len(labelled_spans(trainer.train_dataset[-1]["labels"])) == 2  # multi-turn keeps both turns


def small_candidate(tmp: Path, base: Path, **train: Any) -> CheckpointConfig:
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(400)))
    settings = {"base": str(base), "data": [str(data)], "max_steps": 30, "learning_rate": 1e-3,
                "batch_size": 8, "max_length": 128, "validation_share": 0.1, "output_dir": str(tmp / "out"), **train}
    return CheckpointConfig(name="small", train=settings, backend="transformers", engine={"dtype": "float32"})


def test_evaluation_is_sized_to_the_run() -> None:
    from harness.stages.train.evaluation import EvalPlan, eval_plan

    def plan(validation: int, steps: int = 60, **train: Any) -> EvalPlan:
        return eval_plan(TrainConfig(base="b", data=["d.jsonl"], max_steps=steps, batch_size=16, **train), steps,
                         validation)

    assert plan(120) == EvalPlan(every=60, rows=120)  # the demo: every validation row, once, at the last step
    assert plan(120, steps=1000) == EvalPlan(every=100, rows=120)  # a long run: ten evaluations
    assert plan(5000) == EvalPlan(every=60, rows=144)  # a validation set far larger than the run: cut
    assert plan(5000, steps=4) == EvalPlan(every=4, rows=64)  # ... never below 64 rows
    assert plan(120, eval_every=5) == EvalPlan(every=5, rows=120)
    assert plan(120, early_stopping_patience=2) == EvalPlan(every=6, rows=120)  # patience counts evaluations


def test_healthy_run_passes_and_an_unchanged_rerun_is_reused(demo_models, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    config = small_candidate(tmp_path, demo_models.base)
    stale = tmp_path / ".tmp-out-999999"  # as a training killed with kill -9 leaves it
    (stale / "trainer").mkdir(parents=True)
    outcome = ensure_trained(config, "small.yaml", cache)
    assert not stale.exists() and not list(tmp_path.glob(".tmp-*"))
    smoke = outcome.result.smoke
    assert smoke.passed, smoke.reasons
    assert {c.name for c in smoke.checks} >= {"finite_loss", "loss_falling", "eval_within_10pct"}
    assert len(outcome.steps) == 30 and outcome.steps[-1].loss < outcome.steps[0].loss
    assert any(s.eval_loss is not None for s in outcome.steps)
    assert outcome.steps[-1].eval_loss == outcome.result.eval_loss  # scored at the last step, not twice
    assert outcome.result.preflight["rows_without_stop_token"] == 0
    assert outcome.result.preflight["training_template"] == "tokenizer (has generation markers)"
    assert outcome.result.data.train + outcome.result.data.validation == 400
    assert outcome.checkpoint.model == str(tmp_path / "out") and outcome.checkpoint.train is None
    assert (tmp_path / "out" / "model.safetensors").is_file()
    again = ensure_trained(config, "small.yaml", cache)
    assert again.reused and again.result == outcome.result
    changed = small_candidate(tmp_path, demo_models.base, learning_rate=5e-4)
    assert not ensure_trained(changed, "small.yaml", cache).reused  # new settings: retrained


def test_retraining_with_the_same_seed_is_served_entirely_from_the_cache(demo_models, tmp_path: Path) -> None:
    """TRL's training_args.bin pickles the temp output path with the process id: hashing it gave every
    retraining of bit-identical weights a new fingerprint, and the next run generated everything again."""
    import subprocess

    import yaml

    from harness.config.suites import load_suites
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.stages.generate import run_generation
    from tests.conftest import harness_cmd

    cache = Cache(tmp_path / "c.sqlite")
    file = tmp_path / "small.yaml"
    file.write_text(yaml.safe_dump(small_candidate(tmp_path, demo_models.base).model_dump(mode="json",
                                                                                         exclude_none=True)))
    suites = load_suites([str(ROOT / "suites" / "demo" / "finance.yaml")], "plan")

    def retrain_and_generate() -> tuple[str, str, str, int]:
        # Each training in its own process, as two `harness compare` runs would train.
        subprocess.run(harness_cmd("train", str(file), "--force", "--cache", str(tmp_path / "train.sqlite")),
                       check=True, capture_output=True, cwd=ROOT)
        checkpoint = resolve_checkpoint(CheckpointConfig(name="small", model=str(tmp_path / "out"),
                                                         backend="transformers", engine={"dtype": "float32"}),
                                        str(file), cache)
        stats = run_generation({"candidate": checkpoint}, suites, cache, lambda records: None)
        digest = lambda name: hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest()  # noqa: E731
        return checkpoint.fingerprint, digest("model.safetensors"), digest("training_args.bin"), stats.generated

    first, second = retrain_and_generate(), retrain_and_generate()
    assert first[1] == second[1]  # bit-identical weights (same machine, same seed)...
    assert first[2] != second[2]  # ...beside a trainer's arguments file that differs
    assert first[0] == second[0]  # one fingerprint
    assert first[3] == 60 and second[3] == 0  # and the rerun made no model call


def test_absurd_learning_rate_fails_the_smoke_verdict_with_the_reason(demo_models, tmp_path: Path) -> None:
    config = small_candidate(tmp_path, demo_models.base, learning_rate=10.0, lr_scheduler="constant",
                             warmup_ratio=0.0, max_steps=12)
    smoke = ensure_trained(config, "bad.yaml", Cache(tmp_path / "c.sqlite")).result.smoke
    assert not smoke.passed
    failed = {reason.split(":")[0] for reason in smoke.reasons}
    assert failed & {"finite_loss", "finite_grad_norm", "loss_falling"}, smoke.reasons


def with_template(base: Path, tmp: Path, edit: Any) -> Path:
    from transformers import AutoTokenizer

    copy = tmp / "edited-base"
    shutil.copytree(base, copy)
    tok = AutoTokenizer.from_pretrained(copy)
    tok.chat_template = edit(tok.chat_template)
    tok.save_pretrained(copy)
    return copy


def test_template_without_markers_that_trl_cannot_patch_is_refused_before_training(demo_models,
                                                                                     tmp_path: Path) -> None:
    """Stock templates TRL ships train through its patched copy (test_train_templates.py); any other
    template needs the markers."""
    base = with_template(demo_models.base, tmp_path, lambda t: t.replace("{% generation %}", "")
                         .replace("{% endgeneration %}", ""))
    with pytest.raises(ConfigError, match=r"^x\.yaml: train\.base: the chat template of .*edited-base \(sha256 \w+\) "
                       r"has no generation markers and TRL [\w.]+ cannot patch it .* put \{% generation %\} \.\.\. "
                       r"\{% endgeneration %\} around each assistant turn .*chat_template"):
        ensure_trained(small_candidate(tmp_path, base), "x.yaml", Cache(tmp_path / "c.sqlite"))
    assert not (tmp_path / "out").exists()


def test_stop_token_outside_the_mask_is_refused(demo_models, tmp_path: Path) -> None:
    def move_stop(template: str) -> str:
        edited = template.replace("{{- '<|end|>' -}}{% endgeneration %}", "{% endgeneration %}{{- '<|end|>' -}}")
        assert edited != template
        return edited

    base = with_template(demo_models.base, tmp_path, move_stop)
    with pytest.raises(ConfigError, match=r"stop token '<\|end\|>' is outside the loss mask"):
        ensure_trained(small_candidate(tmp_path, base), "x.yaml", Cache(tmp_path / "c.sqlite"))


def test_lora_checkpoint_is_base_plus_adapter_and_generates(demo_models, tmp_path: Path) -> None:
    from harness.config.engine import SamplingConfig
    from harness.config.suites import load_suite
    from harness.engines import open_backend
    from harness.engines.checkpoint import resolve_checkpoint

    cache = Cache(tmp_path / "c.sqlite")
    config = small_candidate(tmp_path, demo_models.base, lora={"r": 8, "alpha": 16}, learning_rate=3e-3)
    outcome = ensure_trained(config, "lora.yaml", cache)
    assert outcome.result.smoke.passed, outcome.result.smoke.reasons
    assert (tmp_path / "out" / "adapter_config.json").is_file()
    assert outcome.checkpoint.model == str(demo_models.base) and outcome.checkpoint.adapter == str(tmp_path / "out")
    trained = resolve_checkpoint(outcome.checkpoint, "lora.yaml", cache)
    base = resolve_checkpoint(CheckpointConfig(name="b", model=str(demo_models.base), backend="transformers"),
                              "b.yaml", cache)
    assert trained.fingerprint != base.fingerprint  # the adapter is part of the fingerprint
    items = load_suite(ROOT / "suites" / "demo" / "finance.yaml").items[:8]
    requests = [trained.render(i.conversation, 0)[0] for i in items]
    engine = open_backend(trained, [outcome.checkpoint.adapter])
    try:
        sampling = SamplingConfig(max_tokens=24)
        with_adapter = [c.text for c in engine.generate(requests, sampling, adapter=outcome.checkpoint.adapter)]
        without = [c.text for c in engine.generate(requests, sampling)]
    finally:
        engine.close()
    assert with_adapter != without
    assert sum(t.startswith("I'm sorry") for t in without) > sum(t.startswith("I'm sorry") for t in with_adapter)


def test_an_output_dir_that_is_not_a_training_output_is_never_deleted(demo_models, tmp_path: Path) -> None:
    config = small_candidate(tmp_path, demo_models.base)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("user data")
    with pytest.raises(ConfigError, match=r"train.output_dir: .* exists and is not a training output"):
        ensure_trained(config, "x.yaml", Cache(tmp_path / "c.sqlite"))
    assert (tmp_path / "out" / "precious.txt").read_text() == "user data"
