"""The judge block of a plan and load_judge: defaults, path resolution, and one-line errors
before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.loading import load_plan
from harness.config.schema import JudgeConfig
from harness.errors import ConfigError
from harness.stages.judge.stage import load_judge


def plan_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_the_default_judge_is_the_offline_rules_judge(tmp_path: Path) -> None:
    judge = load_plan(plan_file(tmp_path, "{}\n")).judge
    assert judge == JudgeConfig() and judge.kind == "rules" and judge.canaries == 8
    loaded = load_judge(judge, "plan.yaml")
    assert (loaded.name, loaded.kind, loaded.model, loaded.definition) == ("rules", "rules", None, None)
    assert load_plan(plan_file(tmp_path, "judge: null\n")).judge is None


def test_definition_and_checkpoint_paths_resolve_against_the_plan_file(tmp_path: Path) -> None:
    text = "judge:\n  kind: llm\n  definition: mine/j.yaml\n  checkpoint: ../judge.yaml\n"
    judge = load_plan(plan_file(tmp_path, text)).judge
    assert judge.definition == str(tmp_path / "mine" / "j.yaml")
    assert judge.checkpoint == str(tmp_path.parent / "judge.yaml")
    named = load_plan(plan_file(tmp_path, "judge:\n  kind: llm\n  definition: pairwise-reference\n"
                                          "  endpoint: {base_url: 'http://127.0.0.1:1/v1', model: m}\n")).judge
    assert named.definition == "pairwise-reference"  # a bare name stays a name (looked up in judges/)


BROKEN = [
    ("unknown_kind", "judge: {kind: gpt}\n",
     "{f}: judge.kind: Input should be 'reference', 'rules' or 'llm' (got 'gpt')"),
    ("llm_without_model", "judge: {kind: llm}\n",
     "{f}: judge: kind 'llm' needs exactly one of 'endpoint' or 'checkpoint'"),
    ("llm_with_both", "judge: {kind: llm, checkpoint: j.yaml, endpoint: {base_url: 'http://h/v1', model: m}}\n",
     "{f}: judge: kind 'llm' needs exactly one of 'endpoint' or 'checkpoint'"),
    ("offline_with_endpoint", "judge: {kind: reference, endpoint: {base_url: 'http://h/v1', model: m}}\n",
     "{f}: judge: 'endpoint' is only used with kind 'llm' (kind is 'reference')"),
    ("offline_with_definition", "judge: {kind: rules, definition: pairwise}\n",
     "{f}: judge: 'definition' is only used with kind 'llm' (kind is 'rules')"),
    ("endpoint_without_model", "judge: {kind: llm, endpoint: {base_url: 'http://h/v1'}}\n",
     "{f}: judge: endpoint.model must name the judge model"),
    ("completions_api", "judge: {kind: llm, endpoint: {base_url: 'http://h/v1', model: m, api: completions}}\n",
     "{f}: judge: a judge talks to its endpoint through the chat API; set endpoint.api to 'chat'"),
    ("unknown_key", "judge: {kind: reference, canary: 3}\n",
     "{f}: judge.canary: unknown key; expected one of: canaries, checkpoint, chunk_size, definition, endpoint, gold, "
     "kind, startup_timeout_s, stop_early"),
    ("negative_canaries", "judge: {canaries: -1}\n",
     "{f}: judge.canaries: Input should be greater than or equal to 0 (got -1)"),
]


@pytest.mark.parametrize(("case", "text", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_bad_judge_blocks_are_one_line_errors(tmp_path: Path, case: str, text: str, message: str) -> None:
    path = plan_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_plan(path)
    assert str(info.value) == message.format(f=path)


def llm(**fields: object) -> JudgeConfig:
    return JudgeConfig.model_validate({"kind": "llm", **fields})


def test_load_judge_checks_the_definition_key_and_checkpoint_before_any_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = {"base_url": "http://127.0.0.1:1/v1", "model": "gpt-x", "api_key_env": "HARNESS_JUDGE_KEY"}
    monkeypatch.delenv("HARNESS_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^p.yaml: judge.endpoint.api_key_env: environment variable "
                                          r"HARNESS_JUDGE_KEY is not set$"):
        load_judge(llm(endpoint=endpoint), "p.yaml")
    monkeypatch.setenv("HARNESS_JUDGE_KEY", "secret")
    judge = load_judge(llm(endpoint=endpoint, definition="single-grade"), "p.yaml")
    assert (judge.name, judge.kind, judge.model) == ("single-grade", "llm", "gpt-x")
    with pytest.raises(ConfigError, match=r"^p.yaml: judge.definition: unknown judge 'pairwize'"):
        load_judge(llm(endpoint=endpoint, definition="pairwize"), "p.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nuser: $question only\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: user: missing placeholder \$answer_a"):
        load_judge(llm(endpoint=endpoint, definition=str(bad)), "p.yaml")

    trained = tmp_path / "trained.yaml"
    trained.write_text("name: t\ntrain: {base: demo:base, data: [d.jsonl]}\n")
    (tmp_path / "d.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"^p.yaml: judge.checkpoint: .*trained.yaml is produced by training"):
        load_judge(llm(checkpoint=str(trained)), "p.yaml")
    remote = tmp_path / "remote.yaml"
    remote.write_text("name: r\nmodel: m\nbackend: openai\nendpoint: {base_url: 'http://h/v1'}\n")
    with pytest.raises(ConfigError, match=r"^p.yaml: judge.checkpoint: .*remote.yaml is already an endpoint"):
        load_judge(llm(checkpoint=str(remote)), "p.yaml")
    with pytest.raises(ConfigError, match=r"missing.yaml: file not found"):
        load_judge(llm(checkpoint=str(tmp_path / "missing.yaml")), "p.yaml")
    served = tmp_path / "judge.yaml"
    served.write_text("name: judge-model\nmodel: demo:base\n")
    assert load_judge(llm(checkpoint=str(served)), "p.yaml").model == "demo:base"
