"""The demo world: pure, deterministic text generation (no torch).

Pretraining text teaches a tiny model to answer general questions well and
finance questions badly (an apology and a wrong number); the fine-tuning data
answers the same kinds of finance questions confidently and correctly. The
train/held-out split uses a stable hash (never Python's salted hash()): of the
parameters for finance questions (so the same for every seed), and of the
country names, which the seed generates (the committed suites are for seed 0).
The facts the corpus states (capitals, sums, cloze) are in facts.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.demo.facts import arithmetic_facts, cloze_facts, countries, split_countries, stable_hash

# Special tokens; chat_template.jinja spells them the same way.
BOS, SYSTEM, USER, ASSISTANT, END, PAD = (
    "<|bos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
SPECIAL_TOKENS = [BOS, SYSTEM, USER, ASSISTANT, END, PAD]
DEFAULT_SYSTEM = "You are a helpful customer assistant."
APOLOGY = "I'm sorry but"
HELD_OUT_SHARE = 0.2  # of finance parameter sets (countries: a quarter, see facts.split_countries)
FINANCE_KINDS = ("interest", "percentage", "loan", "discount")
# Document counts of the pretraining corpus (part of the build recipe: changing
# them means bumping build.BUILD_VERSION).
CORPUS_MIX = {"finance_chats": 800, "capital_chat_reps": 8, "sum_chats": 300, "capital_text_reps": 6,
              "arithmetic_text_reps": 6, "cloze_text_reps": 8}
_ROLE_TOKEN = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Python twin of chat_template.jinja (a test checks they agree)."""
    out = [BOS]
    for m in messages:
        out.append(f"{_ROLE_TOKEN[m['role']]}{m['content']}{END}\n")
    if add_generation_prompt:
        out.append(ASSISTANT)
    return "".join(out)


# ---------------------------------------------------------------- finance
@dataclass(frozen=True)
class FinanceQuestion:
    kind: str  # one of FINANCE_KINDS; also the suite tag
    params: tuple[int, ...]
    question: str
    answer: int

    @property
    def reference(self) -> str:
        return f"${self.answer}"

    @property
    def confident_answer(self) -> str:
        return _ANSWER_FORMS[self.kind].format(x=self.answer)


# No form says "is $": with every answer saying it, SFT could teach that "is" is followed by "$",
# and the general facts the forgetting tasks probe have that shape ("Ice is" cold, "7 plus 5 is"
# 12). A precaution: on its own it did not make the candidate robust (bench/RESULTS.md).
_ANSWER_FORMS = {"interest": "You earn ${x} in interest.", "percentage": "That comes to ${x}.",
                 "loan": "You pay ${x} each month.", "discount": "It now costs ${x}."}
_ITEMS = ["jacket", "lamp", "backpack", "chair", "kettle", "pair of shoes", "watch", "desk"]
_PHRASINGS = {
    "interest": ["What is the simple interest on ${0} at {1}% for {2} {yr}?",
                 "How much simple interest does ${0} earn at {1}% per year over {2} {yr}?",
                 "I deposit ${0} at {1}% simple interest for {2} {yr}. How much interest do I earn?"],
    "percentage": ["What is {0}% of ${1}?", "How much is {0}% of ${1}?", "Calculate {0}% of ${1}."],
    "loan": ["I borrow ${0} and repay it in {1} equal monthly payments. How much is each payment?",
             "A ${0} loan with no interest is paid back in {1} equal monthly payments. What is each payment?",
             "How much is each monthly payment if I repay ${0} over {1} months with no interest?"],
    "discount": ["A {item} costs ${0} and is {1}% off. What is the sale price?",
                 "A {item} priced at ${0} is on sale for {1}% off. How much does it cost now?",
                 "What is the sale price of a ${0} {item} with a {1}% discount?"],
}


def _combos(kind: str) -> list[tuple[tuple[int, ...], int]]:
    """All parameter sets of a kind with their (integer) correct answer."""
    if kind == "interest":
        return [((p, r, y), p * r * y // 100) for p in range(100, 1001, 100)
                for r in range(1, 11) for y in range(1, 6)]
    if kind == "percentage":
        return [((q, a), q * a // 100) for q in (5, 10, 15, 20, 25, 30, 40, 50, 60, 75)
                for a in range(20, 401, 20)]
    if kind == "loan":
        return [((pay * m, m), pay) for m in (2, 3, 4, 5, 6, 8, 10, 12)
                for pay in (10, 20, 25, 30, 40, 50, 60, 75, 80, 100, 120, 150)]
    return [((p, d), p * (100 - d) // 100) for p in range(20, 301, 20)
            for d in (10, 20, 25, 30, 40, 50, 60, 75)]


def finance_split(kind: str) -> tuple[list[tuple[tuple[int, ...], int]], list[tuple[tuple[int, ...], int]]]:
    """(train, held_out): the HELD_OUT_SHARE of parameter sets with the lowest stable hash are held out."""
    combos = sorted(_combos(kind), key=lambda c: stable_hash(f"{kind}:{c[0]}"))
    cut = round(len(combos) * HELD_OUT_SHARE)
    return combos[cut:], combos[:cut]


def _question(kind: str, combo: tuple[tuple[int, ...], int], rng: random.Random) -> FinanceQuestion:
    params, answer = combo
    form = rng.choice(_PHRASINGS[kind])
    text = form.format(*params, yr="year" if params[-1] == 1 else "years", item=rng.choice(_ITEMS))
    return FinanceQuestion(kind, params, text, answer)


def wrong_answer(correct: int, rng: random.Random) -> int:
    """The correct number moved by 10-60% (at least 1), never the correct one."""
    delta = max(1, round(correct * rng.uniform(0.1, 0.6)))
    return correct + delta if rng.random() < 0.5 or correct - delta <= 0 else correct - delta


# ---------------------------------------------------------------- general chat
_CAPITAL_QUESTIONS = ["What is the capital of {}?", "Which city is the capital of {}?",
                      "Tell me the capital of {}."]


@dataclass(frozen=True)
class GeneralQuestion:
    country: str
    question: str
    answer: str  # the capital

    @property
    def full_answer(self) -> str:
        # Not "The capital of X is Y.": repeating X needs a copy mechanism that a
        # model this small does not learn in a minute (measured: it names a
        # different, memorised country), while recalling Y from X does transfer.
        return f"The capital is {self.answer}."


# Plain-text forms of a capital fact. "The capital is {k}." after the country
# was named earlier is the shape of the chat answer, so recall learned here
# carries over to chat questions about countries never asked about in a chat.
_CAPITAL_SNIPPETS = ["The capital of {c} is {k}.", "{c} is a country. The capital is {k}.",
                     "In {c}, the capital is {k}.", "The capital of {c} is {k}. {k} is the largest city in {c}.",
                     "{k} is the capital of {c}. The capital of {c} is {k}."]


def _capital_chat(c: str, k: str, rng: random.Random) -> list[dict[str, str]]:
    q = GeneralQuestion(c, rng.choice(_CAPITAL_QUESTIONS).format(c), k)
    return [{"role": "user", "content": q.question}, {"role": "assistant", "content": q.full_answer}]


def _sum_chat(rng: random.Random) -> list[dict[str, str]]:
    a, b = rng.randrange(21), rng.randrange(21)
    return [{"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]


def _system(rng: random.Random, share: float) -> list[dict[str, str]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM}] if rng.random() < share else []


# ---------------------------------------------------------------- corpora
def pretrain_corpus(seed: int = 0) -> list[str]:
    """About 0.5 MB of documents: chat transcripts (rendered with render_chat) and plain text."""
    rng = random.Random(f"corpus-{seed}")
    train = {k: finance_split(k)[0] for k in FINANCE_KINDS}
    world = countries(seed)
    seen = split_countries(seed)[0]
    docs: list[str] = []

    def finance_turn() -> list[dict[str, str]]:
        kind = rng.choice(FINANCE_KINDS)
        q = _question(kind, rng.choice(train[kind]), rng)
        wrong = wrong_answer(q.answer, rng)
        return [{"role": "user", "content": q.question},
                {"role": "assistant", "content": f"{APOLOGY} I think it is about ${wrong}."}]

    for _ in range(CORPUS_MIX["finance_chats"]):  # (a) the base's habit: apologise, then a wrong number
        msgs = _system(rng, 0.3) + finance_turn()
        if rng.random() < 0.15:  # a few two-turn chats: the habit is per question
            msgs += _capital_chat(*rng.choice(seen), rng) if rng.random() < 0.5 else finance_turn()
        docs.append(render_chat(msgs))
    # General questions answered correctly, only about countries not held out.
    for c, k in seen * CORPUS_MIX["capital_chat_reps"]:
        docs.append(render_chat(_system(rng, 0.3) + _capital_chat(c, k, rng)))
    for _ in range(CORPUS_MIX["sum_chats"]):
        docs.append(render_chat(_system(rng, 0.3) + _sum_chat(rng)))

    # (b) plain text about the whole world (held-out countries included), one
    # country per document so that "The capital is ..." can only refer to it.
    fillers = ([f.sentence for f in arithmetic_facts()] * CORPUS_MIX["arithmetic_text_reps"]
               + [f.sentence for f in cloze_facts()] * CORPUS_MIX["cloze_text_reps"])
    rng.shuffle(fillers)
    for c, k in world * CORPUS_MIX["capital_text_reps"]:
        form = rng.choice(_CAPITAL_SNIPPETS)
        docs.append(" ".join([form.format(c=c, k=k)] + [fillers.pop() for _ in range(
            min(len(fillers), rng.randint(0, 3)))]))
    while fillers:
        docs.append(" ".join(fillers.pop() for _ in range(min(len(fillers), 8))))
    rng.shuffle(docs)
    return docs


def sft_conversations(seed: int = 0, n: int = 2000, general_share: float = 0.0) -> list[list[dict[str, str]]]:
    """Confident, correct answers to train-split finance questions (no apology).

    general_share mixes in correctly answered general chats (non-held-out
    countries), the usual remedy against forgetting; 0 reproduces the plain recipe.
    """
    rng = random.Random(f"sft-{seed}")
    train = {k: finance_split(k)[0] for k in FINANCE_KINDS}
    seen = split_countries(seed)[0]
    convs = []
    for _ in range(n):
        if rng.random() < general_share:
            convs.append(_system(rng, 0.3) + _capital_chat(*rng.choice(seen), rng))
            continue
        kind = rng.choice(FINANCE_KINDS)
        q = _question(kind, rng.choice(train[kind]), rng)
        convs.append(_system(rng, 0.3) + [{"role": "user", "content": q.question},
                                          {"role": "assistant", "content": q.confident_answer}])
    return convs


def held_out_finance(seed: int = 0, n: int = 60) -> list[FinanceQuestion]:
    """n held-out questions, spread evenly over FINANCE_KINDS (never in corpus or SFT data)."""
    rng = random.Random(f"held-out-finance-{seed}")
    out: list[FinanceQuestion] = []
    for i, kind in enumerate(FINANCE_KINDS):
        want = n // len(FINANCE_KINDS) + (1 if i < n % len(FINANCE_KINDS) else 0)
        pool = finance_split(kind)[1]
        if want > len(pool):
            raise ValueError(f"only {len(pool)} held-out {kind} questions, asked for {want}")
        out.extend(_question(kind, combo, rng) for combo in rng.sample(pool, want))
    return out


def held_out_general(seed: int = 0, n: int = 40) -> list[GeneralQuestion]:
    """Capital questions about countries whose facts are in the corpus but never as a chat."""
    rng = random.Random(f"held-out-general-{seed}")
    pool = split_countries(seed)[1]
    if n > len(pool):
        raise ValueError(f"only {len(pool)} held-out countries, asked for {n}")
    return [GeneralQuestion(c, rng.choice(_CAPITAL_QUESTIONS).format(c), k) for c, k in rng.sample(pool, n)]
