"""SciQ (allenai/sciq, test) in lm-eval's `sciq` format.

`{support}\\nQuestion: {question}\\nAnswer:` (support left-stripped) with the
choices in lm-eval's fixed order [distractor1, distractor2, distractor3,
correct_answer], so the gold is always index 3. Odd, but it is what published
numbers use; the per-item comparison does not care where the gold sits.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def process(row: Mapping[str, Any], index: int) -> dict:
    return {
        **row,
        "id": str(index),
        "support": row["support"].lstrip(),
        "choices": [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]],
        "answer": 3,
    }


SCIQ = Builtin(
    BuiltinInfo(
        name="sciq",
        description="SciQ: science exam questions with a supporting paragraph (4 choices)",
        hf_id="allenai/sciq",
        hf_config=None,
        split="test",
        kind="multiple_choice",
        columns=("question", "support", "distractor1", "distractor2", "distractor3", "correct_answer"),
    ),
    process,
    PromptFormat(template="{support}\nQuestion: {question}\nAnswer:"),
)
