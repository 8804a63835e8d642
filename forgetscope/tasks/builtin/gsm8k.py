"""GSM8K (openai/gsm8k, main, test): generative grade-school math, as lm-eval's `gsm8k`.

The prompt is `Question: {question}\\nAnswer:`; the gold is the number after
"####" with thousands commas removed. A generation is judged by its last
number (lm-eval's "flexible-extract"), with "$" and "," stripped on both
sides. Few-shot examples (from `train`) show the full worked solution, so the
model sees the reasoning style, not just the number.
"""

from __future__ import annotations

from typing import Any, Mapping

from forgetscope.tasks.base import GenerationConfig
from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def final_answer(solution: str) -> str:
    return solution.split("####")[-1].strip().replace(",", "")


def process(row: Mapping[str, Any], index: int) -> dict:
    return {**row, "id": str(index), "solution": row["answer"], "answer": final_answer(row["answer"])}


GSM8K = Builtin(
    BuiltinInfo(
        name="gsm8k",
        description="GSM8K: grade-school math word problems, free-form numeric answer (generative)",
        hf_id="openai/gsm8k",
        hf_config="main",
        split="test",
        kind="generate",
        columns=("question", "answer"),
    ),
    process,
    PromptFormat(kind="generate", template="Question: {question}\nAnswer:", answer="answer", fewshot_target="solution"),
    GenerationConfig(
        max_new_tokens=256,
        stop=("Question:", "\n\n"),
        answer_regex=r"-?[$0-9.,]{2,}|-?[0-9]+",
        regex_match="last",
        strip_chars="$,",
    ),
)
