"""Task loaders (JSONL, CSV, JSON, BIG-bench task.json, YAML spec) under any input: a Task or a TaskError."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from forgetscope.tasks import load_task
from forgetscope.tasks.base import Task, TaskError

from .strategies import FUZZ, any_bytes, fields, json_values, one_line, to_json, write, yaml_text

ROW_FIELDS = ["id", "question", "choices", "answer", "category", "prompt", "answers", "choice_0", "choice_1", "A", "B"]
VALID_JSONL = (b'{"id": "q1", "question": "2 + 3?", "choices": ["4", "5", "6"], "answer": 1}\n'
               b'{"id": "q2", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "Paris"}\n')
VALID_CSV = b'id,question,choices,answer\nq1,2 + 3?,"[""4"", ""5""]",1\nq2,Capital?,"[""Paris"", ""Rome""]",0\n'
VALID_SPEC = (b'name: quiz\npath: items.jsonl\ntemplate: "Q: {question}\\nA:"\ntarget_delimiter: " "\n'
              b'fewshot: {k: 1, seed: 3}\nlimit: 2\n')
VALID_BIGBENCH = (b'{"name": "bb", "task_prefix": "Answer.\\n", "examples": [{"input": "2 + 3?", '
                  b'"target_scores": {"4": 0, "5": 1}}, {"input": "1 + 1?", "target_scores": {"2": 1, "3": 0}}]}')


def load(folder: Path, name: str, data: bytes | str) -> Task | None:
    """load_task on the file; None when it raised TaskError (whose message is checked)."""
    path = write(folder, name, data)
    try:
        return load_task(str(path))
    except TaskError as exc:
        one_line(exc)
        return None


def check_task(task: Task | None) -> None:
    if task is None:
        return
    assert task.items
    for item in task.items:
        assert item.kind in ("multiple_choice", "generate")
        if item.kind == "multiple_choice":
            assert item.choices and all(0 <= g < len(item.choices) for g in item.gold)
        else:
            assert item.answers


@FUZZ
@given(data=any_bytes(VALID_JSONL))
@example(data=b'{"question": "q", "choices": ["a", "b"], "answer": 0}\n\xff\n')
@example(data=b'{"question": "q", "choices": ["a", "b"], "answer": ' + b"1" * 5000 + b"}\n")
@example(data=b"[" * 5000 + b"\n")
def test_jsonl_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "items.jsonl", data))


@FUZZ
@given(rows=st.lists(fields(ROW_FIELDS), min_size=1, max_size=3))
@example(rows=[{"question": "q", "choices": ["a", "b"], "answer": True}])
@example(rows=[{"question": "q", "choices": ["a", None], "answer": 0}])
@example(rows=[{"question": "q", "choices": ["a", "b"], "answer": "9" * 5000}])
@example(rows=[{"\r": None}])  # a column name with a line break, listed in the message
def test_jsonl_fields_of_any_type(rows):
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "items.jsonl", "".join(to_json(r) + "\n" for r in rows)))


@FUZZ
@given(data=any_bytes(VALID_CSV))
@example(data=b"question,choices,answer\nq,\"[\"\"a\"\",\"\"b\"\"]\",--1\n")
@example(data=b"question,choices,answer\nq\x00,x,1\n")
def test_csv_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "items.csv", data))


@FUZZ
@given(header=st.lists(st.sampled_from(ROW_FIELDS), min_size=1, max_size=5, unique=True),
       cells=st.lists(st.lists(st.text(max_size=10), min_size=1, max_size=6), min_size=1, max_size=3))
def test_csv_cells_of_any_text(header, cells):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(cells)
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "items.csv", out.getvalue()))


@FUZZ
@given(data=st.one_of(json_values.map(to_json), st.lists(fields(ROW_FIELDS), max_size=3).map(to_json),
                      any_bytes(b"[" + VALID_JSONL.replace(b"}\n{", b"}, {").rstrip() + b"]")))
def test_json_list_file(data):
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "items.json", data))


@FUZZ
@given(data=st.one_of(
    any_bytes(VALID_BIGBENCH),
    st.builds(lambda examples, extra: to_json({**extra, "examples": examples}),
              st.lists(fields(["input", "target_scores", "target"]), min_size=1, max_size=3),
              fields(["name", "task_prefix", "description"], extra=False)),
    st.builds(lambda scores: to_json({"examples": [{"input": "q", "target_scores": scores}]}),
              st.dictionaries(st.text(max_size=4), json_values, max_size=3)),
))
@example(data='{"examples": [{"input": "q", "target_scores": {"a": 1e999, "b": 1}}]}')
@example(data='{"examples": [{"input": "q", "target_scores": {"a": ' + "9" * 400 + ', "b": 1}}]}')
def test_bigbench_task_json(data):
    with tempfile.TemporaryDirectory() as folder:
        check_task(load(Path(folder), "task.json", data))


SPEC_KEYS = ["name", "kind", "path", "bigbench", "columns", "template", "choices", "answer", "labels",
             "target_delimiter", "description", "category", "fewshot", "fewshot_delimiter", "fewshot_target",
             "limit", "max_new_tokens", "stop", "answer_regex", "regex_match", "ignore_case", "ignore_punctuation",
             "strip_chars"]  # not hf/builtin/config/split: those reach for the hub
SPEC_VALUES = st.one_of(json_values, st.sampled_from(
    ["items.jsonl", "missing.jsonl", "task.json", "multiple_choice", "generate", "question", "answer", "choices",
     "{question}", "{{ question }}", "Q: {question}", "{choices[0]}", "{{ choices | join(', ') }}", "first", "last",
     2, 1, 0, -1, {"k": 1}, {"k": 5, "seed": 2}, {"k": 1, "file": "items.jsonl"}, {"question": "question"}]))


@FUZZ
@given(data=any_bytes(VALID_SPEC))
@example(data=b"name: quiz\npath: items.jsonl\ndescription: \"\xff\"\n")
@example(data=b"name: [unclosed\n")
@example(data=b"a: " + b"[" * 3000)
def test_yaml_spec_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), "items.jsonl", VALID_JSONL)
        check_task(load(Path(folder), "spec.yaml", data))


@FUZZ
@given(spec=st.one_of(fields(SPEC_KEYS, SPEC_VALUES), json_values))
@example(spec={"kind": []})
@example(spec={"path": "items.jsonl", "fewshot": {"a\nb": 1}})
@example(spec={"path": "items.jsonl", "answer": "{{ 1 }}"})
@example(spec={"path": "items.jsonl", "template": "{question!z}"})
@example(spec={"path": "items.jsonl", "fewshot": {"k": 1, "file": "task.json"}})
def test_yaml_spec_fields_of_any_type(spec):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), "items.jsonl", VALID_JSONL)
        write(Path(folder), "task.json", VALID_BIGBENCH)
        check_task(load(Path(folder), "spec.yaml", yaml_text(spec)))
