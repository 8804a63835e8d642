"""Registry of built-in tasks (one module per dataset)."""

from __future__ import annotations

from forgetscope.tasks.base import TaskError
from forgetscope.tasks.builtin.arc import ARC_CHALLENGE, ARC_EASY
from forgetscope.tasks.builtin.boolq import BOOLQ
from forgetscope.tasks.builtin.common import Builtin, BuiltinInfo
from forgetscope.tasks.builtin.gsm8k import GSM8K
from forgetscope.tasks.builtin.hellaswag import HELLASWAG
from forgetscope.tasks.builtin.mmlu import MMLU
from forgetscope.tasks.builtin.openbookqa import OPENBOOKQA
from forgetscope.tasks.builtin.piqa import PIQA
from forgetscope.tasks.builtin.sciq import SCIQ
from forgetscope.tasks.builtin.winogrande import WINOGRANDE

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (ARC_EASY, ARC_CHALLENGE, HELLASWAG, BOOLQ, PIQA, SCIQ, OPENBOOKQA, MMLU, WINOGRANDE, GSM8K)
}


def get_builtin(name: str) -> Builtin:
    try:
        return BUILTINS[name]
    except KeyError:
        raise TaskError(
            f"unknown built-in task {name!r}; built-ins are: {', '.join(BUILTINS)} (see `forgetscope tasks`)"
        ) from None


__all__ = ["BUILTINS", "Builtin", "BuiltinInfo", "get_builtin"]
