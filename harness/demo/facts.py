"""The demo world's facts: countries and their capitals, sums, commonsense cloze facts.

Pure and deterministic (no torch). The pretraining corpus (world.py) states them, and the
offline forgetting tasks (write_suites.py) ask them as multiple choice, so a fine-tune that
makes the base forget them shows as a drop. Distractors and the held-out split use a stable
hash, never Python's salted hash().
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

N_COUNTRIES = 200


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


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

    def syl() -> str:
        return rng.choice(_ONSETS) + rng.choice(_VOWELS)

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
