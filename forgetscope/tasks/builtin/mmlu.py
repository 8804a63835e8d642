"""MMLU (cais/mmlu, "all", test) in lm-eval's default `mmlu` format.

The choices are listed in the prompt and the model scores the letters
" A".." D" (not the choice texts), as lm-eval does. Each item carries its
subject as category and lm-eval's per-subject description as prefix. Few-shot
examples are, as in lm-eval, the first k rows of the `dev` split of the same
subject (dev has 5 per subject), so 5-shot prompts match lm-eval's.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat

TEMPLATE = "{question}\nA. {options[0]}\nB. {options[1]}\nC. {options[2]}\nD. {options[3]}\nAnswer:"
DESCRIPTION = "The following are multiple choice questions (with answers) about {subject_name}.\n\n"


def process(row: Mapping[str, Any], index: int) -> dict:
    options = list(row["choices"])
    if len(options) != 4:
        raise ValueError(f"MMLU rows have 4 choices, this one has {len(options)}")
    subject = str(row["subject"])
    return {
        **row,
        "id": str(index),
        "question": row["question"].strip(),
        "options": options,
        "choices": ["A", "B", "C", "D"],
        "answer": int(row["answer"]),
        "category": subject,
        "subject_name": subject.replace("_", " "),
    }


MMLU = Builtin(
    BuiltinInfo(
        name="mmlu",
        description="MMLU: 57 subjects of multiple-choice exam questions (category = subject)",
        hf_id="cais/mmlu",
        hf_config="all",
        split="test",
        kind="multiple_choice",
        columns=("question", "subject", "choices", "answer"),
        fewshot_split="dev",
    ),
    process,
    PromptFormat(template=TEMPLATE, description=DESCRIPTION),
    fewshot_sampler="first_n",
    fewshot_by_category=True,
)
