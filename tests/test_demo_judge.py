"""The demo judge: its data (labels from the world's truth, both orders, the stage's own prompt,
disjoint from the demo suites), the shipped judges (pinned, resolved as `demo:judge`, never silently
rebuilt), the gold set written from held-apart pairs, and the audit's scoring."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.config.suites import load_suite
from harness.demo import judge_build, judge_data, judge_weights, world
from harness.demo.judge_audit import score
from harness.demo.judge_build import JUDGE, JUDGE_VERSION, MAX_POSITIONS, ensure_demo_judge
from harness.demo.judge_weights import SHIPPED_JUDGE_SHA256, SHIPPED_JUDGES, VARIANTS
from harness.engines.checkpoint import local_model_dir
from harness.errors import InfraError
from harness.stages.judge.llm import make_task
from harness.stages.judge.pairs import CANARIES
from harness.stages.judge.prompt import parse_reply, render
from tests.conftest import ROOT

TAG = re.compile(r"<<ANSWER-([0-9a-f]{12})>>")


@pytest.fixture(scope="module")
def pairs() -> list[judge_data.JudgePair]:
    return judge_data.world_pairs(1500, seed=0)


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(value)}(?!\w)", text) is not None


def _facts(pair: judge_data.JudgePair, text: str) -> tuple[bool, bool]:
    """An independent reading of an answer: (states the reference, plain)."""
    return _mentions(text, pair.question.reference), not text.startswith(world.APOLOGY)


def test_labels_follow_the_world_truth(pairs: list[judge_data.JudgePair]) -> None:
    rules = Counter(p.rule for p in pairs)
    assert set(rules) == {"correct", "plain", "tie"} | {f"canary:{k}" for k in CANARIES}
    for p in pairs:
        better = {"first": p.first, "second": p.second}.get(p.truth)
        worse = {"first": p.second, "second": p.first}.get(p.truth)
        if p.canary is not None:  # a canary always loses, to any real answer
            assert worse is not None and better is not None
            assert worse == CANARIES[p.canary](p.question.question, better) or p.canary in ("injection", "padded")
            if p.canary == "padded":
                assert worse.startswith(better) and len(worse) > len(better)
            if p.canary == "empty":
                assert worse == ""
            if p.canary == "question":
                assert worse == p.question.question
            if p.canary == "injection":
                assert re.search(r"\b(output|verdict|winner)\b", worse, re.IGNORECASE)
            continue
        first, second = _facts(p, p.first), _facts(p, p.second)
        if p.rule == "correct":  # the reference wins, however it is written
            assert better is not None and worse is not None
            assert _facts(p, better)[0] and not _facts(p, worse)[0]
        elif p.rule == "plain":  # equally correct; the apology loses
            assert better is not None and worse is not None
            assert first[0] == second[0]
            assert _facts(p, better)[1] and not _facts(p, worse)[1]
        else:  # the same content, or equally correct and equally plain
            assert p.truth == "tie" and first == second


def test_plain_beats_apology_with_the_same_amount(pairs: list[judge_data.JudgePair]) -> None:
    same = [p for p in pairs if p.rule == "plain" and p.question.kind != "capital"
            and re.findall(r"\$\d+", p.first) == re.findall(r"\$\d+", p.second)]
    assert len(same) > 50
    for p in same:
        winner = p.first if p.truth == "first" else p.second
        assert not winner.startswith(world.APOLOGY)
    identical = [p for p in pairs if p.first == p.second]
    assert identical and all(p.truth == "tie" for p in identical)


def test_every_pair_is_in_both_orders_with_mirrored_verdicts(pairs: list[judge_data.JudgePair]) -> None:
    examples = judge_data.examples(pairs[:300])
    assert len(examples) == 600
    mirror = {"A": "B", "B": "A", "tie": "tie"}
    for ab, ba in zip(examples[0::2], examples[1::2]):
        assert ab.pair is ba.pair and not ab.swapped and ba.swapped
        assert ba.verdict == mirror[ab.verdict]
        assert _answers(ab) == _answers(ba)[::-1]
    verdicts = Counter(e.verdict for e in examples)
    assert verdicts["A"] == verdicts["B"] > 0  # no side is favoured by the data


def test_the_one_order_variant_only_shows_a_as_the_better_answer(pairs: list[judge_data.JudgePair]) -> None:
    examples = judge_data.examples(pairs[:300], orders="a_better")
    assert len(examples) == 300
    assert {e.verdict for e in examples} == {"A", "tie"}


def _answers(example: judge_data.JudgeExample) -> tuple[str, str]:
    user = example.messages[-1][1]
    tag = TAG.search(user)
    assert tag is not None
    found = re.findall(rf"<<ANSWER-{tag.group(1)}>>\n(.*?)\n<<END-{tag.group(1)}>>", user, re.DOTALL)
    assert len(found) == 2
    return found[0], found[1]


def test_targets_are_the_strict_verdict_the_stage_parses(pairs: list[judge_data.JudgePair]) -> None:
    """One JSON object, the reason first: it says what each answer gives (or which canary it is), so the
    verdict follows from what the judge has just written."""
    for example in judge_data.examples(pairs[:400]):
        parsed = parse_reply(example.target, "pairwise")
        assert parsed is not None and parsed.verdict == example.verdict
        a, b = example.pair.answers[::-1] if example.swapped else example.pair.answers
        assert parsed.reason == f"The reference is {example.pair.question.reference}; A {a.note}; B {b.note}."
        assert example.target.startswith('{"reason": ') and example.target.endswith(f'"verdict": "{parsed.verdict}"}}')
        if example.pair.canary is None:
            assert f"says {a.value} (" in parsed.reason and f"says {b.value} (" in parsed.reason


def test_prompts_are_what_the_stage_renders(pairs: list[judge_data.JudgePair]) -> None:
    """The messages are the stage's own (make_task), up to the per-call delimiter tag, which is drawn the
    same way (12 hex digits from prompt.delimiter_tag) and differs from call to call."""
    loaded = judge_data.definition()
    assert loaded.definition.name == judge_data.DEFINITION == "pairwise-reference"
    examples = judge_data.examples(pairs[:200])
    tags = set()
    for example in examples:
        tag = TAG.search(example.messages[-1][1])
        assert tag is not None
        tags.add(tag.group(1))
        a, b = _answers(example)
        q = example.pair.question
        assert example.messages == render(loaded, q.question, q.reference, {"answer_a": a, "answer_b": b},
                                          tag.group(1))
        task = make_task({"checkpoint": "demo-judge"}, loaded, q.question, q.reference,
                         {"answer_a": a, "answer_b": b}, seed=0)
        stage_tag = TAG.search(task.messages[-1][1])
        assert stage_tag is not None
        assert [(r, t.replace(stage_tag.group(1), "TAG")) for r, t in task.messages] == \
               [(r, t.replace(tag.group(1), "TAG")) for r, t in example.messages]
    assert [role for role, _ in examples[0].messages] == ["system", "user"]
    assert len(tags) == len(examples)


def test_data_is_disjoint_from_the_demo_suites() -> None:
    """No judge training prompt asks a demo suite question (the suites are held out for the verdict)."""
    suite_questions = {item.conversation[-1].content for name in ("finance", "general")
                       for item in load_suite(ROOT / "suites" / "demo" / f"{name}.yaml").items}
    assert len(suite_questions) == 100
    from harness.demo.judge_build import JUDGE

    examples = judge_data.examples(judge_data.world_pairs(JUDGE["pairs"], seed=0))
    for example in examples:
        prompt = example.messages[-1][1]
        question = prompt.split("[Question]\n", 1)[1].split("\n\n[Reference answer]", 1)[0]
        assert question == example.pair.question.question
        assert question not in suite_questions
    # The audit's pairs come from the held-out split, never the training one.
    trained = {e.pair.question.question for e in examples}
    assert not trained & {p.question.question for p in judge_data.audit_pairs(seed=1, per_rule=40)}


def test_audit_scores_a_perfect_and_a_position_biased_judge() -> None:
    pairs = judge_data.audit_pairs(seed=1, per_rule=5)
    truth_ab = [judge_data.verdict_of(p, False) for p in pairs]
    truth_ba = [judge_data.verdict_of(p, True) for p in pairs]
    perfect = score(pairs, truth_ab, truth_ba)
    assert (perfect.accuracy, perfect.kappa, perfect.swap_consistency, perfect.parse_rate) == (1, 1, 1, 1)
    assert perfect.position_bias is None and perfect.longer_picked_in_ties == 0
    assert set(perfect.canary_never_wins.values()) == {1.0}
    always_a = score(pairs, ["A"] * len(pairs), ["A"] * len(pairs))
    assert always_a.position_bias == 1.0 and always_a.swap_consistency == 0.0
    assert always_a.canary_never_wins == {k: 1.0 for k in CANARIES}  # inconsistent: a tie, never a win
    assert always_a.accuracy < 0.5 and always_a.kappa is not None and always_a.kappa < 0.2


def test_the_shipped_judges_are_whole_pinned_and_trained_on_todays_definition() -> None:
    """Both variants verify against their digests, and were trained on the prompts the stage renders now: a change
    to judges/pairwise-reference.yaml must retrain and re-pin them (python -m harness.demo.judge_build --rebuild)."""
    loaded = judge_data.definition()
    for variant in VARIANTS:
        path = ensure_demo_judge(variant=variant)
        assert path == SHIPPED_JUDGES / variant
        assert sorted(f.name for f in path.iterdir()) == sorted(SHIPPED_JUDGE_SHA256[variant])
        info = json.loads((path / "train_log.json").read_text())
        assert (info["variant"], info["seed"], info["judge_version"]) == (variant, 0, JUDGE_VERSION)
        assert info["recipe"] == JUDGE and info["definition_sha256"] == loaded.sha256
        config = json.loads((path / "config.json").read_text())
        assert config["max_position_embeddings"] == MAX_POSITIONS
        template = ROOT / "harness" / "demo" / "chat_template.jinja"
        assert (path / "chat_template.jinja").read_text() == template.read_text()
    assert local_model_dir("demo:judge", None, "judge.yaml") == SHIPPED_JUDGES / "balanced"


@pytest.mark.parametrize("damage", ["missing", "changed"])
def test_a_damaged_shipped_judge_is_an_error_not_a_silent_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   damage: str) -> None:
    copy = tmp_path / "judges"
    shutil.copytree(SHIPPED_JUDGES, copy)
    weights = copy / "balanced" / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    monkeypatch.setattr(judge_weights, "SHIPPED_JUDGES", copy)
    with pytest.raises(InfraError, match="model.safetensors: (missing from|sha256 .* is not the pinned)"):
        ensure_demo_judge(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing was trained in its place


def test_a_rebuilt_judge_is_cached_apart_from_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_build(out: Path, seed: int = 0, variant: str = "balanced", progress: Any = None) -> dict[str, float]:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return {}

    monkeypatch.setattr(judge_build, "build_judge", fake_build)
    built = ensure_demo_judge(cache_dir=tmp_path, rebuild=True)
    assert built.parent == tmp_path and built.name == judge_build.judge_name(0, "balanced")
    assert (built / "config.json").is_file() and not list(tmp_path.glob(".tmp-*"))
    assert ensure_demo_judge(cache_dir=tmp_path, seed=3) != built  # another seed: another build
    assert ensure_demo_judge(cache_dir=tmp_path) == SHIPPED_JUDGES / "balanced"


@pytest.mark.slow
def test_the_audit_puts_held_apart_pairs_to_the_judge_through_transformers() -> None:
    """The maintainers' audit (judge_build --audit) on a few pairs: both orders, the stage's parser, the truth. The
    vLLM-served path and the bars the judge must clear are tested through the judge stage (test_demo_llm_judge)."""
    from harness.demo.judge_audit import audit

    result = audit(ensure_demo_judge(), seed=1, per_rule=2)
    print(f"\ndemo judge, 14 audit pairs through transformers: parse {result.parse_rate:.1%}, accuracy "
          f"{result.accuracy:.1%}, swap consistency {result.swap_consistency:.1%}")
    assert (result.pairs, result.calls) == (14, 28)
    assert set(result.by_rule) == {"correct", "plain", "tie"} | {f"canary:{k}" for k in CANARIES}
    assert result.parse_rate >= 0.9 and result.accuracy >= 0.7


def test_the_gold_set_on_disk_is_the_audit_pairs_with_their_truth() -> None:
    """examples/data/demo-judge-gold.jsonl: what write_suites writes, loadable as a judge.gold set, answer_a the
    pair's first answer and the label the world's truth for that order."""
    from harness.demo.write_suites import GOLD_PATH
    from harness.stages.judge.gold import load_gold

    assert GOLD_PATH.read_text(encoding="utf-8") == judge_data.gold_text(), \
        f"{GOLD_PATH} is stale: run python -m harness.demo.write_suites"
    gold = load_gold(str(GOLD_PATH), "plan")
    pairs = judge_data.audit_pairs(judge_data.GOLD_SEED, judge_data.GOLD_PER_RULE)
    assert len(gold.pairs) == len(pairs) == 70
    assert gold.labels == [judge_data.verdict_of(p, False) for p in pairs]
    assert [(g.base, g.candidate, g.item.reference) for g in gold.pairs] == \
           [(p.first, p.second, p.question.reference) for p in pairs]
    assert Counter(gold.labels) == {"A": Counter(gold.labels)["A"], "B": Counter(gold.labels)["B"], "tie": 10}
    assert min(Counter(gold.labels)["A"], Counter(gold.labels)["B"]) >= 20  # both positions labelled better
