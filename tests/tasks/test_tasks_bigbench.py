"""BIG-bench task.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetscope.tasks import TaskError, load_task


def test_bigbench_multiple_choice_with_several_golds(data_dir: Path):
    task = load_task(str(data_dir / "bb_demo" / "task.json"))
    assert task.name == "demo_bigbench" and task.kind == "multiple_choice"
    assert [i.item_id for i in task.items] == ["0", "1", "3"]  # example 2 is generative: skipped
    riddle, evens, bigger = task.items
    assert riddle.choices == ("a piano", "a door", "a map") and riddle.gold == (0,)
    assert evens.gold == (0, 2)
    assert bigger.gold == (1,)
    assert riddle.context == "Answer the riddle.\n\nQuestion: What has keys but cannot open locks?\nAnswer:"
    assert "1 example(s) without target_scores skipped" in task.source
    assert task.description == "A tiny BIG-bench style task for tests."


def test_bigbench_generative_only_file(tmp_path: Path):
    path = tmp_path / "arith" / "task.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"examples": [{"input": "1+1=", "target": "2"}, {"input": "2+2=", "target": ["4", "four"]}]}))
    task = load_task(str(path))
    assert task.name == "arith" and task.kind == "generate"
    assert task.items[1].answers == ("4", "four") and task.items[1].context == "2+2="


def test_bigbench_without_positive_score_is_an_error(tmp_path: Path):
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"examples": [{"input": "x", "target_scores": {"a": 0, "b": 0}}]}))
    with pytest.raises(TaskError, match="task.json example 0: no choice has a positive score"):
        load_task(str(path))
