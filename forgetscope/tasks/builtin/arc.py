"""ARC Easy / Challenge (allenai/ai2_arc), as lm-eval's `arc_easy` / `arc_challenge`.

`Question: {question}\\nAnswer:` scored against " " + each choice text. The
answer key is a label ("A".."E", or "1".."4" in some rows), looked up among
`choices.label`. Item ids are ARC's own `id` (e.g. "Mercury_7175875").
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo, label_index
from forgetscope.tasks.formats import PromptFormat

COLUMNS = ("id", "question", "choices", "answerKey")


def process(row: Mapping[str, Any], index: int) -> dict:
    choices = row["choices"]
    return {
        **row,
        "id": str(row.get("id") or index),
        "question": row["question"],
        "choices": list(choices["text"]),
        "answer": label_index(choices["label"], row["answerKey"]),
    }


def _arc(name: str, config: str, what: str) -> Builtin:
    info = BuiltinInfo(
        name=name,
        description=f"AI2 Reasoning Challenge, {what} set: grade-school science questions (3-5 choices)",
        hf_id="allenai/ai2_arc",
        hf_config=config,
        split="test",
        kind="multiple_choice",
        columns=COLUMNS,
    )
    return Builtin(info, process, PromptFormat())


ARC_EASY = _arc("arc_easy", "ARC-Easy", "Easy")
ARC_CHALLENGE = _arc("arc_challenge", "ARC-Challenge", "Challenge")
