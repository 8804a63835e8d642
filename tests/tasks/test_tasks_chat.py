"""Prompts under a chat template and a system instruction, written out by hand (lm-eval's layout, tasks.chat).

The template is the test tokenizer's (tests/conftest.py CHAT_TEMPLATE): `<|bos|>`, then
`<|role|>\\ncontent<|end|>\\n` per message, then `<|assistant|>\\n`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetscope.backends.chat import load_chat_template
from forgetscope.tasks import TaskError, TaskOptions, load_task
from forgetscope.tasks.chat import PromptStyle, maybe_delimit

B = "<|bos|>"
ITEM = "Question: What is 2 + 2?\nAnswer:"
SHOTS = [("Question: Sky colour?\nAnswer:", "blue"), ("Question: Grass colour?\nAnswer:", "green")]


@pytest.fixture(scope="module")
def chat(chat_llama_dir):
    return load_chat_template(str(chat_llama_dir))


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "test.jsonl").write_text(json.dumps(
        {"id": "q1", "question": "What is 2 + 2?", "choices": ["4", "5"], "answer": 0}) + "\n")
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"question": "Sky colour?", "choices": ["blue", "green"], "answer": 0}) + "\n"
        + json.dumps({"question": "Grass colour?", "choices": ["red", "green"], "answer": 1}) + "\n")
    path = tmp_path / "quiz.yaml"
    path.write_text("path: test.jsonl\ndescription: Arithmetic and colours.\n"
                    "fewshot: {k: 2, file: train.jsonl, sampler: first_n}\n")
    return path


def _item(spec: Path, style: PromptStyle | None, k: int = 2):
    task = load_task(str(spec), options=TaskOptions(num_fewshot=k, prompt=style))
    return task, task.items[0]


def test_zero_shot_chat_prompt_and_raw_choices(spec, chat):
    task, item = _item(spec, PromptStyle(chat=chat), k=0)
    assert item.contexts == (f"{B}<|system|>\nArithmetic and colours.<|end|>\n<|user|>\n{ITEM}<|end|>\n<|assistant|>\n",)
    # the assistant's turn starts with the answer: no target delimiter (lm-eval's construct_requests)
    assert item.continuations == ("4", "5")
    assert "chat template default" in task.source


def test_k_shot_in_one_user_turn(spec, chat):
    _, item = _item(spec, PromptStyle(chat=chat, fewshot_as_multiturn=False))
    user = f"{SHOTS[0][0]} {SHOTS[0][1]}\n\n{SHOTS[1][0]} {SHOTS[1][1]}\n\n{ITEM}"
    assert item.contexts == (f"{B}<|system|>\nArithmetic and colours.<|end|>\n<|user|>\n{user}<|end|>\n"
                             "<|assistant|>\n",)


def test_k_shot_multiturn_with_system_instruction(spec, chat):
    _, item = _item(spec, PromptStyle(chat=chat, fewshot_as_multiturn=True, system_instruction="Answer briefly."))
    turns = "".join(f"<|user|>\n{q}<|end|>\n<|assistant|>\n{a}<|end|>\n" for q, a in SHOTS)
    assert item.contexts == (f"{B}<|system|>\nAnswer briefly.\n\nArithmetic and colours.<|end|>\n{turns}"
                             f"<|user|>\n{ITEM}<|end|>\n<|assistant|>\n",)
    assert item.continuations == ("4", "5")


def test_system_instruction_without_template_is_plain_text(spec):
    """lm-eval's plain rendering: the system message (instruction + delimiter + description) with nothing after."""
    _, item = _item(spec, PromptStyle(system_instruction="Answer briefly."))
    assert item.contexts == ("Answer briefly.\n\nArithmetic and colours."
                             f"{SHOTS[0][0]} blue\n\n{SHOTS[1][0]} green\n\n{ITEM}",)
    assert item.continuations == (" 4", " 5")


def test_plain_prompt_and_hash_unchanged_by_an_empty_style(spec):
    _, plain = _item(spec, None)
    _, styled = _item(spec, PromptStyle())
    assert plain.contexts == (f"Arithmetic and colours.{SHOTS[0][0]} blue\n\n{SHOTS[1][0]} green\n\n{ITEM}",)
    assert styled == plain and styled.item_hash == plain.item_hash


def test_item_hash_covers_template_instruction_and_layout(spec, chat):
    hashes = {_item(spec, style)[1].item_hash for style in (
        None, PromptStyle(system_instruction="Be brief."), PromptStyle(chat=chat),
        PromptStyle(chat=chat, fewshot_as_multiturn=True),
        PromptStyle(chat=chat, fewshot_as_multiturn=True, system_instruction="Be brief."))}
    assert len(hashes) == 5


def test_winogrande_like_items_template_every_context(tmp_path, chat):
    """One context per option, one shared continuation: each context is a chat of its own."""
    path = tmp_path / "wino.jsonl"
    path.write_text(json.dumps({"sentence": "The cup fell because _ was slippery.", "option1": "the cup",
                                "option2": "the table", "answer": "1"}) + "\n")
    item = load_task(f"winogrande={path}", options=TaskOptions(prompt=PromptStyle(chat=chat))).items[0]
    assert item.contexts == tuple(f"{B}<|user|>\nThe cup fell because {o}<|end|>\n<|assistant|>\n"
                                  for o in ("the cup", "the table"))
    assert item.continuations == ("was slippery.", "was slippery.")


def test_generative_items_get_the_generation_prompt(tmp_path, chat):
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps({"prompt": "Say hi.", "answer": "hi"}) + "\n")
    item = load_task(str(path), options=TaskOptions(prompt=PromptStyle(chat=chat))).items[0]
    assert item.contexts == (f"{B}<|user|>\nSay hi.<|end|>\n<|assistant|>\n",)


def test_synthetic_tasks_refuse_a_chat_template(chat):
    from forgetscope.train.tasks import load_task as load_any

    with pytest.raises(TaskError, match="apply-chat-template"):
        load_any("synth_facts_mc", options=TaskOptions(prompt=PromptStyle(chat=chat)))


@pytest.mark.parametrize("prefix,suffix,joined", [
    ("Be brief.", "Quiz.", "Be brief.\n\nQuiz."), ("Be brief.\n", "Quiz.", "Be brief.\nQuiz."),
    ("Be brief.", " Quiz.", "Be brief. Quiz."), (None, "Quiz.", "Quiz."), ("Be brief.", "", "Be brief.")])
def test_maybe_delimit_as_lm_eval(prefix, suffix, joined):
    assert maybe_delimit(prefix, suffix, "\n\n") == joined
