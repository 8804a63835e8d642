"""Small builders and checks shared by the tests: tasks, quiz files, model folders, score extracts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from forgetscope.tasks.base import GenerationConfig, Task, generative_item, multiple_choice_item

if TYPE_CHECKING:
    import pandas as pd
    from click.testing import Result

WORDS = ["apple", "river", "stone", "cloud", "seven", "green", "Paris", "the cat", "blue sky", "an answer"]


def mc_task(n: int = 24, name: str = "mc", k: int = 4) -> Task:
    """Items of varied context lengths (so batches need padding) and varied k."""
    items = []
    for i in range(n):
        filler = " and".join(WORDS[: 1 + i % len(WORDS)])
        choices = [WORDS[(i + j) % len(WORDS)] for j in range(k if i % 3 else 2)]
        items.append(multiple_choice_item(f"{name}-{i}", f"Question: {filler} number {i}?\nAnswer:", choices,
                                          i % len(choices), category="even" if i % 2 == 0 else "odd"))
    return Task(name, items)


def gen_task(n: int = 6, name: str = "gen") -> Task:
    items = [generative_item(f"{name}-{i}", f"Question: What is {i} plus {i}?\nAnswer:", [str(2 * i)])
             for i in range(n)]
    return Task(name, items, generation=GenerationConfig(max_new_tokens=6, stop=("\n",)))


def write_quiz(path: Path, n: int, categories: bool = False) -> Path:
    """A JSONL file of n three-choice items q0..q{n-1} ("Which one is number i?", gold i % 3); with
    `categories`, each item is "odd" or "even"."""
    rows = [{"id": f"q{i}", "question": f"Which one is number {i}?", "choices": [f"word{i}", "the river", "a stone"],
             "answer": i % 3, **({"category": "odd" if i % 2 else "even"} if categories else {})} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def item_scores(records: pd.DataFrame) -> list[list[float]]:
    """Each item's per-choice log-likelihoods, in item_id order: what two runs must share to have scored alike."""
    return [list(map(float, ll)) for ll in records.sort_values("item_id").loglikelihoods]


def no_model_loads(monkeypatch: pytest.MonkeyPatch, reason: str = "the model was loaded") -> None:
    """From here on, loading any model fails the test (pytest.fail, which no `except Exception` in the
    library can swallow): for runs that must be answered from stored rows alone."""
    def refuse(*args, **kwargs):
        pytest.fail(reason)

    monkeypatch.setattr("forgetscope.backends.create_backend", refuse)


def with_chat_template(source: Path, out: Path, template: str | dict[str, str],
                       edit: Callable[[Any], None] | None = None) -> Path:
    """A copy of the model folder `source` at `out` whose tokenizer carries `template` (one Jinja template, or
    several by name); `edit`, if given, changes the loaded tokenizer further before it is saved."""
    from transformers import AutoTokenizer

    shutil.copytree(source, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = template
    if edit is not None:
        edit(tokenizer)
    tokenizer.save_pretrained(out)
    return out


def run_eval(model: object, quiz: object, out: object, *extra: object) -> Result:
    """`forgetscope eval MODEL --task QUIZ --output OUT EXTRA...` through typer's CliRunner: its Result."""
    from typer.testing import CliRunner

    from forgetscope.cli import app

    return CliRunner().invoke(app, ["eval", str(model), "--task", str(quiz), "--output", str(out), *map(str, extra)])
