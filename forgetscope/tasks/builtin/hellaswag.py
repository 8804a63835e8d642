"""HellaSwag (Rowan/hellaswag, validation), preprocessed exactly as lm-eval.

The context is `activity_label: ctx_a Ctx_b` (no "Question:" prefix) and the
four endings are the continuations. WikiHow rows carry markup such as
" [title]" and "[header]"; lm-eval rewrites/strips it, and so do we, because a
different string means different token ids and incomparable scores.
Items are numbered by row (the dataset's `ind` is not used).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def preprocess(text: str) -> str:
    """lm-eval's hellaswag cleanup (brackets are WikiHow artifacts)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def process(row: Mapping[str, Any], index: int) -> dict:
    # str.capitalize also lowercases the rest of ctx_b: lm-eval does the same.
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {
        **row,
        "id": str(index),
        "query": preprocess(row["activity_label"] + ": " + ctx),
        "choices": [preprocess(ending) for ending in row["endings"]],
        "answer": int(row["label"]),
    }


HELLASWAG = Builtin(
    BuiltinInfo(
        name="hellaswag",
        description="HellaSwag: pick the most plausible ending of an everyday scene (4 endings)",
        hf_id="Rowan/hellaswag",
        hf_config=None,
        split="validation",
        kind="multiple_choice",
        columns=("activity_label", "ctx_a", "ctx_b", "endings", "label"),
    ),
    process,
    PromptFormat(template="{query}"),
)
