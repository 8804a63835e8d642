"""Winogrande (allenai/winogrande, winogrande_xl, validation) with lm-eval's partial scoring.

Each option is substituted for "_" and the model scores the same rest of the
sentence after each version: contexts differ per choice, the continuation is
shared. Scoring the rest (not the option) compares the options by how well
they explain what follows, which is the lm-eval definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from forgetscope.tasks.base import TaskError
from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.formats import PromptFormat


def process(row: Mapping[str, Any], index: int) -> dict:
    sentence = row["sentence"]
    blank = sentence.index("_")  # ValueError (-> schema error) when there is no blank
    options = [row["option1"], row["option2"]]
    return {
        **row,
        "id": str(index),
        "choices": options,
        "answer": int(row["answer"]) - 1,
        "contexts": [sentence[:blank] + option for option in options],
        "continuation": sentence[blank + 1 :].strip(),
    }


@dataclass(frozen=True)
class PartialFormat(PromptFormat):
    """One context per choice (`contexts`), one shared continuation (`continuation`)."""

    def requests(self, row: Mapping[str, Any], choices: Sequence[str]) -> tuple[list[str], list[str] | None]:
        if self.template:
            raise TaskError(
                "winogrande builds one context per option from `sentence`, so a template cannot apply; "
                "drop the template override (or write a spec over the data with your own format)"
            )
        continuation = self.target_delimiter + row["continuation"]
        return list(row["contexts"]), [continuation] * len(choices)


WINOGRANDE = Builtin(
    BuiltinInfo(
        name="winogrande",
        description="Winogrande: fill the blank with one of two options (pronoun-resolution style)",
        hf_id="allenai/winogrande",
        hf_config="winogrande_xl",
        split="validation",
        kind="multiple_choice",
        columns=("sentence", "option1", "option2", "answer"),
    ),
    process,
    PartialFormat(),
)
