"""What a built-in task is: hub coordinates, a row processor and a prompt format.

A built-in turns one raw row of the hub dataset (its own column layout) into
a canonical row (`question`, `choices`, `answer`, `id`, ...) that a
`PromptFormat` renders. Keeping the two apart lets people override the
template or few-shot settings of a built-in without rewriting its
preprocessing, and lets the same processing run over local copies of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from forgetscope.tasks.base import GenerationConfig, Item, Kind, TaskError
from forgetscope.tasks.formats import PromptFormat

Processor = Callable[[Mapping[str, Any], int], dict]


@dataclass(frozen=True)
class BuiltinInfo:
    """What `forgetscope tasks` shows about a built-in task."""

    name: str
    description: str
    hf_id: str
    """Hub dataset id, loaded with `datasets.load_dataset(hf_id, hf_config, split=split)`."""
    hf_config: str | None
    split: str
    kind: Kind
    columns: tuple[str, ...]
    """Raw columns the row processor reads (the hub dataset's schema)."""
    fewshot_split: str | None = "train"
    """Split few-shot examples come from by default."""

    @property
    def local_hint(self) -> str:
        """How to run this task over local files (shown when the hub is unreachable)."""
        return (
            f"--task {self.name}=/path/to/data, where the path is a .jsonl/.parquet file or a folder "
            f"(with {self.split}.jsonl, or saved by save_to_disk) in the {self.hf_id} schema "
            f"(columns: {', '.join(self.columns)}); or a spec file with `builtin: {self.name}` and `path:`"
        )


@dataclass(frozen=True)
class Builtin:
    """A built-in task: where its data lives and how a row becomes an item."""

    info: BuiltinInfo
    process: Processor
    format: PromptFormat
    generation: GenerationConfig | None = None
    fewshot_sampler: Literal["random", "first_n"] = "random"
    """Default few-shot sampler (see FewShotSpec.sampler)."""
    fewshot_by_category: bool = False
    """Default: draw examples from the item's own category (MMLU: same subject)."""

    @property
    def name(self) -> str:
        return self.info.name

    def doc(self, row: Mapping[str, Any], index: int) -> dict:
        """The canonical row; schema mistakes become TaskErrors naming the expected columns."""
        try:
            return self.process(row, index)
        except TaskError:
            raise
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            detail = f"missing column {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise TaskError(
                f"row does not match the {self.info.hf_id} schema ({detail}); {self.name} expects columns "
                f"{', '.join(self.info.columns)}"
            ) from None

    def row_to_item(self, row: Mapping[str, Any], index: int = 0) -> Item:
        """The zero-shot item for one raw hub row."""
        return self.format.item(self.doc(row, index), index)


def label_index(labels: Any, key: Any) -> int:
    """Position of an answer key among choice labels (ARC/OBQA `answerKey`)."""
    labels = [str(label).strip() for label in labels]
    key = str(key).strip()
    if key not in labels:
        raise TaskError(f"answerKey {key!r} is not among the choice labels {labels}")
    return labels.index(key)
