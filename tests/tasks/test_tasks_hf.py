"""Hugging Face datasets from local disk, and the offline message for hub ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetscope.tasks import TaskError, TaskOptions, TaskSpec, load_task

ROWS = [
    {"uid": "a", "stem": "Up or down?", "opts": ["up", "down"], "label": 0, "topic": "dir"},
    {"uid": "b", "stem": "Hot or cold?", "opts": ["hot", "cold"], "label": 1, "topic": "temp"},
    {"uid": "c", "stem": "Left or right?", "opts": ["left", "right"], "label": 1, "topic": "dir"},
]
COLUMNS = {"id": "uid", "question": "stem", "choices": "opts", "answer": "label", "category": "topic"}


def _dataset(rows=ROWS):
    import datasets

    return datasets.Dataset.from_list(rows)


def test_save_to_disk_folder_with_column_mapping(tmp_path: Path):
    _dataset().save_to_disk(str(tmp_path / "saved"))
    task = TaskSpec(hf=str(tmp_path / "saved"), columns=COLUMNS).build()
    assert [i.item_id for i in task.items] == ["a", "b", "c"]
    assert task.items[1].context == "Question: Hot or cold?\nAnswer:" and task.items[1].gold == (1,)
    assert task.items[0].category == "dir" and task.name == "saved"


def test_dataset_dict_folder_picks_the_split_and_fewshot_split(tmp_path: Path):
    import datasets

    train = _dataset([{**r, "uid": "t" + r["uid"], "stem": "train " + r["stem"]} for r in ROWS])
    datasets.DatasetDict({"train": train, "test": _dataset()}).save_to_disk(str(tmp_path / "dd"))
    spec = TaskSpec(path=str(tmp_path / "dd"), split="test", columns=COLUMNS)
    task = spec.with_options(TaskOptions(num_fewshot=2, fewshot_source="train")).build()
    assert [i.item_id for i in task.items] == ["a", "b", "c"]
    assert task.items[0].context.count("Question: train ") == 2
    assert "2-shot from split 'train'" in task.source
    with pytest.raises(TaskError, match="no split 'validation'; it has 'train', 'test'"):
        TaskSpec(path=str(tmp_path / "dd"), split="validation", columns=COLUMNS).build()


def test_folder_of_split_files_and_single_file(tmp_path: Path):
    folder = tmp_path / "data"
    folder.mkdir()
    _dataset().to_json(str(folder / "test.jsonl"))
    _dataset(ROWS[:1]).to_json(str(folder / "validation.jsonl"))
    task = TaskSpec(hf=str(folder), split="validation", columns=COLUMNS).build()
    assert [i.item_id for i in task.items] == ["a"]
    single = TaskSpec(hf=str(folder / "test.jsonl"), columns=COLUMNS).build()
    assert len(single) == 3 and single.items[2].gold == (1,)


def test_single_split_folder_is_used_whatever_the_split(tmp_path: Path):
    _dataset().to_parquet(str(tmp_path / "only.parquet"))
    task = TaskSpec(path=str(tmp_path), split="test", columns=COLUMNS).build()
    assert len(task) == 3 and "used the only split 'train'" in task.source


def test_offline_builtin_says_how_to_use_local_files():
    with pytest.raises(TaskError) as info:
        load_task("arc_easy")
    message = str(info.value)
    assert "allenai/ai2_arc" in message and "ARC-Easy" in message
    assert "could not be loaded offline" in message
    assert "--task arc_easy=/path/to/data" in message and "path:" in message


def test_offline_hub_spec_points_at_path_key():
    with pytest.raises(TaskError, match=r"'nobody/no_such_dataset'.*offline.*`path: /path/to/local/data`"):
        TaskSpec(hf="nobody/no_such_dataset").build()
