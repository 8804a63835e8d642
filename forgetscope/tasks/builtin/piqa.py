"""PIQA (ybisk/piqa, validation) in lm-eval's `piqa` format.

`Question: {goal}\\nAnswer:` scored against the two solutions.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def process(row: Mapping[str, Any], index: int) -> dict:
    return {**row, "id": str(index), "choices": [row["sol1"], row["sol2"]], "answer": int(row["label"])}


PIQA = Builtin(
    BuiltinInfo(
        name="piqa",
        description="PIQA: physical commonsense, choose the better of two solutions",
        hf_id="ybisk/piqa",
        hf_config=None,
        split="validation",
        kind="multiple_choice",
        columns=("goal", "sol1", "sol2", "label"),
    ),
    process,
    PromptFormat(template="Question: {goal}\nAnswer:"),
)
