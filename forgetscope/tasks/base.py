"""Items and tasks: what gets scored.

An item is fully rendered before any model sees it: its context string(s),
the continuation strings to score, and the gold. Its `item_hash` covers all
of that, so two runs can prove they scored the same thing, and a changed
prompt template can never be silently compared against an old result.
"""

from __future__ import annotations

import hashlib
import math
import json
import re
import string
from dataclasses import dataclass, field
from typing import Literal, Sequence

Kind = Literal["multiple_choice", "generate"]


class TaskError(ValueError):
    """A task could not be built from its source (message says where and how to fix)."""


def item_limit(limit: int | float | None, n: int) -> int | None:
    """How many of a task's `n` items `--limit` keeps: a whole number as it is, a fraction between 0 and 1
    of them rounded up (lm-evaluation-harness's rule, int(ceil(n * x)))."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not limit > 0 or (limit >= 1 and limit != int(limit)):
        raise TaskError(f"--limit {limit}: give a whole number of items (at least 1) or a fraction between 0 and 1")
    return int(math.ceil(n * limit)) if limit < 1 else int(limit)


def stable_hash(obj: object, n: int = 16) -> str:
    """Hex digest of a JSON-serialisable object, independent of dict order."""
    payload = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:n]


@dataclass(frozen=True)
class Item:
    """One benchmark item, rendered.

    Multiple choice: every choice i is scored as the log-likelihood of
    `continuations[i]` given `contexts[i]` (usually the same context for all
    choices; Winogrande-style tasks vary the context and keep the continuation).
    Generative: the model continues `contexts[0]`; `answers` are accepted.
    """

    item_id: str
    kind: Kind
    contexts: tuple[str, ...]
    continuations: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    gold: tuple[int, ...] = ()
    answers: tuple[str, ...] = ()
    category: str = ""
    item_hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.item_hash:
            object.__setattr__(self, "item_hash", self.compute_hash())

    @property
    def context(self) -> str:
        return self.contexts[0]

    @property
    def n_choices(self) -> int:
        return len(self.choices) if self.kind == "multiple_choice" else 0

    def requests(self) -> list[tuple[str, str]]:
        """(context, continuation) pairs to score, one per choice."""
        if len(self.contexts) == 1:
            return [(self.contexts[0], c) for c in self.continuations]
        return list(zip(self.contexts, self.continuations))

    def gold_text(self) -> str:
        if self.kind == "multiple_choice":
            return "|".join(str(g) for g in self.gold)
        return json.dumps(list(self.answers), ensure_ascii=False)

    def compute_hash(self) -> str:
        return stable_hash(
            {
                "kind": self.kind,
                "contexts": list(self.contexts),
                "continuations": list(self.continuations),
                "gold": list(self.gold),
                "answers": list(self.answers),
            }
        )


def multiple_choice_item(
    item_id: str,
    context: str | Sequence[str],
    choices: Sequence[str],
    gold: int | Sequence[int],
    *,
    target_delimiter: str = " ",
    continuations: Sequence[str] | None = None,
    category: str = "",
) -> Item:
    """Build a multiple-choice item; the continuation of choice c is `delimiter + c`."""
    choices = tuple(str(c) for c in choices)
    golds = (gold,) if isinstance(gold, int) else tuple(int(g) for g in gold)
    if not choices:
        raise TaskError(f"item {item_id!r}: no choices")
    for g in golds:
        if not 0 <= g < len(choices):
            raise TaskError(f"item {item_id!r}: gold index {g} out of range for {len(choices)} choices")
    contexts = (context,) if isinstance(context, str) else tuple(context)
    if continuations is None:
        continuations = tuple(target_delimiter + c for c in choices)
    return Item(
        item_id=str(item_id),
        kind="multiple_choice",
        contexts=contexts,
        continuations=tuple(continuations),
        choices=choices,
        gold=golds,
        category=str(category or ""),
    )


def generative_item(item_id: str, prompt: str, answers: Sequence[str], *, category: str = "") -> Item:
    answers = tuple(str(a) for a in answers)
    if not answers:
        raise TaskError(f"item {item_id!r}: no answer given")
    return Item(
        item_id=str(item_id),
        kind="generate",
        contexts=(prompt,),
        answers=answers,
        category=str(category or ""),
    )


@dataclass(frozen=True)
class GenerationConfig:
    """How a generative item is decoded and judged.

    `answer_regex` extracts the answer from the generated text (group 1 if the
    pattern has groups, else the whole match); `regex_match` picks the first or
    the last match. Then both the extracted answer and every gold answer are
    normalised (whitespace collapsed; optional case and punctuation folding;
    `strip_chars` removed, e.g. "$," for numbers) and compared for equality.
    """

    max_new_tokens: int = 64
    stop: tuple[str, ...] = ("\n\n",)
    answer_regex: str | None = None
    regex_match: Literal["first", "last"] = "last"
    ignore_case: bool = True
    ignore_punctuation: bool = False
    strip_chars: str = ""

    def to_dict(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "stop": list(self.stop),
            "answer_regex": self.answer_regex,
            "regex_match": self.regex_match,
            "ignore_case": self.ignore_case,
            "ignore_punctuation": self.ignore_punctuation,
            "strip_chars": self.strip_chars,
        }

    def normalise(self, text: str) -> str:
        text = text.strip()
        if self.strip_chars:
            text = text.translate(str.maketrans("", "", self.strip_chars))
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = text.translate(str.maketrans("", "", string.punctuation))
        text = " ".join(text.split())
        # "18." and "18" are the same final answer
        return text.rstrip(".") if text.endswith(".") and len(text) > 1 else text

    def extract(self, output: str) -> str:
        """The answer part of a generation (whole text if no regex or no match)."""
        for stop in self.stop:
            cut = output.find(stop)
            if cut >= 0:
                output = output[:cut]
        if not self.answer_regex:
            return output.strip()
        matches = list(re.finditer(self.answer_regex, output))
        if not matches:
            return ""
        match = matches[0] if self.regex_match == "first" else matches[-1]
        if match.groups():
            groups = [g for g in match.groups() if g is not None]
            return groups[0] if groups else match.group(0)
        return match.group(0)

    def judge(self, output: str, answers: Sequence[str]) -> tuple[str, bool]:
        """(extracted answer, correct?) for a generated text."""
        extracted = self.extract(output)
        norm = self.normalise(extracted)
        return extracted, bool(norm) and any(norm == self.normalise(a) for a in answers)


@dataclass
class Task:
    """A named list of items plus how generative items are decoded and judged."""

    name: str
    items: list[Item]
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for item in self.items:
            if item.item_id in seen:
                raise TaskError(
                    f"task {self.name!r}: duplicate item_id {item.item_id!r}; item ids must be unique"
                )
            seen.add(item.item_id)

    @property
    def kind(self) -> str:
        kinds = {i.kind for i in self.items}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def fingerprint(self) -> str:
        """Hash of every item (id + hash) and of the judging config."""
        payload = {
            "name": self.name,
            "items": [[i.item_id, i.item_hash, i.category] for i in self.items],
        }
        if any(i.kind == "generate" for i in self.items):
            payload["generation"] = self.generation.to_dict()
        return stable_hash(payload, n=32)

    def __len__(self) -> int:
        return len(self.items)
