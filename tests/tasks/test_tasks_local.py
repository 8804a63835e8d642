"""Local JSONL / JSON / CSV / Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetscope.tasks import TaskError, TaskOptions, load_task


def test_jsonl_multiple_choice(data_dir: Path):
    task = load_task(str(data_dir / "mc.jsonl"))
    assert task.name == "mc" and task.kind == "multiple_choice" and len(task) == 5
    first, second = task.items[:2]
    assert first.item_id == "q1" and first.gold == (1,) and first.category == "math"
    assert first.context == "Question: What is 2 + 2?\nAnswer:"
    assert second.gold == (1,)  # "Paris" looked up by text
    assert str(data_dir / "mc.jsonl") in task.source


def test_jsonl_generative_with_answer_and_answers_and_row_index_id(data_dir: Path):
    task = load_task(str(data_dir / "gen.jsonl"))
    assert task.kind == "generate"
    assert [i.answers for i in task.items] == [("12",), ("red", "blue", "yellow"), ("3",)]
    assert task.items[2].item_id == "2"  # no id column: 0-based row index
    assert task.items[0].context == "Q: What is 3 * 4?\nA:"


def test_csv_with_json_list_choices_and_letter_columns(data_dir: Path):
    task = load_task(str(data_dir / "mc.csv"))
    assert [i.choices for i in task.items] == [("1", "2"), ("apple", "stone")]
    assert [i.gold for i in task.items] == [(1,), (0,)]
    letters = load_task(str(data_dir / "mc_letters.csv"))
    assert letters.items[0].choices == ("Mars", "Jupiter", "Venus", "Earth") and letters.items[0].gold == (1,)
    assert letters.items[1].choices == ("1", "2", "3") and letters.items[1].gold == (1,)


def test_parquet_and_json_list(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "p1", "question": "Up?", "choices": ["down", "up"], "answer": 1}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.json").write_text(json.dumps(rows))
    for name in ("t.parquet", "t.json"):
        task = load_task(str(tmp_path / name))
        assert task.items[0].choices == ("down", "up") and task.items[0].gold == (1,)
    assert load_task(str(tmp_path / "t.parquet")).items[0].item_hash == load_task(str(tmp_path / "t.json")).items[0].item_hash


def test_limit_template_and_name_overrides(data_dir: Path):
    task = load_task(str(data_dir / "mc.jsonl"), options=TaskOptions(limit=2, template="Q: {question}\nA:", name="quiz"))
    assert task.name == "quiz" and len(task) == 2 and task.items[0].context == "Q: What is 2 + 2?\nA:"
    plain = load_task(str(data_dir / "mc.jsonl"))
    assert task.items[0].item_hash != plain.items[0].item_hash


def test_fewshot_from_another_file_is_deterministic(data_dir: Path):
    options = TaskOptions(num_fewshot=2, fewshot_source=str(data_dir / "mc.jsonl"), fewshot_seed=3)
    a = load_task(str(data_dir / "mc.csv"), options=options)
    b = load_task(str(data_dir / "mc.csv"), options=options)
    assert [i.context for i in a.items] == [i.context for i in b.items]
    assert a.items[0].context.count("Question:") == 3 and a.items[0].context.endswith("Question: What is 1 + 1?\nAnswer:")
    assert "2-shot from" in a.source


def test_fewshot_from_same_file_never_shows_the_item(data_dir: Path):
    task = load_task(str(data_dir / "mc.jsonl"), options=TaskOptions(num_fewshot=4))
    for item in task.items:
        own = item.context.rsplit("\n\n", 1)[1]
        assert own not in item.context.rsplit("\n\n", 1)[0]


# ------------------------------------------------------------------ errors for people


def test_missing_file(tmp_path: Path):
    with pytest.raises(TaskError, match="nope.jsonl: file not found"):
        load_task(str(tmp_path / "nope.jsonl"))


def test_malformed_jsonl_names_the_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "choices": ["x"], "answer": 0}\n\n{"question": "b", \n')
    with pytest.raises(TaskError, match=r"bad.jsonl line 3: not valid JSON"):
        load_task(str(path))


def test_bad_answer_index_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "choices": ["x", "y"], "answer": 0}\n{"question": "b", "choices": ["x", "y"], "answer": 5}\n')
    with pytest.raises(TaskError, match=r"bad.jsonl line 2: answer index 5 is out of range for 2 choices"):
        load_task(str(path))


def test_missing_column_names_row_and_fix(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text('id,question,choices\na,"Q?","[""x"",""y""]"\n')
    with pytest.raises(TaskError, match=r"bad.csv line 2: no column 'answer'.*columns: id, question, choices.*columns:"):
        load_task(str(path))


def test_unsupported_and_unknown_task_arguments(tmp_path: Path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(TaskError, match="unsupported task file"):
        load_task(str(tmp_path / "x.txt"))
    with pytest.raises(TaskError, match="unknown task 'not_a_task'.*arc_easy"):
        load_task("not_a_task")
