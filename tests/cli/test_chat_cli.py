"""--apply-chat-template, --system-instruction, --fewshot-as-multiturn through the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.cli.options import optional_values
from forgetscope.records.store import load_records
from tests.helpers import run_eval, with_chat_template, write_quiz

runner = CliRunner()
B = "<|bos|>"


@pytest.fixture()
def items(tmp_path):
    return write_quiz(tmp_path / "quiz.jsonl", 6)


def test_eval_scores_the_templated_prompts(tmp_path, items, chat_llama_dir):
    result = run_eval(chat_llama_dir, items, tmp_path / "res", "--apply-chat-template",
                      "--system-instruction", "Be brief.")
    assert result.exit_code == 0, result.output
    records = load_records([tmp_path / "res"]).set_index("item_id")
    assert records.loc["q1", "prompt"] == (f"{B}<|system|>\nBe brief.<|end|>\n<|user|>\nQuestion: Which one is "
                                          "number 1?\nAnswer:<|end|>\n<|assistant|>\n")
    assert len(records) == 6


def test_the_flag_before_the_checkpoint_takes_no_value(tmp_path, items, chat_llama_dir):
    """`--apply-chat-template ./model`: the path is the checkpoint, not a template name."""
    result = runner.invoke(app, ["eval", "--apply-chat-template", str(chat_llama_dir), "--task", str(items),
                                 "--output", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert load_records([tmp_path / "res"])["prompt"].str.startswith(B).all()


def test_templated_and_plain_records_never_pair(tmp_path, items, chat_llama_dir):
    assert run_eval(chat_llama_dir, items, tmp_path / "plain").exit_code == 0
    assert run_eval(chat_llama_dir, items, tmp_path / "chat", "--apply-chat-template").exit_code == 0
    result = runner.invoke(app, ["compare", str(tmp_path / "plain" / "records"), str(tmp_path / "chat" / "records")])
    assert result.exit_code == 2
    assert result.output.lstrip().startswith("error: before and after were not evaluated on the same items")
    assert "6 item(s) changed (item_hash" in result.output and "Traceback" not in result.output


def test_a_model_without_chat_template_is_one_line_exit_2(tmp_path, items, tiny_llama_dir):
    result = run_eval(tiny_llama_dir, items, tmp_path / "res", "--apply-chat-template")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "has no chat template" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_template_name_is_exit_2(tmp_path, items, chat_llama_dir):
    result = run_eval(chat_llama_dir, items, tmp_path / "res", "--apply-chat-template=tools")
    assert result.exit_code == 2 and "one chat template" in result.output


def test_multiturn_without_template_is_refused(tmp_path, items, chat_llama_dir):
    result = run_eval(chat_llama_dir, items, tmp_path / "res", "--fewshot-as-multiturn")
    assert result.exit_code == 2 and "--fewshot-as-multiturn needs --apply-chat-template" in result.output


def test_compare_refuses_checkpoints_with_different_templates(tmp_path, items, chat_llama_dir):
    other = with_chat_template(chat_llama_dir, tmp_path / "other",
                               "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    result = runner.invoke(app, ["compare", str(chat_llama_dir), str(other), "--task", str(items),
                                 "--output", str(tmp_path / "res"), "--apply-chat-template"])
    assert result.exit_code == 2 and "different chat templates" in result.output


@pytest.mark.parametrize("args,expected", [
    (["eval", "m", "--apply-chat-template"], ["eval", "m", "--apply-chat-template="]),
    (["eval", "--apply-chat-template", "./m", "-t", "x"], ["eval", "--apply-chat-template=", "./m", "-t", "x"]),
    (["eval", "--apply-chat-template", "org/m"], ["eval", "--apply-chat-template=", "org/m"]),
    (["eval", "m", "--apply-chat-template", "--task", "x"], ["eval", "m", "--apply-chat-template=", "--task", "x"]),
    (["eval", "m", "--apply-chat-template", "tool_use"], ["eval", "m", "--apply-chat-template", "tool_use"]),
    (["eval", "m", "--apply-chat-template=tool_use"], ["eval", "m", "--apply-chat-template=tool_use"]),
    (["eval", "m", "--", "--apply-chat-template"], ["eval", "m", "--", "--apply-chat-template"]),
])
def test_optional_value_of_apply_chat_template(args, expected):
    assert optional_values(args) == expected


def test_an_existing_folder_is_never_a_template_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodel").mkdir()
    assert optional_values(["eval", "--apply-chat-template", "mymodel"]) == ["eval", "--apply-chat-template=", "mymodel"]
