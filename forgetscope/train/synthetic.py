"""A built-in synthetic suite: training text and held-out eval tasks, all offline.

Every source is deterministic given its seed and has the same two faces:

- `training_texts(n, seed)`: `n` documents to train on;
- `tasks(n_items, seed)`: forgetscope `Task`s (one multiple choice, one generative).

Eval items use exactly the format the training text uses
("Question: ...\\nAnswer: X"), so a multiple-choice item scores " X" as the
continuation of "Question: ...\\nAnswer:". Facts are asked about facts that ARE
in the training text (retention); arithmetic and string problems are held out
(generalisation): a problem that is an eval item never appears in training.

Item ids are stable (they name the problem, not its position), so the same item
keeps its id across seeds and `n_items`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from forgetscope.tasks.base import GenerationConfig, Item, Task, generative_item, multiple_choice_item

QA_TEMPLATE = "Question: {question}\nAnswer:"


class Source(Protocol):
    """What every synthetic source provides."""

    name: str

    def training_texts(self, n: int, seed: int = 0) -> list[str]: ...

    def tasks(self, n_items: int = 100, seed: int = 0) -> list[Task]: ...


def qa_text(question: str, answer: str) -> str:
    """The training form of a question/answer pair: eval context + " " + answer."""
    return QA_TEMPLATE.format(question=question) + " " + answer


def _stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` (not by Python's salted `hash`).

    A cryptographic hash, not CRC32: CRC is linear, so "hash < 0.1" would pick a
    structured, not a random, subset of problems (e.g. all b = 10, 14, 18).
    """
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


# --------------------------------------------------------------------------- general text

_NAMES = ["Anna", "Ben", "Clara", "David", "Ella", "Felix", "Grace", "Henry", "Iris", "Jack",
          "Kate", "Leo", "Mia", "Noah", "Olive", "Paul", "Rosa", "Sam", "Tom", "Vera"]
_ANIMALS = ["cat", "dog", "bird", "horse", "fox", "rabbit", "cow", "sheep", "duck", "mouse",
            "goat", "frog", "owl", "bear", "wolf", "deer"]
_THINGS = ["book", "ball", "box", "cup", "chair", "table", "lamp", "coat", "hat", "bag",
           "key", "letter", "basket", "bottle", "kite", "map", "ring", "stone", "boat", "bell"]
_FOODS = ["bread", "apples", "soup", "cheese", "rice", "cake", "milk", "eggs", "beans", "fish",
          "pears", "honey", "tea", "corn", "plums"]
_PLACES = ["the garden", "the market", "the river", "the forest", "the school", "the kitchen",
           "the park", "the village", "the hill", "the beach", "the farm", "the library",
           "the station", "the lake", "the field", "the bridge"]
_ADJS = ["big", "small", "red", "blue", "green", "old", "new", "quiet", "loud", "happy",
         "tired", "bright", "dark", "warm", "cold", "soft", "tall", "short", "slow", "fast"]
_VERBS_T = ["found", "saw", "carried", "painted", "lost", "cleaned", "opened", "bought",
            "sold", "dropped", "took", "hid", "moved", "fixed", "washed", "watched"]
_VERBS_I = ["ran", "slept", "sang", "waited", "laughed", "walked", "jumped", "danced",
            "rested", "played", "worked", "smiled", "sat", "swam"]
_TIMES = ["In the morning", "In the evening", "At noon", "On Monday", "Later that day",
          "After dinner", "Before breakfast", "Every day", "Last week", "Yesterday"]
_WEATHER = ["sunny", "rainy", "windy", "cloudy", "snowy", "foggy", "warm", "cold"]
_COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "gray", "orange"]


def _general_sentence(rng: random.Random) -> str:
    name, name2 = rng.sample(_NAMES, 2)
    a = rng.randrange(12)
    if a == 0:
        return f"{name} {rng.choice(_VERBS_T)} the {rng.choice(_ADJS)} {rng.choice(_THINGS)} in {rng.choice(_PLACES)}."
    if a == 1:
        return f"The {rng.choice(_ADJS)} {rng.choice(_ANIMALS)} {rng.choice(_VERBS_I)} near {rng.choice(_PLACES)}."
    if a == 2:
        return f"{rng.choice(_TIMES)}, {name} and {name2} went to {rng.choice(_PLACES)}."
    if a == 3:
        return f"{name} likes {rng.choice(_FOODS)}, but {name2} likes {rng.choice(_FOODS)}."
    if a == 4:
        return f"It was {rng.choice(_WEATHER)} at {rng.choice(_PLACES)}, so {name} {rng.choice(_VERBS_I)}."
    if a == 5:
        return f"{name} gave {name2} a {rng.choice(_COLORS)} {rng.choice(_THINGS)}."
    if a == 6:
        n = rng.randint(2, 9)
        return f"There were {n} {rng.choice(_ANIMALS)}s near {rng.choice(_PLACES)}."
    if a == 7:
        return f"\"Where is my {rng.choice(_THINGS)}?\" asked {name}."
    if a == 8:
        return f"The {rng.choice(_ANIMALS)} was {rng.choice(_ADJS)} and {rng.choice(_ADJS)}."
    if a == 9:
        return f"{name} could not find the {rng.choice(_THINGS)}, so {name2} helped."
    if a == 10:
        return f"{rng.choice(_TIMES)}, the {rng.choice(_ANIMALS)} ate some {rng.choice(_FOODS)}."
    return f"{name} said that the {rng.choice(_THINGS)} was {rng.choice(_COLORS)}."


class GeneralSource:
    """Simple English-like prose from templates: background text for tokenizer and LM."""

    name = "general"

    def training_texts(self, n: int, seed: int = 0) -> list[str]:
        rng = random.Random(f"general:{seed}")
        return [" ".join(_general_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(n)]

    def tasks(self, n_items: int = 100, seed: int = 0) -> list[Task]:
        return []  # background text only: nothing to evaluate


# --------------------------------------------------------------------------- facts

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kr", "tr", "st", "th", "sh", "qu", "gl", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "or", "el", "an", "ur"]
_CODAS = ["", "", "", "n", "r", "l", "m", "s", "th", "nd", "x"]
_COUNTRY_SUFFIXES = ["ia", "land", "ara", "or", "ica", "avia", "istan", "ony"]
_LANGUAGE_SUFFIXES = ["ish", "ese", "ic", "an"]
_PROFESSIONS = ["baker", "sailor", "painter", "doctor", "farmer", "teacher", "singer", "builder",
                "tailor", "pilot", "writer", "miner", "judge", "nurse", "hunter", "potter"]

_KB_SEED = 1234  # the knowledge base is fixed; `seed` only changes sampling


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return "".join(parts) + rng.choice(_CODAS)


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    object: str


# relation → (training phrasings, eval question); "{s}" subject, "{o}" object
FACT_RELATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "capital": (
        ("The capital of {s} is {o}.", "{o} is the capital of {s}.", "{s} has its capital in {o}."),
        "What is the capital of {s}?",
    ),
    "language": (
        ("People in {s} speak {o}.", "The language of {s} is {o}.", "In {s}, most people speak {o}."),
        "What language is spoken in {s}?",
    ),
    "currency": (
        ("The currency of {s} is the {o}.", "In {s}, people pay with the {o}.", "{s} uses the {o} as money."),
        "What is the currency of {s}?",
    ),
    "birthplace": (
        ("{s} was born in {o}.", "{s} comes from {o}.", "The birthplace of {s} is {o}."),
        "Where was {s} born?",
    ),
    "profession": (
        ("{s} works as a {o}.", "{s} is a {o} by trade.", "The job of {s} is {o}."),
        "What is the job of {s}?",
    ),
}


def _unique_words(rng: random.Random, n: int, make: Callable[[random.Random], str], taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = make(rng)
        if w.lower() not in taken and 4 <= len(w) <= 11:
            taken.add(w.lower())
            out.append(w)
    return out


def build_knowledge_base(n_countries: int = 50, n_people: int = 25) -> list[Fact]:
    """The fixed invented world: 3 facts per country, 2 per person (200 facts by default).

    The first k countries (and their facts) are the same whatever n is, so a
    smaller world's countries are a prefix of a larger one's.
    """
    rng = random.Random(_KB_SEED)
    taken = {w.lower() for w in _NAMES + _ANIMALS + _THINGS + _FOODS + _ADJS + _PROFESSIONS}
    countries, capitals, languages, currencies = [], [], [], []
    for _ in range(n_countries):  # interleaved so prefixes are stable
        countries += _unique_words(rng, 1, lambda r: (_word(r, r.randint(1, 2)).rstrip("aeiou") + r.choice(_COUNTRY_SUFFIXES)).capitalize(), taken)
        capitals += _unique_words(rng, 1, lambda r: _word(r, r.randint(1, 2)).capitalize(), taken)
        languages += _unique_words(rng, 1, lambda r: (_word(r, 1).rstrip("aeiou") + r.choice(_LANGUAGE_SUFFIXES)).capitalize(), taken)
        currencies += _unique_words(rng, 1, lambda r: _word(r, 1), taken)
    facts: list[Fact] = []
    for c, cap, lang, cur in zip(countries, capitals, languages, currencies):
        facts += [Fact(c, "capital", cap), Fact(c, "language", lang), Fact(c, "currency", cur)]
    prng = random.Random(_KB_SEED + 1)
    for _ in range(n_people):
        first = _unique_words(prng, 1, lambda r: _word(r, 2).capitalize(), taken)[0]
        last = _unique_words(prng, 1, lambda r: _word(r, 2).capitalize(), taken)[0]
        person = f"{first} {last}"
        facts += [Fact(person, "birthplace", prng.choice(countries)), Fact(person, "profession", prng.choice(_PROFESSIONS))]
    return facts


def _fact_statement(fact: Fact, rng: random.Random, qa_prob: float) -> str:
    phrasings, question = FACT_RELATIONS[fact.relation]
    if rng.random() < qa_prob:
        return qa_text(question.format(s=fact.subject), fact.object)
    return rng.choice(phrasings).format(s=fact.subject, o=fact.object)


@dataclass
class FactsSource:
    """Invented facts, stated in several phrasings; eval asks about trained facts (retention)."""

    n_countries: int = 50
    n_people: int = 25
    qa_prob: float = 0.4  # share of training statements in the eval's question/answer form
    name: str = "facts"
    facts: list[Fact] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.facts = build_knowledge_base(self.n_countries, self.n_people)

    def training_texts(self, n: int, seed: int = 0) -> list[str]:
        rng = random.Random(f"facts:{seed}")
        docs = []
        for _ in range(n):
            k = rng.randint(1, 3)
            docs.append("\n".join(_fact_statement(rng.choice(self.facts), rng, self.qa_prob) for _ in range(k)))
        return docs

    def _eval_facts(self, n_items: int, seed: int) -> list[Fact]:
        if n_items >= len(self.facts):
            return list(self.facts)
        picked = set(random.Random(f"facts-eval:{seed}").sample(range(len(self.facts)), n_items))
        return [f for i, f in enumerate(self.facts) if i in picked]

    def tasks(self, n_items: int = 100, seed: int = 0) -> list[Task]:
        # distractors come from the same kind of thing: other capitals, other countries, ...
        by_relation: dict[str, list[str]] = {"birthplace": [], "profession": list(_PROFESSIONS)}
        for f in self.facts:
            pool = by_relation.setdefault(f.relation, [])
            if f.object not in pool:
                pool.append(f.object)
            if f.relation == "capital":
                by_relation["birthplace"].append(f.subject)
        if len(self.facts) and min(len(v) for v in by_relation.values()) < 4:
            raise ValueError(f"a facts source needs at least 4 countries for 4-way choices (got {self.n_countries})")
        mc, gen = [], []
        for f in self._eval_facts(n_items, seed):
            item_id = f"{f.relation}:{f.subject}"
            context = QA_TEMPLATE.format(question=FACT_RELATIONS[f.relation][1].format(s=f.subject))
            rng = random.Random(f"{item_id}:{seed}")
            distractors = rng.sample([o for o in by_relation[f.relation] if o != f.object], 3)
            mc.append(_shuffled_mc(item_id, context, f.object, distractors, rng, f.relation))
            gen.append(generative_item(item_id, context, [f.object], category=f.relation))
        return [
            Task("synth_facts_mc", mc, description="Invented facts seen in training: which object is right?", source="synthetic:facts"),
            Task(
                "synth_facts_gen",
                gen,
                generation=GenerationConfig(max_new_tokens=12, stop=("\n",)),
                description="Invented facts seen in training, answered by greedy generation.",
                source="synthetic:facts",
            ),
        ]


def _shuffled_mc(item_id: str, context: str, gold: str, distractors: Sequence[str], rng: random.Random, category: str) -> Item:
    choices = [gold, *distractors]
    rng.shuffle(choices)
    return multiple_choice_item(item_id, context, choices, choices.index(gold), category=category)


# --------------------------------------------------------------------------- arithmetic

ARITH_OPS: dict[str, tuple[str, Callable[[int, int], int]]] = {
    "add": ("+", lambda a, b: a + b),
    "sub": ("-", lambda a, b: a - b),
}


@dataclass
class ArithmeticSource:
    """"Question: What is 23 + 4?\nAnswer: 27"; eval problems never appear in training.

    The first operand goes up to `max_a`, the second up to `max_b` (a small
    `max_b` keeps the skill learnable by a tiny model in minutes: one digit
    table plus a carry). Subtraction keeps a >= b, so answers are never
    negative. A problem is held out when a hash of it falls below `holdout`
    (fixed, whatever the seed).
    """

    max_a: int = 99
    max_b: int = 9
    ops: tuple[str, ...] = ("add", "sub")
    holdout: float = 0.1
    name: str = "arithmetic"

    def __post_init__(self) -> None:
        if not 0 <= self.max_b <= self.max_a:
            raise ValueError(f"need 0 <= max_b <= max_a, got max_a={self.max_a}, max_b={self.max_b}")
        unknown = set(self.ops) - set(ARITH_OPS)
        if unknown:
            raise ValueError(f"unknown arithmetic ops {sorted(unknown)}; known: {sorted(ARITH_OPS)}")

    def _problem(self, rng: random.Random) -> tuple[str, int, int]:
        op = rng.choice(self.ops)
        a, b = rng.randint(0, self.max_a), rng.randint(0, self.max_b)
        if op == "sub" and b > a:
            a, b = b, a
        return op, a, b

    def _held_out(self, op: str, a: int, b: int) -> bool:
        return _stable_fraction(f"arith:{op}:{a}:{b}") < self.holdout

    @staticmethod
    def question(op: str, a: int, b: int) -> str:
        return f"What is {a} {ARITH_OPS[op][0]} {b}?"

    def training_texts(self, n: int, seed: int = 0) -> list[str]:
        rng = random.Random(f"arith:{seed}")
        docs = []
        for _ in range(n):
            lines: list[str] = []
            k = rng.randint(1, 4)
            while len(lines) < k:
                op, a, b = self._problem(rng)
                if self._held_out(op, a, b):
                    continue
                answer = str(ARITH_OPS[op][1](a, b))
                if rng.random() < 0.8:
                    lines.append(qa_text(self.question(op, a, b), answer))
                else:
                    lines.append(f"{a} {ARITH_OPS[op][0]} {b} = {answer}.")
            docs.append("\n".join(lines))
        return docs

    def eval_problems(self, n_items: int, seed: int = 0) -> list[tuple[str, int, int]]:
        """Held-out problems, `n_items` of them sampled by `seed` (all if fewer)."""
        held = [
            (op, a, b)
            for op in self.ops
            for a in range(self.max_a + 1)
            for b in range(min(a, self.max_b) + 1 if op == "sub" else self.max_b + 1)
            if self._held_out(op, a, b)
        ]
        if n_items < len(held):
            held = random.Random(f"arith-eval:{seed}").sample(held, n_items)
        return sorted(held)

    def tasks(self, n_items: int = 100, seed: int = 0) -> list[Task]:
        mc, gen = [], []
        for op, a, b in self.eval_problems(n_items, seed):
            gold = ARITH_OPS[op][1](a, b)
            item_id = f"{op}:{a}{ARITH_OPS[op][0]}{b}"
            context = QA_TEMPLATE.format(question=self.question(op, a, b))
            rng = random.Random(f"{item_id}:{seed}")
            near = sorted({gold + d for d in (-20, -10, -2, -1, 1, 2, 10, 20) if gold + d >= 0})
            distractors = [str(x) for x in rng.sample(near, 3)]
            mc.append(_shuffled_mc(item_id, context, str(gold), distractors, rng, op))
            gen.append(generative_item(item_id, context, [str(gold)], category=op))
        return [
            Task("synth_arithmetic_mc", mc, description="Held-out addition/subtraction, 4 numeric choices.", source="synthetic:arithmetic"),
            Task(
                "synth_arithmetic_gen",
                gen,
                generation=GenerationConfig(max_new_tokens=6, stop=("\n",), answer_regex=r"-?\d+", regex_match="first"),
                description="Held-out addition/subtraction answered by greedy generation.",
                source="synthetic:arithmetic",
            ),
        ]


# --------------------------------------------------------------------------- string transformation

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def spaced(word: str) -> str:
    """"cat" → "c a t": one letter per token, so the model can see letters at all."""
    return " ".join(word)


@dataclass
class ReverseSource:
    """"Question: Reverse c a t\\nAnswer: t a c" over random 3-5 letter strings; eval words held out."""

    min_len: int = 3
    max_len: int = 5
    holdout: float = 0.05
    name: str = "reverse"

    def _held_out(self, word: str) -> bool:
        return _stable_fraction(f"reverse:{word}") < self.holdout

    def _word(self, rng: random.Random) -> str:
        while True:
            w = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(self.min_len, self.max_len)))
            if w != w[::-1]:  # palindromes have no wrong "copy" answer to tell apart
                return w

    @staticmethod
    def question(word: str) -> str:
        return f"Reverse {spaced(word)}"

    def training_texts(self, n: int, seed: int = 0) -> list[str]:
        rng = random.Random(f"reverse:{seed}")
        docs = []
        for _ in range(n):
            lines = []
            for _ in range(rng.randint(1, 4)):
                w = self._word(rng)
                while self._held_out(w):
                    w = self._word(rng)
                lines.append(qa_text(self.question(w), spaced(w[::-1])))
            docs.append("\n".join(lines))
        return docs

    def eval_words(self, n_items: int, seed: int = 0) -> list[str]:
        # a fixed stream of candidate words; the held-out ones, in order, are the eval set
        rng = random.Random("reverse-eval")
        words: list[str] = []
        seen: set[str] = set()
        while len(words) < max(n_items * 4, 400):
            w = self._word(rng)
            if self._held_out(w) and w not in seen:
                seen.add(w)
                words.append(w)
        return random.Random(f"reverse-eval:{seed}").sample(words, n_items)

    @staticmethod
    def _distractors(word: str, rng: random.Random) -> list[str]:
        """The copy (the classic wrong answer) and two near misses: rotations or one-letter edits."""
        gold = word[::-1]
        near = [gold[1:] + gold[0], gold[-1] + gold[:-1], word[1:] + word[0]]
        for _ in range(10):  # words with repeated letters have few distinct rotations
            i = rng.randrange(len(gold))
            near.append(gold[:i] + rng.choice(_LETTERS) + gold[i + 1 :])
        near = list(dict.fromkeys(x for x in near if x not in (gold, word)))
        return [word] + rng.sample(near[:5], 2)

    def tasks(self, n_items: int = 100, seed: int = 0) -> list[Task]:
        mc, gen = [], []
        for w in self.eval_words(n_items, seed):
            gold = spaced(w[::-1])
            item_id = f"reverse:{w}"
            category = f"len{len(w)}"
            context = QA_TEMPLATE.format(question=self.question(w))
            rng = random.Random(f"{item_id}:{seed}")
            distractors = [spaced(x) for x in self._distractors(w, rng)]
            mc.append(_shuffled_mc(item_id, context, gold, distractors, rng, category))
            gen.append(generative_item(item_id, context, [gold], category=category))
        return [
            Task("synth_reverse_mc", mc, description="Reverse a held-out letter string, 4 choices.", source="synthetic:reverse"),
            Task(
                "synth_reverse_gen",
                gen,
                generation=GenerationConfig(max_new_tokens=12, stop=("\n",)),
                description="Reverse a held-out letter string by greedy generation.",
                source="synthetic:reverse",
            ),
        ]


# --------------------------------------------------------------------------- registry

SOURCES: dict[str, Callable[[], Source]] = {
    "general": GeneralSource,
    "facts": FactsSource,
    "arithmetic": ArithmeticSource,
    "reverse": ReverseSource,
}


def synthetic_tasks(
    names: Iterable[str] | None = None,
    n_items: int = 100,
    seed: int = 0,
    sources: dict[str, Source] | None = None,
) -> list[Task]:
    """The synthetic eval tasks, default-configured unless `sources` overrides an instance.

    `names` picks tasks by task name ("synth_facts_mc") or by source name
    ("facts": all of its tasks); None gives every task of every source.
    """
    sources = {**{k: v() for k, v in SOURCES.items()}, **(sources or {})}
    tasks = [t for s in sources.values() for t in s.tasks(n_items, seed)]
    if names is None:
        return tasks
    wanted = list(names)
    by_name = {t.name: t for t in tasks}
    out: list[Task] = []
    for name in wanted:
        if name in by_name:
            out.append(by_name[name])
        elif name in sources:
            out += [t for t in tasks if t.source == f"synthetic:{name}"]
        else:
            raise KeyError(f"unknown synthetic task or source {name!r}; known: {sorted(by_name) + sorted(sources)}")
    return out


def mixture(counts: dict[str, int], seed: int = 0, sources: dict[str, Source] | None = None) -> list[str]:
    """`counts[name]` training documents from each source, shuffled together (deterministic)."""
    sources = {**{k: v() for k, v in SOURCES.items()}, **(sources or {})}
    docs = [d for name, n in counts.items() if n > 0 for d in sources[name].training_texts(n, seed)]
    random.Random(f"mixture:{seed}").shuffle(docs)
    return docs


def tokenizer_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """A small mixed corpus covering every source's vocabulary (for `train_tokenizer`)."""
    share = max(1, n // 4)
    return mixture({"general": share, "facts": share, "arithmetic": share, "reverse": n - 3 * share}, seed)
