"""OpenBookQA (allenai/openbookqa, main, test) in lm-eval's `openbookqa` format.

The context is the bare `question_stem` (no "Question:" prefix, as lm-eval);
it is exposed as `question`, so a custom template can use `{question}`.
Item ids are the dataset's own `id`.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo, label_index
from forgetscope.tasks.formats import PromptFormat


def process(row: Mapping[str, Any], index: int) -> dict:
    choices = row["choices"]
    return {
        **row,
        "id": str(row.get("id") or index),
        "question": row["question_stem"],
        "choices": list(choices["text"]),
        "answer": label_index(choices["label"], row["answerKey"]),
    }


OPENBOOKQA = Builtin(
    BuiltinInfo(
        name="openbookqa",
        description="OpenBookQA: elementary science questions needing a core fact plus common knowledge (4 choices)",
        hf_id="allenai/openbookqa",
        hf_config="main",
        split="test",
        kind="multiple_choice",
        columns=("id", "question_stem", "choices", "answerKey"),
    ),
    process,
    PromptFormat(template="{question}"),
)
