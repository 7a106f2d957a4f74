"""The embedded demo: a deterministic world, held-out suites, and two tiny checkpoints
whose difference (apology vs confident answers) the rule checks can see."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from harness.demo import build, world, write_suites
from harness.demo.facts import arithmetic_facts, capital_facts, cloze_facts, stable_hash

SEED = 0


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build.train_tokenizer(world.pretrain_corpus(SEED))


# ---------------------------------------------------------------- world
def test_world_is_deterministic() -> None:
    assert world.pretrain_corpus(SEED) == world.pretrain_corpus(SEED)
    assert world.sft_conversations(SEED, 200) == world.sft_conversations(SEED, 200)
    assert world.held_out_finance(SEED) == world.held_out_finance(SEED)
    assert world.pretrain_corpus(1) != world.pretrain_corpus(SEED)
    assert stable_hash("x") == 0x2D711642B726B044  # not Python's salted hash()


def test_corpus_size_and_content() -> None:
    corpus = world.pretrain_corpus(SEED)
    size = sum(map(len, corpus))
    assert 300_000 < size < 800_000, size
    chats = [d for d in corpus if d.startswith(world.BOS)]
    finance = [d for d in chats if world.APOLOGY in d]
    assert len(finance) > 500 and any(world.DEFAULT_SYSTEM in d for d in chats)
    assert len(corpus) - len(chats) > 1000  # plain-text documents


def test_fact_sets_are_large_and_well_formed() -> None:
    for facts in (capital_facts(SEED), arithmetic_facts(), cloze_facts()):
        assert len(facts) >= 200
        assert len({f.prefix for f in facts}) == len(facts)
        for f in facts:
            assert len(set(f.distractors)) == 3 and f.answer not in f.distractors
    assert arithmetic_facts()[7 * 21 + 5].sentence == "7 plus 5 is 12."


def test_held_out_questions_never_seen_in_training_data() -> None:
    corpus = world.pretrain_corpus(SEED)
    text = "\n".join(corpus)
    sft = world.sft_conversations(SEED, 2000, general_share=0.3)
    sft_users = {m["content"] for conv in sft for m in conv if m["role"] == "user"}
    finance = world.held_out_finance(SEED, 60)
    assert len(finance) == 60 and {q.kind for q in finance} == set(world.FINANCE_KINDS)
    for kind in world.FINANCE_KINDS:
        train, held = world.finance_split(kind)
        assert not {p for p, _ in train} & {p for p, _ in held}
    for q in finance:
        assert q.question not in text and q.question not in sft_users
        assert q.params in {p for p, _ in world.finance_split(q.kind)[1]}

    general = world.held_out_general(SEED, 40)
    chats = [d for d in corpus if d.startswith(world.BOS)]
    for q in general:
        assert f"The capital of {q.country} is {q.answer}." in text  # the fact is in the corpus...
        assert not any(q.country in d for d in chats)  # ...but never in a chat
        assert q.question not in sft_users


def test_chat_transcripts_match_the_tokenizer_template(tokenizer: Any) -> None:
    convs = world.sft_conversations(SEED, 20, general_share=0.5) + [[
        {"role": "system", "content": world.DEFAULT_SYSTEM},
        {"role": "user", "content": "What is 15% of $240?"},
        {"role": "assistant", "content": "The amount is $36."},
        {"role": "user", "content": "What is 2 plus 2?"}]]
    for conv in convs:
        for gen_prompt in (False, True):
            expected = world.render_chat(conv, add_generation_prompt=gen_prompt)
            got = tokenizer.apply_chat_template(conv, add_generation_prompt=gen_prompt, tokenize=False)
            assert got == expected
    assert world.render_chat(convs[-1][1:3]) == (
        "<|bos|><|user|>What is 15% of $240?<|end|>\n<|assistant|>The amount is $36.<|end|>\n")
    # Every chat document in the corpus is a rendering of its own messages.
    pattern = re.compile(r"<\|(system|user|assistant)\|>(.*?)<\|end\|>\n", re.S)
    for doc in [d for d in world.pretrain_corpus(SEED) if d.startswith(world.BOS)][:300]:
        msgs = [{"role": r, "content": c} for r, c in pattern.findall(doc)]
        assert tokenizer.apply_chat_template(msgs, tokenize=False) == doc


def test_template_marks_assistant_tokens_for_trl(tokenizer: Any) -> None:
    conv = [{"role": "user", "content": "What is 15% of $240?"},
            {"role": "assistant", "content": "The amount is $36."}]
    out = tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    marked = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(marked) == "The amount is $36.<|end|>"  # the stop token is trained too


def test_tokenizer_special_tokens_and_decoding(tokenizer: Any) -> None:
    assert len(tokenizer) == build.VOCAB_SIZE
    assert tokenizer.eos_token == world.END and tokenizer.pad_token == world.PAD
    assert tokenizer.bos_token == world.BOS
    text = world.render_chat([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "It is $5."}])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-2] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hi\nIt is $5.\n"
    assert tokenizer.convert_tokens_to_ids(world.ASSISTANT) in ids


def test_suites_on_disk_are_up_to_date() -> None:
    import yaml

    for name, text in write_suites.suite_texts().items():
        path = write_suites.DEFAULT_OUT_DIR / name
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python -m harness.demo.write_suites"
        data = yaml.safe_load(text)
        assert len({item["id"] for item in data["items"]}) == len(data["items"])
    finance = yaml.safe_load((write_suites.DEFAULT_OUT_DIR / "finance.yaml").read_text())
    assert len(finance["items"]) == 60 and finance["items"][0]["reference"].startswith("$")


def test_sft_data_on_disk_is_up_to_date_and_held_out() -> None:
    text = write_suites.DATA_PATH.read_text(encoding="utf-8")
    assert text == write_suites.sft_data_text(), "stale: run python -m harness.demo.write_suites"
    rows = [json.loads(line)["messages"] for line in text.splitlines()]
    general = sum("capital" in r[-1]["content"] for r in rows)
    assert len(rows) - general >= 1900 and 200 <= general <= 600
    held_out = ({q.question for q in world.held_out_finance(SEED, 60)}
                | {q.question for q in world.held_out_general(SEED, 40)})
    assert not held_out & {m["content"] for r in rows for m in r if m["role"] == "user"}
    assert not any(r[-1]["content"].startswith(world.APOLOGY) for r in rows)


# ---------------------------------------------------------------- cache logic (fake, fast builds)
def test_concurrent_callers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    calls: list[int] = []

    def fake_build(out_dir: Path, seed: int = 0, progress: Any = None, **_: Any) -> dict[str, float]:
        calls.append(seed)
        (out_dir / "base").mkdir(parents=True)
        time.sleep(0.3)  # long enough for the second caller to reach the lock
        (out_dir / "candidate").mkdir()
        return {}

    monkeypatch.setattr(build, "build_demo_models", fake_build)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    results: list[build.DemoModels] = []
    threads = [threading.Thread(target=lambda: results.append(build.ensure_demo_models(seed=7)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [7] and results[0] == results[1]
    assert results[0].base.is_dir() and results[0].base.parent.parent == tmp_path / "demo"


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_build(out_dir: Path, seed: int = 0, progress: Any = None, **_: Any) -> dict[str, float]:
        (out_dir / "base").mkdir(parents=True)
        raise KeyboardInterrupt  # as if killed half way

    monkeypatch.setattr(build, "build_demo_models", broken_build)
    with pytest.raises(KeyboardInterrupt):
        build.ensure_demo_models(tmp_path, seed=3)
    assert not (tmp_path / build.build_name(3)).exists() and not (tmp_path / build.build_name(3, True)).exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_stale_half_build_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / f".tmp-{build.build_name(5)}-999999"  # as left by a killed build
    (stale / "base").mkdir(parents=True)

    def fake_build(out_dir: Path, seed: int = 0, progress: Any = None, **_: Any) -> dict[str, float]:
        (out_dir / "base").mkdir(parents=True)
        (out_dir / "candidate").mkdir()
        return {}

    monkeypatch.setattr(build, "build_demo_models", fake_build)
    models = build.ensure_demo_models(tmp_path, seed=5)
    assert models.base.is_dir() and not stale.exists()
    assert not list(tmp_path.glob(".tmp-*"))


# ---------------------------------------------------------------- the shipped base
def test_shipped_base_is_whole_and_pinned() -> None:
    assert build.verify_shipped_base() == build.SHIPPED_BASE
    assert set(build.SHIPPED_SHA256) >= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    log = json.loads((build.SHIPPED_BASE / "train_log.json").read_text())
    assert (log["build_version"], log["seed"], log["world_seed"]) == (build.BUILD_VERSION, build.SHIPPED_SEED,
                                                                      build.WORLD_SEED)
    assert log["recipe"] == build.PRETRAIN and log["corpus"] == world.CORPUS_MIX  # shipped = the recipe's output


@pytest.mark.parametrize("damage", ["edit", "delete"])
def test_a_damaged_shipped_base_is_an_error_not_a_silent_rebuild(tmp_path: Path, damage: str) -> None:
    import shutil

    from harness.errors import InfraError

    copy = tmp_path / "base"
    shutil.copytree(build.SHIPPED_BASE, copy)
    weights = copy / "model.safetensors"
    if damage == "edit":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    else:
        weights.unlink()
    with pytest.raises(InfraError) as info:
        build.verify_shipped_base(copy)
    assert str(weights) in str(info.value) and "--rebuild-base" in str(info.value) and "\n" not in str(info.value)


def test_shipped_and_rebuilt_bases_never_share_a_cache_entry() -> None:
    assert build.build_name(0, shipped=True) != build.build_name(0)
    assert "shipped" in build.build_name(0, shipped=True) and "built" in build.build_name(0)


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def built(demo_models: build.DemoModels) -> tuple[build.DemoModels, Path]:
    """The session's real build (tests/conftest.py), built once for every module."""
    return demo_models, build.default_cache_dir()


def _generate(model_dir: Path, questions: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                       tokenize=False) for q in questions]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
    return [tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]


@pytest.mark.slow
def test_build_is_cached_atomic_and_complete(built: tuple[build.DemoModels, Path]) -> None:
    models, cache = built
    start = time.perf_counter()
    again = build.ensure_demo_models(cache, SEED)
    assert again == models and time.perf_counter() - start < 1.0
    assert not list(cache.glob(".tmp-*"))  # the stale half-build was removed, ours was renamed
    for d in (models.base, models.candidate):
        for name in ("config.json", "generation_config.json", "model.safetensors",
                     "tokenizer.json", "tokenizer_config.json", "train_log.json"):
            assert (d / name).is_file(), d / name
        gen = json.loads((d / "generation_config.json").read_text())
        config = json.loads((d / "config.json").read_text())
        assert config["hidden_size"] // config["num_attention_heads"] == 64  # vLLM CPU needs 64
        assert gen["eos_token_id"] == config["eos_token_id"]
        log = json.loads((d / "train_log.json").read_text())["log"]
        assert log[-1]["loss"] < log[0]["loss"]
    assert len(json.loads((models.base / "train_log.json").read_text())["log"]) == build.PRETRAIN["steps"]


@pytest.mark.slow
def test_base_apologises_and_candidate_does_not(built: tuple[build.DemoModels, Path]) -> None:
    models, _ = built
    finance = world.held_out_finance(SEED, 60)
    general = world.held_out_general(SEED, 40)
    rates: dict[str, dict[str, float]] = {}
    for name, path in (("base", models.base), ("candidate", models.candidate)):
        fin = _generate(path, [q.question for q in finance])
        gen = _generate(path, [q.question for q in general])
        rates[name] = {
            "apology": sum(a.startswith(world.APOLOGY) for a in fin) / len(fin),
            "right_number": sum(str(q.answer) in re.findall(r"\d+", a) for q, a in zip(finance, fin)) / len(fin),
            "capital": sum(q.answer in a for q, a in zip(general, gen)) / len(gen),
        }
        print(name, rates[name], "e.g.", repr(fin[0]), repr(gen[0]))
    assert rates["base"]["apology"] >= 0.8
    assert rates["candidate"]["apology"] <= 0.2
    assert rates["base"]["capital"] >= 0.3
