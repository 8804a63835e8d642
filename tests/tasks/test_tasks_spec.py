"""YAML task specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetscope.tasks import TaskError, TaskSpec, load_task


def test_yaml_spec_with_column_mapping_choice_templates_and_category(data_dir: Path):
    task = load_task(str(data_dir / "quiz.yaml"))
    assert task.name == "quiz" and len(task) == 2
    water = task.items[0]
    assert water.context == "Q: Is water wet?\nA:" and water.choices == ("no", "yes") and water.gold == (1,)
    assert water.category == "physics" and task.items[1].gold == (0,)


def test_unknown_key_names_the_key_and_the_allowed_keys(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("path: x.jsonl\ntemplte: 'Q: {question}'\n")
    with pytest.raises(TaskError, match=r"t.yaml line 2: templte: unknown field; known: name, kind, path, .*template.*; "
                                        r"did you mean template\?$"):
        load_task(str(path))
    path.write_text("path: x.jsonl\nfewshot: {k: 2, splt: train}\n")
    with pytest.raises(TaskError, match=r"t.yaml line 2: fewshot.splt: unknown field; known: k, split, file, seed"):
        load_task(str(path))


def test_wrong_types_and_bad_yaml(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("path: x.jsonl\nlimit: ten\n")
    with pytest.raises(TaskError, match="t.yaml line 2: limit: expected an integer, got 'ten'$"):
        load_task(str(path))
    path.write_text("path: [unclosed\n")
    with pytest.raises(TaskError, match="t.yaml line 2: not valid YAML"):
        load_task(str(path))


def test_generative_spec_builds_generation_config(tmp_path: Path, data_dir: Path):
    path = tmp_path / "gen.yaml"
    path.write_text(
        f"path: {data_dir / 'gen.jsonl'}\nkind: generative\nmax_new_tokens: 16\nstop: \"\\n\"\n"
        "answer_regex: '(\\d+)'\nregex_match: first\nstrip_chars: '$'\nignore_punctuation: true\n"
        "fewshot: 1\n"
    )
    task = load_task(str(path))
    gen = task.generation
    assert (gen.max_new_tokens, gen.stop, gen.answer_regex, gen.regex_match) == (16, ("\n",), r"(\d+)", "first")
    assert gen.strip_chars == "$" and gen.ignore_punctuation and task.name == "gen"
    assert task.items[0].context.count("Q:") == 2  # one shot: "<prompt> <answer>\n\n<prompt>"


def test_jinja_template_and_description_in_spec(data_dir: Path):
    spec = TaskSpec.from_dict(
        {"path": "mc.jsonl", "template": "{{ question | upper }}", "description": "Topic: {category}\n", "limit": 1},
        base_dir=data_dir,
    )
    item = spec.build().items[0]
    assert item.context == "Topic: math\nWHAT IS 2 + 2?"


def test_spec_without_source():
    with pytest.raises(TaskError, match="no data source"):
        TaskSpec().build()


def test_generic_spec_over_arc_layout_with_dotted_columns_and_labels(data_dir: Path):
    spec = TaskSpec.from_dict(
        {"path": "builtin/arc_easy.jsonl", "choices": "choices.text", "labels": "choices.label", "answer": "answerKey"},
        base_dir=data_dir,
    )
    generic = spec.build()
    builtin = TaskSpec(builtin="arc_easy", path=str(data_dir / "builtin/arc_easy.jsonl")).build()
    assert [i.item_hash for i in generic.items] == [i.item_hash for i in builtin.items]
    assert [i.item_id for i in generic.items] == ["Mercury_7175875", "NYSEDREGENTS_2015_4_8"]


def test_jinja_choice_list_and_answer_template(data_dir: Path):
    spec = TaskSpec.from_dict(
        {
            "path": "builtin/piqa.jsonl",
            "template": "Question: {{goal}}\nAnswer:",
            "choices": "{{ [sol1, sol2] }}",
            "answer": "{{ label }}",
        },
        base_dir=data_dir,
    )
    assert [i.item_hash for i in spec.build().items] == [
        i.item_hash for i in TaskSpec(builtin="piqa", path=str(data_dir / "builtin/piqa.jsonl")).build().items
    ]
