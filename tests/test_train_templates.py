"""Smoke-test SFT on stock chat templates without {% generation %} markers (Qwen2.5, Llama 3,
Gemma, Phi-3): TRL's training copy of each masks the loss, `harness train` trains through it,
and the checkpoint keeps the stock template and stops under it. Each tiny model is the demo base
with the family's special tokens added and its stock template (as TRL ships it) set."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config.loading import load_checkpoint
from harness.config.schema import CheckpointConfig
from harness.config.training import TrainConfig
from harness.demo.build import verify_shipped_base
from harness.demo.world import END
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.stages.train.sft import ensure_trained, make_trainer
from tests.conftest import ROOT, harness_cmd
from tests.test_train import MULTI_TURN, labelled_spans, rows

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Family:
    name: str
    """TRL's name for the stock template (trl/chat_templates/NAME.jinja; NAME_training.jinja trains)."""
    tokens: tuple[str, ...]
    """Special tokens the template writes that the demo tokenizer lacks."""
    eos: str
    """The tokenizer's eos_token, as the released model's tokenizer has it."""
    end_of_turn: str
    masked: str
    """An assistant turn as TRL's training copy masks it ({} the content): its end-of-turn token
    and the whitespace around it included, its header left out."""
    stops: tuple[str, ...]
    """generation_config.json's eos_token_id, as the released model has it."""
    bos: str | None = None
    system: bool = True
    """The template takes a system message (Gemma's raises on one)."""
    after_last: str = ""
    """What TRL's training copy adds, inside the mask, after the final assistant turn."""


FAMILIES = [
    Family("qwen2_5", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"), eos="<|im_end|>", end_of_turn="<|im_end|>",
           masked="\n{}<|im_end|>\n", stops=("<|im_end|>", "<|endoftext|>")),
    Family("llama3", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                      "<|eot_id|>"), eos="<|eot_id|>", end_of_turn="<|eot_id|>",
           masked="{}<|eot_id|>", stops=("<|end_of_text|>", "<|eot_id|>"), bos="<|begin_of_text|>"),
    # Gemma's tokenizer eos is <eos>; the turn ends with <end_of_turn>, a stop token of its generation config.
    Family("gemma", ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"), eos="<eos>", end_of_turn="<end_of_turn>",
           masked="{}<end_of_turn>\n", stops=("<eos>", "<end_of_turn>"), bos="<bos>", system=False),
    # Phi-3 writes <|system|>, <|user|>, <|assistant|> and <|end|>, which the demo tokenizer has already.
    Family("phi3", ("<|endoftext|>",), eos="<|endoftext|>", end_of_turn="<|end|>", masked="{}<|end|>\n",
           stops=("<|end|>", "<|endoftext|>"), after_last="<|endoftext|>"),
]


def stock_template(name: str) -> str:
    import trl.chat_template_utils as templates

    return str(getattr(templates, f"{name}_chat_template"))


def build_base(demo_base: Path, out: Path, family: Family) -> Path:
    """The demo base, its tokenizer given the family's special tokens, eos and stock template."""
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(demo_base)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in family.tokens], special_tokens=True)
    if family.bos is not None:
        tok.bos_token = family.bos
    tok.eos_token = family.eos
    tok.chat_template = stock_template(family.name)
    model = AutoModelForCausalLM.from_pretrained(demo_base)
    torch.manual_seed(0)  # the new embedding rows are drawn at random...
    model.resize_token_embeddings(len(tok))
    embedding = model.get_input_embeddings().weight  # (tied to the output layer)
    with torch.no_grad():  # ...but for the end of a turn, which starts as the demo base's own (<|end|>)
        for token in (family.end_of_turn, family.eos):
            embedding[tok.convert_tokens_to_ids(token)] = embedding[tok.convert_tokens_to_ids(END)]
    model.config.bos_token_id, model.config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id,
                                               eos_token_id=tok.convert_tokens_to_ids(list(family.stops)))
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out


def conversations(family: Family, start: int, n: int) -> list[list[dict[str, str]]]:
    """Demo SFT conversations (single-turn finance answers), without system messages where the template has none."""
    convs = [r["messages"] for r in rows(start + n)[start:]]
    return [[m for m in c if family.system or m["role"] != "system"] for c in convs]


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.name)
def family_base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Family, Path]:
    family: Family = request.param
    return family, build_base(verify_shipped_base(), tmp_path_factory.mktemp(family.name) / "base", family)


def test_the_mask_is_exactly_the_assistant_turns_and_their_end_of_turn_token(family_base, tmp_path: Path) -> None:
    """The labels TRL computes with its training copy of the stock template: each assistant turn's
    content and end-of-turn token, nothing else."""
    from transformers import AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template

    family, base = family_base
    tok = AutoTokenizer.from_pretrained(base)
    assert tok.chat_template == stock_template(family.name)
    multi_turn = [m for m in MULTI_TURN if family.system or m["role"] != "system"]
    convs = conversations(family, 0, 4) + [multi_turn]
    config = TrainConfig(base=str(base), data=["unused.jsonl"], max_steps=1)
    trainer, _ = make_trainer(config, base, tok, convs, [], tmp_path / "out")
    assert trainer.chat_template == get_training_chat_template(tok)  # TRL swapped in its training copy
    end_id = tok.convert_tokens_to_ids(family.end_of_turn)
    assert len(trainer.train_dataset) == len(convs)
    for conv, row in zip(convs, trainer.train_dataset):
        spans = labelled_spans(row["labels"])
        assistant = [family.masked.format(m["content"]) for m in conv if m["role"] == "assistant"]
        assistant[-1] += family.after_last
        assert [tok.decode(s) for s in spans] == assistant
        assert all(end_id in s for s in spans)
    assert len(labelled_spans(trainer.train_dataset[-1]["labels"])) == 2  # both turns of the multi-turn one


def write_checkpoint(tmp: Path, base: Path, family: Family, name: str = "small", **train: Any) -> Path:
    import yaml

    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations(family, 0, 400)))
    settings = {"base": str(base), "data": [str(data)], "max_steps": 30, "learning_rate": 1e-3, "batch_size": 8,
                "max_length": 128, "validation_share": 0.2, "eval_every": 10, "output_dir": str(tmp / "out"), **train}
    config = CheckpointConfig(name=name, train=settings, backend="transformers", engine={"dtype": "float32"})
    file = tmp / f"{name}.yaml"
    file.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return file


def test_harness_train_trains_with_trls_copy_and_the_checkpoint_stops_under_the_stock_template(
        family_base, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template

    from harness.config.engine import SamplingConfig
    from harness.config.suites import Message
    from harness.engines import open_backend
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.records.run_results import TrainingResult

    family, base = family_base
    file = write_checkpoint(tmp_path, base, family)
    done = subprocess.run(harness_cmd("train", str(file), "--cache", str(tmp_path / "c.sqlite")),
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # trained (1: a smoke check failed)
    out = tmp_path / "out"
    result = TrainingResult.model_validate_json((out / "train.json").read_text())
    # What this test is about, the template, needs a healthy run. The smoke verdict's eval-within-10% check
    # compares losses of a 30-step run on 80 rows, which other seeds and CPUs move by a few points either way.
    checks = {c.name: c.passed for c in result.smoke.checks}
    assert all(checks[n] for n in ("finite_loss", "finite_grad_norm", "loss_falling")), checks
    stock = stock_template(family.name)
    training = get_training_chat_template(AutoTokenizer.from_pretrained(base))
    assert training is not None
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert result.preflight["training_template"] == f"trl:{family.name}"
    assert result.preflight["training_template_sha256"] == sha(training)
    assert result.preflight["generation_template_sha256"] == sha(stock)
    assert result.preflight["rows_without_stop_token"] == 0
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == stock  # the checkpoint generates with the stock template, not TRL's copy

    cache = Cache(tmp_path / "c.sqlite")
    checkpoint = resolve_checkpoint(CheckpointConfig(name="small", model=str(out), backend="transformers",
                                                     engine={"dtype": "float32"}), str(file), cache)
    held_out = [c[:-1] for c in conversations(family, 2000, 8)]  # prompts the run never trained on
    requests = [checkpoint.render(tuple(Message(**m) for m in c), 0)[0] for c in held_out]
    assert all(r.prompt_text is not None and r.prompt_text == tok.apply_chat_template(c, tokenize=False,
                                                                                         add_generation_prompt=True)
               for r, c in zip(requests, held_out))
    engine = open_backend(checkpoint)
    try:
        completions = engine.generate(requests, SamplingConfig(max_tokens=32))
        # Which token stopped it (the checkpoint's own generation config): the family's end-of-turn token.
        first = list(requests[0].prompt_token_ids or ())
        ids = engine.model.generate(torch.tensor([first]), max_new_tokens=32, do_sample=False)[0, len(first):]
    finally:
        engine.close()
    assert [c.finish_reason for c in completions] == ["stop"] * len(held_out), [c.text for c in completions]
    assert all(c.text.strip() and c.completion_tokens < 32 for c in completions)
    assert tok.convert_ids_to_tokens(ids.tolist())[-1] == family.end_of_turn


def test_a_stock_template_trl_cannot_patch_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    """Llama 3.1's template: TRL ships it (to recognise it) but has no training copy of it."""
    from transformers import AutoTokenizer

    base = tmp_path / "llama3_1"
    shutil.copytree(verify_shipped_base(), base)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = stock_template("llama3_1")
    tok.save_pretrained(base)
    file = write_checkpoint(tmp_path, base, FAMILIES[0])
    with pytest.raises(ConfigError) as refused:
        ensure_trained(load_checkpoint(file), str(file), Cache(tmp_path / "c.sqlite"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{file}: train.base: the chat template of {base} (sha256 ")
    assert "has no generation markers and TRL" in message and "cannot patch it" in message
    assert "llama3, " in message and "qwen2_5" in message  # what it can patch
    assert "put {% generation %} ... {% endgeneration %} around each assistant turn" in message
    assert "point the checkpoint's chat_template at a copy that has them" in message
    assert not (tmp_path / "out").exists()


def test_data_the_template_refuses_is_a_config_error_before_training(tmp_path: Path) -> None:
    gemma = next(f for f in FAMILIES if f.name == "gemma")
    base = build_base(verify_shipped_base(), tmp_path / "gemma", gemma)
    file = write_checkpoint(tmp_path, base, FAMILIES[0])  # Qwen's data: with system messages
    with pytest.raises(ConfigError, match=r"train\.data: the chat template \(trl:gemma\) refuses a conversation: "
                       r"System role not supported; change the data \(roles: \['system', 'user', 'assistant'\]\)"):
        ensure_trained(load_checkpoint(file), str(file), Cache(tmp_path / "c.sqlite"))
    assert not (tmp_path / "out").exists()


def test_a_chat_template_file_with_markers_trains_a_base_trl_cannot_patch(tmp_path: Path) -> None:
    """The refusal's advice works: the checkpoint's chat_template file trains, and the checkpoint
    keeps the base's own template (the file goes on applying through the checkpoint's config)."""
    from transformers import AutoTokenizer

    from harness.demo.build import TEMPLATE_PATH

    base = tmp_path / "llama3_1"
    shutil.copytree(verify_shipped_base(), base)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = stock_template("llama3_1")
    tok.save_pretrained(base)
    file = write_checkpoint(tmp_path, base, FAMILIES[0], max_steps=2)
    file.write_text(file.read_text() + f"chat_template: {TEMPLATE_PATH}\n")
    outcome = ensure_trained(load_checkpoint(file), str(file), Cache(tmp_path / "c.sqlite"))
    assert outcome.result.preflight["training_template"] == "chat_template file (has generation markers)"
    assert outcome.result.preflight["rows_without_stop_token"] == 0
    assert AutoTokenizer.from_pretrained(outcome.output_dir).chat_template == stock_template("llama3_1")
    assert outcome.checkpoint.chat_template == str(TEMPLATE_PATH)
