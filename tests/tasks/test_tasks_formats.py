"""Template rendering, gold resolution and few-shot assembly (pure functions)."""

from __future__ import annotations

import pytest

from forgetscope.tasks import TaskError
from forgetscope.tasks.formats import (
    FewShotPool,
    PromptFormat,
    build_items,
    parse_choices,
    render_template,
    resolve_gold,
)

ROW = {"question": "What is 2 + 2?", "choices": ["3", "4", "5"], "answer": 1, "id": "q1"}


def test_format_string_and_jinja_render_the_same_row():
    assert render_template("Q: {question}\nA:", ROW) == "Q: What is 2 + 2?\nA:"
    assert render_template("Q: {{question}}\nA:", ROW) == "Q: What is 2 + 2?\nA:"
    assert render_template("{% for c in choices %}[{{c}}]{% endfor %}", ROW) == "[3][4][5]"
    assert render_template("first={choices[0]}", ROW) == "first=3"


def test_template_with_unknown_field_names_the_field_and_columns():
    with pytest.raises(TaskError, match=r"\{missing\}.*columns: question, choices"):
        render_template("{missing}", ROW)
    with pytest.raises(TaskError, match="undefined"):
        render_template("{{ missing }}", ROW)


def test_default_multiple_choice_format_matches_lm_eval():
    item = PromptFormat().item(ROW, 0)
    assert item.contexts == ("Question: What is 2 + 2?\nAnswer:",)
    assert item.continuations == (" 3", " 4", " 5")
    assert item.gold == (1,)
    assert item.item_id == "q1"


def test_generative_default_template_is_the_prompt():
    item = PromptFormat(kind="generate").item({"prompt": "2+2=", "answers": ["4", "four"]}, 3)
    assert item.contexts == ("2+2=",) and item.answers == ("4", "four") and item.item_id == "3"


@pytest.mark.parametrize(
    ("answer", "labels", "gold"),
    [(2, None, (2,)), ("c", None, (2,)), ("C", None, (2,)), ("2", None, (2,)), ("3", ["1", "2", "3"], (2,)),
     ([0, "c"], None, (0, 2))],
)  # fmt: skip
def test_gold_by_index_text_letter_and_label(answer, labels, gold):
    assert resolve_gold(answer, ["a", "b", "c"], labels) == gold


def test_gold_text_wins_over_index_and_bad_gold_says_how_to_fix():
    assert resolve_gold("1", ["0", "1", "2"]) == (1,)  # the text "1", which is also index 1
    assert resolve_gold("2", ["10", "2"]) == (1,)  # the text "2", not index 2
    with pytest.raises(TaskError, match="out of range for 3 choices; use 0..2"):
        resolve_gold(7, ["a", "b", "c"])
    with pytest.raises(TaskError, match="not one of the choices"):
        resolve_gold("zebra", ["a", "b", "c"])


def test_choices_from_json_string():
    assert parse_choices('["a", "b"]') == ["a", "b"]
    assert parse_choices("['a', 'b']") == ["a", "b"]
    with pytest.raises(TaskError, match="must be a list"):
        parse_choices("a, b")


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "question": f"q{i}", "choices": ["x", "y"], "answer": i % 2} for i in range(n)]


def test_fewshot_is_deterministic_excludes_self_and_follows_lm_eval_layout():
    rows = _rows(6)
    fmt = PromptFormat(description="Solve.\n\n")
    pool = FewShotPool(k=3, rows=rows, where=lambda i: f"row {i}", same_source=True, seed=7)
    a = build_items(rows, fmt, where=lambda i: f"row {i}", fewshot=pool)
    b = build_items(rows, fmt, where=lambda i: f"row {i}", fewshot=pool)
    assert [i.contexts for i in a] == [i.contexts for i in b]
    for i, item in enumerate(a):
        shots = pool.indices(item.item_id, i)
        assert i not in shots and len(set(shots)) == 3
        expected = "Solve.\n\n" + "".join(
            f"Question: q{j}\nAnswer: {'xy'[j % 2]}\n\n" for j in shots
        ) + f"Question: q{i}\nAnswer:"
        assert item.context == expected
    other_seed = FewShotPool(k=3, rows=rows, where=str, same_source=True, seed=8)
    assert [other_seed.indices(f"r{i}", i) for i in range(6)] != [pool.indices(f"r{i}", i) for i in range(6)]


def test_fewshot_of_an_item_does_not_depend_on_limit():
    rows = _rows(8)
    pool = FewShotPool(k=2, rows=rows, where=str, same_source=True)
    full = build_items(rows, PromptFormat(), where=str, fewshot=pool)
    limited = build_items(rows, PromptFormat(), where=str, fewshot=pool, limit=3)
    assert [i.item_hash for i in limited] == [i.item_hash for i in full[:3]]


def test_fewshot_needs_enough_rows():
    rows = _rows(2)
    pool = FewShotPool(k=2, rows=rows, where=str, same_source=True)
    with pytest.raises(TaskError, match="2-shot needs 2 example rows but the few-shot source has 1"):
        build_items(rows, PromptFormat(), where=str, fewshot=pool)


def test_item_hash_changes_with_the_template_and_delimiter():
    base = PromptFormat().item(ROW, 0)
    assert PromptFormat(template="Q: {question}\nA:").item(ROW, 0).item_hash != base.item_hash
    assert PromptFormat(target_delimiter="").item(ROW, 0).item_hash != base.item_hash
    assert PromptFormat().item(dict(ROW), 0).item_hash == base.item_hash


def test_duplicate_ids_name_both_rows():
    rows = [dict(ROW), dict(ROW)]
    with pytest.raises(TaskError, match="line 2: item id 'q1' already used by .*line 1"):
        build_items(rows, PromptFormat(), where=lambda i: f"f.jsonl line {i + 1}")
