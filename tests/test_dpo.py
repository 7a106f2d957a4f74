"""Smoke-test DPO (harness/stages/train/dpo.py): preference data in its forms, the DPO smoke verdict on
made-up curves, and real TRL DPOTrainer runs on the demo base: a healthy preference set passes, an
absurd learning rate fails with the reason named, and a compare with the DPO checkpoint shows its
reward curves on the report's Training page."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
from pathlib import Path

import pytest

from harness.config.schema import CheckpointConfig
from harness.config.training import TrainConfig
from harness.errors import ConfigError
from harness.records.cache import Cache
from harness.stages.train.data import Bad
from harness.stages.train.preference_data import load_preferences, parse_pair
from harness.stages.train.sft import ensure_trained, train_hash
from harness.stages.train.smoke import CHOSEN_DROP_LIMIT, DpoStep, dpo_smoke_verdict
from tests.conftest import ROOT, harness_cmd

SFT_DATA = ROOT / "examples" / "data" / "demo-sft.jsonl"


def preference_file(path: Path, n: int = 300, seed: int = 0) -> Path:
    """The demo SFT answers as the chosen side, the same answer with a wrong amount as the rejected one."""
    rng = random.Random(seed)
    rows = []
    for line in SFT_DATA.read_text().splitlines():
        messages = json.loads(line)["messages"]
        good = messages[-1]["content"]
        amount = re.search(r"\$(\d+)", good)
        if amount is None:
            continue
        bad = good.replace(amount.group(0), f"${int(amount.group(1)) + rng.choice([-7, 3, 11, 25])}", 1)
        rows.append({"prompt": messages[:-1], "chosen": [{"role": "assistant", "content": good}],
                     "rejected": [{"role": "assistant", "content": bad}]})
        if len(rows) == n:
            break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------- data
def test_preference_rows_in_every_form_become_one_conversational_pair() -> None:
    explicit, form = parse_pair({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."})
    assert form == "preference" and explicit.row() == {
        "prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}]}
    conversational, _ = parse_pair({"prompt": [{"role": "system", "content": "Be kind."},
                                               {"role": "user", "content": "Hi?"}],
                                    "chosen": [{"role": "assistant", "content": "Hello."}],
                                    "rejected": [{"role": "assistant", "content": "Go away."}]})
    assert conversational.prompt[0] == {"role": "system", "content": "Be kind."}
    turn = [{"role": "user", "content": "Hi?"}]
    implicit, form = parse_pair({"chosen": turn + [{"role": "assistant", "content": "Hello."}],
                                 "rejected": turn + [{"role": "assistant", "content": "Go away."}]})
    assert form == "preference-implicit" and implicit == explicit
    for row, reason in (({"prompt": "Hi?", "chosen": "Same.", "rejected": "Same."}, "are the same answer"),
                        ({"messages": turn}, "an SFT row"),
                        ({"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
                         "must end with a user turn"),
                        ({"prompt": "Hi?", "chosen": "", "rejected": "b"}, "'chosen' is empty"),
                        ({"chosen": turn + [{"role": "assistant", "content": "a"}],
                          "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": "b"}]},
                         "the same conversation up to their last turn")):
        with pytest.raises(Bad, match=reason):
            parse_pair(row)


def test_too_many_bad_preference_rows_stop_before_any_model_loads(tmp_path: Path) -> None:
    good = preference_file(tmp_path / "good.jsonl", n=10)
    loaded = load_preferences([good])
    assert len(loaded.pairs) == 10 and loaded.formats == {str(good): "preference"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"prompt": "q", "chosen": "a", "rejected": "a"}\nnot json\n')
    with pytest.raises(ConfigError, match=rf"{bad}: line 11: 2 of 12 rows are not valid preference .*same answer"):
        load_preferences([bad])


def test_the_train_block_says_which_settings_belong_to_which_method() -> None:
    def train(**settings: object) -> TrainConfig:
        return TrainConfig.model_validate({"base": "b", "data": ["d.jsonl"], **settings})

    assert train(method="dpo").dpo.beta == 0.1 and train(method="dpo", format="preference").format == "preference"
    for config in (train(), train(method="dpo", dpo={"beta": 0.3})):  # a dumped config spells out every default
        assert TrainConfig.model_validate(config.model_dump()) == config
    assert train(dpo={"beta": 0.1}).method == "sft"  # the defaults, written out, are not a DPO setting
    for settings, message in (({"dpo": {"beta": 0.5}}, "'dpo' settings are only used with method 'dpo'"),
                              ({"format": "preference"}, "format 'preference' is DPO data"),
                              ({"method": "dpo", "format": "messages"}, "trains on preference pairs"),
                              ({"method": "dpo", "eval_every": 5}, "'eval_every' is only used with method 'sft'"),
                              ({"method": "dpo", "dpo": {"beta": 0}}, "greater than 0")):
        with pytest.raises(ValueError, match=message):
            train(**settings)


def test_the_dpo_hash_is_of_the_pairs_not_of_the_other_fields_of_their_file(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "model.safetensors").write_bytes(b"weights")
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(4)]

    def data(name: str, rows: list[dict], **extra: str) -> str:
        path = tmp_path / name
        path.write_text("".join(json.dumps({**r, **extra}) + "\n" for r in rows))
        return str(path)

    cache = Cache(tmp_path / "cache.sqlite")
    try:
        def digest(file: str) -> str:
            return train_hash(TrainConfig(base=str(base), data=[file], method="dpo"), base, cache)

        first = digest(data("a.jsonl", rows, run_id="run-1"))
        # Another run exported the same pairs: its run id changes nothing trained, so the result is reused.
        assert digest(data("b.jsonl", rows, run_id="run-2")) == first
        changed = [*rows[:3], {**rows[3], "chosen": "better 3"}]
        assert digest(data("c.jsonl", changed, run_id="run-1")) != first
    finally:
        cache.close()


# ---------------------------------------------------------------------------- the verdict
def curve(n: int = 30, margin_end: float = 2.0, accuracy_end: float = 0.9, chosen_end: float = -0.3,
          rejected_end: float = -2.3, loss_end: float = 0.25) -> list[DpoStep]:
    """A DPO run's logged means going linearly from the start (everything at the reference) to the end."""
    steps = []
    for i in range(n):
        f = i / (n - 1)
        steps.append(DpoStep(loss=0.693 + f * (loss_end - 0.693), margin=f * margin_end,
                             accuracy=0.5 + f * (accuracy_end - 0.5), chosen_reward=f * chosen_end,
                             rejected_reward=f * rejected_end, chosen_logp=-90.0 + 10 * f * chosen_end))
    return steps


def test_the_dpo_verdict_passes_a_healthy_curve_and_names_what_failed() -> None:
    healthy = dpo_smoke_verdict(curve(), beta=0.1)
    assert healthy.passed and {c.name for c in healthy.checks} == {
        "completed", "finite_loss", "loss_falling", "margin_growing", "reward_accuracy", "chosen_logp_kept",
        "near_reference"}
    # Both answers pushed down hard (the margin still growing): the known DPO failure.
    collapse = dpo_smoke_verdict(curve(chosen_end=-38.0, rejected_end=-41.0), beta=0.1)
    failed = {r.split(":")[0] for r in collapse.reasons}
    assert not collapse.passed and failed == {"chosen_logp_kept", "near_reference"}
    # Where the line is: the chosen answers losing just under / over CHOSEN_DROP_LIMIT of the reference's log-prob.
    reference = 90.0  # chosen_logp = -90 + chosen_reward / beta at the end: the reference is -90
    for lost, passed in ((CHOSEN_DROP_LIMIT - 0.01, True), (CHOSEN_DROP_LIMIT + 0.01, False)):
        end = -lost * reference * 0.1
        verdict = dpo_smoke_verdict(curve(n=2, chosen_end=end, rejected_end=end - 0.5), beta=0.1)
        assert ("chosen_logp_kept" not in {r.split(":")[0] for r in verdict.reasons}) == passed, lost
    chance = dpo_smoke_verdict(curve(accuracy_end=0.55), beta=0.1)
    assert [r.split(":")[0] for r in chance.reasons] == ["reward_accuracy"]
    flat = dpo_smoke_verdict(curve(margin_end=0.0, loss_end=0.7), beta=0.1)
    assert {r.split(":")[0] for r in flat.reasons} >= {"loss_falling", "margin_growing"}
    broken = curve()
    broken[5] = DpoStep(math.nan, 0.1, 0.5, 0.0, 0.0, -90.0)
    assert dpo_smoke_verdict(broken, beta=0.1).reasons == ["finite_loss: loss nan, margin 0.1 at step 6"]
    assert dpo_smoke_verdict([], beta=0.1, crashed="out of memory").reasons[0] == "completed: out of memory"


# ---------------------------------------------------------------------------- real TRL
def dpo_candidate(base: Path, data: Path, **train: object) -> CheckpointConfig:
    settings = {"base": str(base), "data": [str(data)], "method": "dpo", "max_steps": 30, "batch_size": 16,
                "learning_rate": 5e-4, "warmup_ratio": 0.1, "max_length": 256, **train}
    return CheckpointConfig(name="dpo", train=settings, backend="transformers", engine={"dtype": "float32"})


def test_a_healthy_preference_set_passes_and_a_rerun_is_reused(demo_models, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    data = preference_file(tmp_path / "prefs.jsonl")
    config = dpo_candidate(demo_models.base, data, output_dir=str(tmp_path / "out"))
    outcome = ensure_trained(config, str(tmp_path / "dpo.yaml"), cache)
    result = outcome.result
    assert result.method == "dpo" and result.smoke.passed, result.smoke.reasons
    assert len(outcome.steps) == 30 and all(s.reward_margin is not None for s in outcome.steps)
    assert outcome.steps[-1].reward_margin > outcome.steps[0].reward_margin  # type: ignore[operator]
    assert result.data.kept == 300 and result.preflight["beta"] == 0.1
    # The trained weights are an ordinary model dir the engines load.
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(outcome.output_dir)
    again = ensure_trained(config, str(tmp_path / "dpo.yaml"), cache)
    assert again.reused and again.result.train_hash == result.train_hash
    # beta is part of what a run produces: another beta trains again.
    other = config.train.model_copy(update={"dpo": config.train.dpo.model_copy(update={"beta": 0.2})})
    assert train_hash(other, demo_models.base, cache) != result.train_hash
    cache.close()


def test_an_absurd_learning_rate_fails_with_the_reason_named(demo_models, tmp_path: Path) -> None:
    # lr 0.05: loss falls and the margin grows, but both answers' log-probabilities collapse, the known
    # failure the margin alone hides.
    cache = Cache(tmp_path / "c.sqlite")
    data = preference_file(tmp_path / "prefs.jsonl")
    outcome = ensure_trained(dpo_candidate(demo_models.base, data, learning_rate=5e-2,
                                           output_dir=str(tmp_path / "out")), "dpo.yaml", cache)
    failed = {r.split(":")[0] for r in outcome.result.smoke.reasons}
    assert not outcome.result.smoke.passed and failed & {"chosen_logp_kept", "near_reference", "finite_loss"}
    cache.close()


@pytest.mark.slow
def test_a_compare_with_a_dpo_candidate_shows_its_reward_curves(demo_models, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.report.launcher import APP, RUNS_DIR_ENV

    preference_file(tmp_path / "prefs.jsonl")
    (tmp_path / "dpo.yaml").write_text(
        f"name: demo-dpo\nbackend: transformers\nengine: {{dtype: float32}}\n"
        f"train: {{base: {demo_models.base}, data: [prefs.jsonl], method: dpo, max_steps: 20, batch_size: 16, "
        f"learning_rate: 5.0e-4, max_length: 256}}\n")
    args = ["compare", str(demo_models.base), str(tmp_path / "dpo.yaml"), "--limit", "2", "--backend", "transformers",
            "--set", "plan.gates=[]", "--set", "plan.forgetting=null", "--run-dir", str(tmp_path / "runs" / "run"),
            "--cache", str(tmp_path / "c.sqlite")]
    result = subprocess.run(harness_cmd(*args), capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr
    training = json.loads((tmp_path / "runs" / "run" / "manifest.json").read_text())["stages"]["train"]
    assert training["results"]["candidate"]["method"] == "dpo"
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["run"] = "run"
    at.run()
    at.switch_page("views/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Preference optimisation" in [h.value for h in at.subheader]
