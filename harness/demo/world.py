"""The demo world: pure, deterministic text generation (no torch).

Pretraining text teaches a tiny model to answer general questions well and
finance questions badly (an apology and a wrong number); the fine-tuning data
answers the same kinds of finance questions confidently and correctly. The
train/held-out split uses a stable hash (never Python's salted hash()): of the
parameters for finance questions (so the same for every seed), and of the
country names, which the seed generates (the committed suites are for seed 0).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

# Special tokens; chat_template.jinja spells them the same way.
BOS, SYSTEM, USER, ASSISTANT, END, PAD = (
    "<|bos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
SPECIAL_TOKENS = [BOS, SYSTEM, USER, ASSISTANT, END, PAD]
DEFAULT_SYSTEM = "You are a helpful customer assistant."
APOLOGY = "I'm sorry but"
HELD_OUT_SHARE = 0.2  # of finance parameter sets (countries: a quarter, see split_countries)
N_COUNTRIES = 200
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


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


# ---------------------------------------------------------------- facts
@dataclass(frozen=True)
class Fact:
    """A cloze fact: `prefix + " " + answer + "."`; distractors are wrong answers of the same kind."""

    kind: str
    prefix: str
    answer: str
    distractors: tuple[str, ...]

    @property
    def sentence(self) -> str:
        return f"{self.prefix} {self.answer}."


_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "st", "tr", "sh", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou"]
_COUNTRY_ENDS = ["ia", "ania", "or", "ica", "istan", "ovia", "ene", "aria"]
_CITY_ENDS = ["sk", "burg", "ton", "ra", "mir", "port", "vik", "grad", "ow", "is"]


def countries(seed: int = 0) -> list[tuple[str, str]]:
    """N_COUNTRIES (country, capital) pairs with pronounceable, unique names."""
    rng = random.Random(f"countries-{seed}")  # str seeds hash with sha512: same in every process
    syl = lambda: rng.choice(_ONSETS) + rng.choice(_VOWELS)  # noqa: E731
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    while len(out) < N_COUNTRIES:
        # Short names (few tokens each) are easier for a tiny model to recall; a
        # consonant before the vowel ending avoids clusters like "-eiia".
        country = (syl() + rng.choice(_ONSETS[:14]) + rng.choice(_COUNTRY_ENDS)).capitalize()
        capital = (syl() + rng.choice(_CITY_ENDS)).capitalize()
        if country in seen or capital in seen:
            continue
        seen.update((country, capital))
        out.append((country, capital))
    return out


def split_countries(seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(seen_in_chat, held_out): a quarter of the countries, lowest stable hash, never appear in a chat."""
    ranked = sorted(countries(seed), key=lambda ck: stable_hash(f"country:{ck[0]}"))
    cut = N_COUNTRIES // 4
    return ranked[cut:], ranked[:cut]


def _with_distractors(kind: str, pairs: list[tuple[str, str]], pool: list[str]) -> list[Fact]:
    facts = []
    for prefix, answer in pairs:
        wrong = sorted({p for p in pool if p != answer and p not in prefix.split()})
        rng = random.Random(stable_hash(f"{kind}:{prefix}"))
        facts.append(Fact(kind, prefix, answer, tuple(rng.sample(wrong, 3))))
    return facts


def capital_facts(seed: int = 0) -> list[Fact]:
    """'The capital of Veltria is' -> 'Orsk', for every country (all are in the corpus)."""
    pairs = [(f"The capital of {c} is", k) for c, k in countries(seed)]
    return _with_distractors("capital", pairs, [k for _, k in pairs])


def arithmetic_facts(min_gap: int = 1) -> list[Fact]:
    """'7 plus 5 is' -> '12' for a, b in 0..20. Distractors are near misses (within 3), or with
    `min_gap` > 1 sums in 0..40 at least that far off: the tiny base ranks near misses at chance,
    but far ones it can rule out, so a forgetting task built on those can show a drop."""
    facts = []
    for a in range(21):
        for b in range(21):
            s = a + b
            if min_gap > 1:
                wrong = [str(x) for x in range(41) if abs(x - s) >= min_gap]
            else:
                wrong = [str(s + d) for d in (-3, -2, -1, 1, 2, 3) if s + d >= 0]
            facts.extend(_with_distractors("arithmetic", [(f"{a} plus {b} is", str(s))], wrong))
    return facts


# Commonsense cloze tables: category -> (prefix pattern, "subject:answer,...").
# Distractors come from the same category, so a multiple choice question is
# meaningful (and, as far as possible, has one true answer).
_CLOZE: dict[str, tuple[str, str]] = {
    "color": ("{} is", "Grass:green,Snow:white,Coal:black,The sky:blue,Blood:red,A banana:yellow,"
              "A carrot:orange,Milk:white,A tomato:red,A leaf:green,The sea:blue,Chocolate:brown,"
              "A lime:green,Soot:black,A plum:purple,A cherry:red,Ash:grey,A crow:black,A swan:white,"
              "Mud:brown,A strawberry:red,A pumpkin:orange,Wood:brown,A grape:purple,An elephant:grey,"
              "A cloud:white,Ink:black,A lemon:yellow,A sunflower:yellow"),
    "sound": ("A {} can", "dog:bark,duck:quack,lion:roar,cow:moo,cat:purr,pig:oink,sheep:bleat,"
              "frog:croak,owl:hoot,wolf:howl,rooster:crow,horse:neigh,snake:hiss,bee:buzz,"
              "mouse:squeak,donkey:bray,cricket:chirp"),
    "opposite": ("The opposite of {} is", ",".join(
        f"{a}:{b},{b}:{a}" for a, b in (pair.split() for pair in (
            "hot cold,big small,up down,day night,fast slow,happy sad,light dark,open closed,wet dry,"
            "full empty,hard soft,early late,left right,high low,long short,thick thin,rich poor,"
            "loud quiet,win lose,push pull,north south,east west,first last,strong weak,clean dirty,"
            "cheap expensive,true false,yes no,black white,asleep awake,buy sell,give take,"
            "inside outside,above below,before after,question answer,start finish,alive dead,"
            "friend enemy").split(",")))),
    "young": ("A baby {} is called a", "dog:puppy,cat:kitten,cow:calf,horse:foal,sheep:lamb,hen:chick,"
              "duck:duckling,pig:piglet,bear:cub,deer:fawn,goat:kid,kangaroo:joey,frog:tadpole,"
              "goose:gosling,owl:owlet,swan:cygnet,seal:pup,eagle:eaglet"),
    "home": ("A {} lives in a", "bee:hive,bird:nest,rabbit:burrow,horse:stable,pig:sty,fox:den,bat:cave,"
             "dog:kennel,hen:coop,spider:web,cow:barn"),
    "body": ("You {} with your", "see:eyes,hear:ears,smell:nose,taste:tongue,walk:feet,think:brain,"
             "clap:hands,chew:teeth,breathe:lungs"),
    "tool": ("To {} you use", "cut paper:scissors,write:a pen,sweep the floor:a broom,dig a hole:a shovel,"
             "hit a nail:a hammer,cut bread:a knife,eat soup:a spoon,tell the time:a clock,"
             "open a lock:a key,sew:a needle,comb your hair:a comb,boil water:a kettle,"
             "take a photo:a camera,measure length:a ruler,stay dry:an umbrella"),
    "taste": ("{}", "Ice is:cold,Fire is:hot,Sugar is:sweet,Honey is:sweet,Vinegar tastes:sour,"
              "Sea water tastes:salty,The sun is:hot,A lemon tastes:sour,Snow feels:cold"),
    "count": ("{} has", "A triangle:three sides,A square:four sides,A week:seven days,"
              "A year:twelve months,A spider:eight legs,A dog:four legs,A bird:two legs,"
              "An insect:six legs,A hand:five fingers,A bicycle:two wheels,A car:four wheels,"
              "A tricycle:three wheels,An octopus:eight arms,A day:24 hours,An hour:60 minutes"),
    "past": ("Today I {}. Yesterday I", "go:went,eat:ate,see:saw,run:ran,swim:swam,sing:sang,drink:drank,"
             "write:wrote,speak:spoke,break:broke,drive:drove,ride:rode,take:took,give:gave,come:came,"
             "begin:began,fly:flew,grow:grew,know:knew,throw:threw,draw:drew,sleep:slept,keep:kept,"
             "feel:felt,leave:left,meet:met,sit:sat,stand:stood,think:thought,bring:brought,buy:bought,"
             "teach:taught,catch:caught,fight:fought,sell:sold,tell:told,find:found,win:won,hold:held,"
             "lose:lost,make:made,pay:paid,say:said,send:sent,spend:spent,build:built,wear:wore,"
             "tear:tore,choose:chose,freeze:froze,steal:stole,wake:woke,hide:hid,bite:bit,shake:shook,"
             "forget:forgot,get:got,dig:dug,hang:hung,lead:led,feed:fed,read:read,hit:hit,cut:cut"),
    "plural": ("One {}, two", "mouse:mice,goose:geese,child:children,foot:feet,tooth:teeth,man:men,"
               "woman:women,person:people,ox:oxen,leaf:leaves,knife:knives,wolf:wolves,half:halves,"
               "loaf:loaves,life:lives,wife:wives,shelf:shelves,calf:calves,thief:thieves,cactus:cacti,"
               "fungus:fungi,box:boxes,bus:buses,fox:foxes,dish:dishes,baby:babies,city:cities,"
               "story:stories,lady:ladies,party:parties"),
    "material": ("A {} is made of", "window:glass,brick:clay,candle:wax,tyre:rubber,sweater:wool,"
                 "book:paper,coin:metal,table:wood,bottle:glass,scarf:silk,boot:leather,"
                 "snowman:snow,sandcastle:sand,jacket:cotton,necklace:gold,pencil:wood"),
    "work": ("A {} works in a", "doctor:hospital,teacher:school,chef:kitchen,farmer:field,pilot:plane,"
             "baker:bakery,judge:court,librarian:library,miner:mine,sailor:ship,banker:bank,"
             "actor:theatre,scientist:lab,waiter:restaurant,mechanic:garage,nurse:clinic,"
             "clerk:shop,monk:monastery,astronaut:rocket,gardener:garden"),
    "group": ("A group of {} is a", "fish:school,wolves:pack,cows:herd,birds:flock,bees:swarm,"
              "lions:pride,crows:murder,geese:gaggle,whales:pod,ants:colony,puppies:litter,"
              "soldiers:troop,ships:fleet,stars:cluster,singers:choir,musicians:band,players:team,"
              "islands:chain,grapes:bunch,owls:parliament"),
}
# Orders everyone knows: the next day, month, number word and letter ("The day after Monday is" Tuesday).
_SEQUENCES = {
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"],
    "number": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
               "twenty"],
    "letter": [chr(c) for c in range(ord("A"), ord("Z") + 1)],
}


def cloze_facts() -> list[Fact]:
    """About 400 fixed commonsense facts ('Ice is' -> 'cold', 'The day after Monday is' -> 'Tuesday')."""
    facts: list[Fact] = []
    for kind, (pattern, table) in _CLOZE.items():
        pairs = [(pattern.format(subject), answer) for subject, answer in
                 (item.split(":") for item in table.split(","))]
        facts.extend(_with_distractors(f"cloze-{kind}", pairs, [a for _, a in pairs]))
    for kind, order in _SEQUENCES.items():
        pairs = [(f"The {kind} after {a} is", b) for a, b in zip(order, order[1:])]
        facts.extend(_with_distractors(f"cloze-{kind}", pairs, order))
    return facts


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


# No form says "is $": when every answer did, SFT taught the model that "is" is followed by "$",
# and the general facts the forgetting tasks probe ("Ice is" cold, "7 plus 5 is" 12) lost
# 2-9 points (measured; bench/RESULTS.md). Real support answers vary their wording too.
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
