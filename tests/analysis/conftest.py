"""Builders for small, hand-checkable records tables."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest


def build_pair(blocks: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Before/after records from blocks of items.

    Each block: task, k (n_choices), before and after (lists of 0/1, one per
    item), optional category, repeat (default 0), ids (default task-0, task-1,
    ... numbered on across a task's blocks; give them for repeats), before_norm / after_norm
    (correct_norm, default = correct).
    """
    rows = {"before": [], "after": []}
    numbering: dict[str, int] = defaultdict(int)
    for block in blocks:
        task, n = block["task"], len(block["before"])
        ids = block.get("ids")
        if ids is None:
            start = numbering[task]
            ids = [f"{task}-{i}" for i in range(start, start + n)]
            numbering[task] += n
        for side in ("before", "after"):
            norm = block.get(f"{side}_norm", block[side])
            for item_id, correct, correct_norm in zip(ids, block[side], norm):
                rows[side].append(
                    {
                        "checkpoint": side,
                        "task": task,
                        "item_id": item_id,
                        "item_hash": f"h:{task}:{item_id}",
                        "category": block.get("category", ""),
                        "n_choices": block["k"],
                        "repeat": block.get("repeat", 0),
                        "correct": bool(correct),
                        "correct_norm": bool(correct_norm),
                        "correct_per_token": bool(correct),
                    }
                )
    return pd.DataFrame(rows["before"]), pd.DataFrame(rows["after"])


@pytest.fixture
def pair():
    return build_pair
