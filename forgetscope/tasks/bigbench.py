"""BIG-bench JSON tasks (`task.json` with an `examples` list).

A multiple-choice example has `input` and `target_scores` (choice text ->
score); every choice sharing the highest score (> 0) is gold, so some items
have several correct answers. Choices keep the file's order. Examples with
only `target` are generative; a file is read as one kind (multiple choice if
any example has `target_scores`), and examples of the other kind are skipped
and counted in the task's source. Item ids are the example's position in the
file, so they survive skipping.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetscope.tasks.base import Kind, TaskError
from forgetscope.tasks.local import RowSet, check_file


@dataclass
class BigBenchTask:
    """Canonical rows (`question`/`choices`/`answer` or `prompt`/`answers`) plus task metadata."""

    name: str
    kind: Kind
    rows: RowSet
    prefix: str
    """The file's `task_prefix`, used as the prompt description."""
    about: str
    """The file's human `description`."""


def read_bigbench_json(path: str | Path) -> dict[str, Any] | None:
    """The parsed file if it looks like a BIG-bench task (examples with `input`), else None."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply: the data-file reader says so
        return None
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list) or not examples:
        return None
    looks = all(
        isinstance(e, dict) and "input" in e and ("target_scores" in e or "target" in e) for e in examples
    )
    return data if looks else None


def load_bigbench(path: str | Path, kind: Kind | None = None) -> BigBenchTask:
    """Read a BIG-bench task.json into canonical rows of one kind."""
    path = Path(path)
    check_file(path)
    data = read_bigbench_json(path)
    if data is None:
        raise TaskError(
            f"{path}: not a BIG-bench task; expected {{\"examples\": [{{\"input\": ..., \"target_scores\": {{...}}}}]}}"
        )
    examples = data["examples"]
    if kind is None:
        kind = "multiple_choice" if any("target_scores" in e for e in examples) else "generate"
    rows: list[dict[str, Any]] = []
    positions: list[int] = []
    for index, example in enumerate(examples):
        if kind == "multiple_choice" and "target_scores" in example:
            rows.append(_mc_row(path, index, example))
        elif kind == "generate" and example.get("target") not in (None, "", []):
            target = example["target"]
            answers = target if isinstance(target, list) else [target]
            rows.append({"id": str(index), "prompt": str(example["input"]), "answers": [str(a) for a in answers]})
        else:
            continue
        positions.append(index)
    if not rows:
        raise TaskError(f"{path}: no example has {'target_scores' if kind == 'multiple_choice' else 'target'}")
    rowset = RowSet(str(path), rows, unit="example", positions=positions)
    skipped = len(examples) - len(rows)
    if skipped:
        rowset.notes.append(f"{skipped} example(s) without {'target_scores' if kind == 'multiple_choice' else 'target'} skipped")
    name = str(data.get("name") or (path.parent.name if path.stem == "task" else path.stem))
    return BigBenchTask(name, kind, rowset, str(data.get("task_prefix") or ""), str(data.get("description") or ""))


def _mc_row(path: Path, index: int, example: dict[str, Any]) -> dict[str, Any]:
    scores = example["target_scores"]
    if not isinstance(scores, dict) or not scores:
        raise TaskError(f"{path} example {index}: target_scores must be a non-empty {{choice: score}} object")
    try:
        values = [float(v) for v in scores.values()]
    except (TypeError, ValueError, OverflowError):
        values = []
    if len(values) != len(scores) or not all(math.isfinite(v) for v in values):
        raise TaskError(f"{path} example {index}: target_scores values must be finite numbers")
    best = max(values)
    if best <= 0:
        raise TaskError(f"{path} example {index}: no choice has a positive score, so there is no correct answer; fix target_scores")
    return {
        "id": str(index),
        "question": str(example["input"]),
        "choices": [str(c) for c in scores],
        "answer": [i for i, v in enumerate(values) if v == best],
    }
