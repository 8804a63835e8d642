"""BoolQ (google/boolq, validation) in lm-eval's `boolq` format.

`{passage}\\nQuestion: {question}?\\nAnswer:` scored against " no" / " yes".
Reads both the google/boolq layout (`answer`: bool) and the super_glue one
(`label`: 0/1, `idx`), so either copy can be pointed at locally.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def process(row: Mapping[str, Any], index: int) -> dict:
    label = row["label"] if "label" in row else row["answer"]
    if isinstance(label, str):  # CSV copies spell booleans out
        spelled = {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0}
        if label.strip().lower() not in spelled:
            raise ValueError(f"answer {label!r} is not true/false")
        label = spelled[label.strip().lower()]
    return {**row, "id": str(row.get("idx", index)), "answer": int(bool(label))}


BOOLQ = Builtin(
    BuiltinInfo(
        name="boolq",
        description="BoolQ: yes/no questions about a Wikipedia passage",
        hf_id="google/boolq",
        hf_config=None,
        split="validation",
        kind="multiple_choice",
        columns=("question", "passage", "answer"),
    ),
    process,
    PromptFormat(template="{passage}\nQuestion: {question}?\nAnswer:", choices=("no", "yes")),
)
