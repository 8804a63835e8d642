"""Built-in tasks: each row mapping against hand-written lm-eval renderings, on local copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetscope.tasks import TaskError, TaskOptions, list_builtin_tasks, load_task
from forgetscope.tasks.builtin import BUILTINS


def _load(data_dir: Path, name: str, **options):
    return load_task(f"{name}={data_dir / 'builtin' / (name + '.jsonl')}", options=TaskOptions(**options) if options else None)


def test_registry_lists_every_builtin_with_local_hint():
    infos = {i.name: i for i in list_builtin_tasks()}
    assert set(infos) == {"arc_easy", "arc_challenge", "hellaswag", "boolq", "piqa", "sciq", "openbookqa", "mmlu", "winogrande", "gsm8k"}
    assert infos["arc_challenge"].hf_config == "ARC-Challenge" and infos["gsm8k"].kind == "generate"
    assert "--task mmlu=" in infos["mmlu"].local_hint


def test_arc_uses_own_ids_and_label_lookup(data_dir: Path):
    task = _load(data_dir, "arc_easy")
    first, second = task.items
    assert task.name == "arc_easy" and "via built-in arc_easy" in task.source
    assert first.item_id == "Mercury_7175875" and first.gold == (2,)
    assert first.context.startswith("Question: An astronomer observes") and first.context.endswith("rotation?\nAnswer:")
    assert first.continuations[2] == " Planetary days will become shorter."
    assert second.item_id == "NYSEDREGENTS_2015_4_8" and second.gold == (3,)  # answerKey "4" among labels 1..4


def test_hellaswag_preprocessing(data_dir: Path):
    roof, stove = _load(data_dir, "hellaswag").items
    assert roof.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert roof.continuations == (" is using wrap to wrap a pair of skis.", " is ripping level tiles off.",
                                  " is holding a rubik's cube.", " starts pulling up roofing on a roof.")  # fmt: skip
    assert roof.gold == (3,) and roof.item_id == "0"
    assert stove.context == "Home and Garden: How to clean a stove top. Remove the grates."
    assert stove.continuations[:2] == ("  Soak them in hot soapy water.", " Paint them blue today.")  # as lm-eval
    assert stove.gold == (0,)


def test_boolq(data_dir: Path):
    iran, sun = _load(data_dir, "boolq").items
    assert iran.context == (
        "Persian language -- Persian is a Western Iranian language.\n"
        "Question: do iran and afghanistan speak the same language?\nAnswer:"
    )
    assert iran.continuations == (" no", " yes") and iran.gold == (1,) and sun.gold == (0,)
    superglue = BUILTINS["boolq"].row_to_item({"question": "q", "passage": "p", "idx": 7, "label": 0}, 3)
    assert superglue.item_id == "7" and superglue.gold == (0,)


def test_piqa(data_dir: Path):
    butter, bread = _load(data_dir, "piqa").items
    assert butter.context == "Question: When boiling butter, when it's ready, you can\nAnswer:"
    assert butter.continuations == (" Pour it onto a plate", " Pour it into a jar") and butter.gold == (1,)
    assert bread.gold == (0,)


def test_sciq_order_and_gold_three(data_dir: Path):
    cheese, decay = _load(data_dir, "sciq").items
    assert cheese.context == (
        "Mesophiles grow best in moderate temperature.\nQuestion: What type of organism is commonly used "
        "in preparation of foods such as cheese and yogurt?\nAnswer:"
    )
    assert cheese.choices == ("protozoa", "gymnosperms", "viruses", "mesophilic organisms") and cheese.gold == (3,)
    assert decay.context == "\nQuestion: What is the least dangerous radioactive decay?\nAnswer:"


def test_openbookqa(data_dir: Path):
    sun, food = _load(data_dir, "openbookqa").items
    assert sun.item_id == "7-980" and sun.context == "The sun is responsible for" and sun.gold == (3,)
    assert sun.continuations[3] == " plants sprouting, blooming and wilting"
    assert food.gold == (2,)


def test_mmlu_letters_description_and_category(data_dir: Path):
    algebra, anatomy = _load(data_dir, "mmlu").items
    assert algebra.context == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    )
    assert algebra.continuations == (" A", " B", " C", " D") and algebra.gold == (1,)
    assert algebra.category == "abstract_algebra" and anatomy.category == "anatomy"
    assert anatomy.context.split("\n\n", 1)[1].startswith("What is the embryological origin of the hyoid bone?\nA. The first")
    assert anatomy.gold == (3,)
    bare = BUILTINS["mmlu"].row_to_item({"question": "Q?", "subject": "x", "choices": ["a", "b", "c", "d"], "answer": 0})
    assert bare.context == "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"  # no description outside a task


def test_winogrande_partial_scoring(data_dir: Path):
    task = _load(data_dir, "winogrande")
    sarah = task.items[0]
    assert sarah.contexts == (
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    )
    assert sarah.continuations == (" always got the harder cases.",) * 2
    assert sarah.choices == ("Sarah", "Maria") and sarah.gold == (0,)
    assert sarah.requests()[1] == ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases.")
    assert task.items[2].gold == (1,)
    shot = load_task(f"winogrande={data_dir / 'builtin' / 'winogrande.jsonl'}",
                     options=TaskOptions(num_fewshot=1, fewshot_source="validation"))  # fmt: skip
    first = shot.items[0]
    assert first.contexts[0].endswith("\n\nSarah was a much better surgeon than Maria so Sarah")
    prefix = first.contexts[0].split("\n\n")[0]
    assert prefix in ("The trophy doesn't fit into the brown suitcase because the trophy is too large.",
                      "I poured water from the bottle into the cup until the cup was full.")  # fmt: skip


def test_gsm8k_generative_with_worked_solution_shots(data_dir: Path):
    zero = load_task(f"gsm8k={data_dir / 'gsm8k' / 'test.jsonl'}")
    ducks, pens = zero.items
    assert zero.kind == "generate"
    assert ducks.context.startswith("Question: Janet's ducks lay 16 eggs") and ducks.context.endswith("every day?\nAnswer:")
    assert ducks.answers == ("18",) and pens.answers == ("1200",)
    gen = zero.generation
    assert gen.stop == ("Question:", "\n\n") and gen.max_new_tokens == 256
    assert gen.judge("She makes 9 * 2 = $18.\n#### 18", ducks.answers) == ("18", True)
    assert gen.judge("So it is $1,200.", pens.answers)[1]

    task = load_task(f"gsm8k={data_dir / 'gsm8k'}", options=TaskOptions(num_fewshot=2))
    context = task.items[0].context
    assert context.count("Question:") == 3 and "\n#### " in context  # shots show full solutions
    assert context.endswith("\n\nQuestion: Janet's ducks lay 16 eggs per day. She eats three for breakfast and "
                            "bakes muffins with four. She sells the rest for $2 each. How much does she make every day?\nAnswer:")  # fmt: skip
    assert "2-shot from split 'train'" in task.source
    again = load_task(f"gsm8k={data_dir / 'gsm8k'}", options=TaskOptions(num_fewshot=2))
    assert [i.item_hash for i in again.items] == [i.item_hash for i in task.items]


def test_builtin_fewshot_split_needs_a_folder(data_dir: Path):
    with pytest.raises(TaskError, match="few-shot examples come from split 'train'.*give a few-shot file"):
        load_task(f"gsm8k={data_dir / 'gsm8k' / 'test.jsonl'}", options=TaskOptions(num_fewshot=1))


def test_builtin_over_wrong_schema_names_row_and_columns(data_dir: Path):
    with pytest.raises(TaskError, match=r"mc.jsonl line 1: row does not match the Rowan/hellaswag schema .*activity_label"):
        load_task(f"hellaswag={data_dir / 'mc.jsonl'}")


def test_builtin_path_must_exist_and_name_must_be_known(tmp_path: Path):
    with pytest.raises(TaskError, match="not found.*--task arc_easy="):
        load_task(f"arc_easy={tmp_path / 'missing.jsonl'}")
    with pytest.raises(TaskError, match="unknown built-in task 'arc_hard'"):
        load_task(f"arc_hard={tmp_path}")


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_accepts_a_template_override(data_dir: Path, name: str):
    path = data_dir / ("gsm8k/test.jsonl" if name == "gsm8k" else f"builtin/{name}.jsonl")
    if name == "arc_challenge":
        path = data_dir / "builtin/arc_easy.jsonl"
    default = load_task(f"{name}={path}")
    options = TaskOptions(template="Custom: {id}\n")
    if name == "winogrande":  # partial scoring builds its own contexts: say so rather than ignore it
        with pytest.raises(TaskError, match="winogrande.jsonl line 1: winogrande builds one context per option"):
            load_task(f"{name}={path}", options=options)
        return
    custom = load_task(f"{name}={path}", options=options)
    assert len(custom) == len(default) >= 2
    assert custom.items[0].context.startswith(("Custom: ", "The following"))
    assert custom.items[0].item_hash != default.items[0].item_hash


def test_mmlu_fewshot_is_first_dev_rows_of_the_same_subject(tmp_path: Path, data_dir: Path):
    import json

    (tmp_path / "test.jsonl").write_text((data_dir / "builtin" / "mmlu.jsonl").read_text())
    dev = [
        {"question": f"{subject} dev {i}?", "subject": subject, "choices": ["w", "x", "y", "z"], "answer": i}
        for subject in ("anatomy", "abstract_algebra")
        for i in range(3)
    ]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    task = load_task(f"mmlu={tmp_path}", options=TaskOptions(num_fewshot=2))
    algebra = task.items[0].context
    assert algebra.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "abstract_algebra dev 0?\nA. w\nB. x\nC. y\nD. z\nAnswer: A\n\n"
        "abstract_algebra dev 1?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\nFind the degree"
    )
    assert "anatomy dev" not in algebra and "anatomy dev 1?" in task.items[1].context
    assert "2-shot from split 'dev', first rows, same category" in task.source
    with pytest.raises(TaskError, match="4-shot needs 4 example rows but the few-shot source has 3 in category"):
        load_task(f"mmlu={tmp_path}", options=TaskOptions(num_fewshot=4))
