"""--apply-chat-template renders with the tokenizer that is scored: the checkpoint's revision (MODEL@REV,
--revision, --model-args revision=), its subfolder (--model-args subfolder=), an adapter's base model.

A local HF cache (hub layout, hub offline) holds org/chat at three commits: main has the template
of `chat_llama_dir`, step2 and step3 another one, so a prompt shows which tokenizer rendered it.
"""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.records.store import load_records
from tests.helpers import write_quiz

runner = CliRunner()
B = "<|bos|>"
OTHER_TEMPLATE = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}[assistant] {% endif %}")
#: item q1's prompt rendered by each template (conftest.CHAT_TEMPLATE, OTHER_TEMPLATE)
MAIN_PROMPT = f"{B}<|user|>\nQuestion: Which one is number 1?\nAnswer:<|end|>\n<|assistant|>\n"
OTHER_PROMPT = f"{B}[user] Question: Which one is number 1?\nAnswer:\n[assistant] "
COMMITS = {"main": "a" * 40, "step2": "b" * 40, "step3": "c" * 40}


def _with_template(source, target, template: str):
    shutil.copytree(source, target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture()
def chat_hub(tmp_path, monkeypatch, chat_llama_dir):
    """org/chat in a local HF cache: main (commit a...) with chat_llama_dir's template, step2 and step3
    (commits b..., c...) with OTHER_TEMPLATE."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    repo = root / "models--org--chat"
    shutil.copytree(chat_llama_dir, repo / "snapshots" / COMMITS["main"])
    for ref in ("step2", "step3"):
        _with_template(chat_llama_dir, repo / "snapshots" / COMMITS[ref], OTHER_TEMPLATE)
    (repo / "refs").mkdir()
    for ref, commit in COMMITS.items():
        (repo / "refs" / ref).write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo


@pytest.fixture()
def quiz(tmp_path):
    return write_quiz(tmp_path / "quiz.jsonl", 4)


def _prompts(out) -> dict[str, str]:
    """checkpoint -> item q1's stored prompt."""
    records = load_records([out])
    return dict(zip(records.loc[records.item_id == "q1", "checkpoint"], records.loc[records.item_id == "q1", "prompt"]))


def _eval(model, quiz, out, *extra):
    result = runner.invoke(app, ["eval", str(model), "-t", str(quiz), "-o", str(out), "--apply-chat-template",
                                 *map(str, extra)])
    assert result.exit_code == 0, result.output
    return _prompts(out)


def test_eval_renders_the_template_of_the_revision_it_scores(chat_hub, tmp_path, quiz):
    assert _eval("org/chat@step2", quiz, tmp_path / "at") == {"org/chat@step2": OTHER_PROMPT}
    assert _eval("org/chat@main", quiz, tmp_path / "main") == {"org/chat@main": MAIN_PROMPT}
    assert _eval("org/chat", quiz, tmp_path / "option", "--revision", "step2") == {"org/chat@step2": OTHER_PROMPT}
    by_args = _eval("org/chat", quiz, tmp_path / "args", "--model-args", "revision=step2", "--name", "by-args")
    assert by_args == {"by-args": OTHER_PROMPT}
    hashes = [set(load_records([tmp_path / out])["item_hash"]) for out in ("at", "option", "args", "main")]
    assert hashes[0] == hashes[1] == hashes[2] and not hashes[0] & hashes[3]


def test_compare_and_sequence_render_the_revisions_they_score(chat_hub, tmp_path, quiz):
    out = tmp_path / "res"
    result = runner.invoke(app, ["compare", "org/chat@step2", "org/chat@step3", "-t", str(quiz), "-o", str(out),
                                 "--apply-chat-template"])
    assert result.exit_code == 0, result.output
    assert _prompts(out) == {"org/chat@step2": OTHER_PROMPT, "org/chat@step3": OTHER_PROMPT}
    result = runner.invoke(app, ["sequence", "org/chat", "--revisions", "step2,step3", "-t", str(quiz),
                                 "-o", str(tmp_path / "seq"), "--apply-chat-template"])
    assert result.exit_code == 0, result.output
    assert set(_prompts(tmp_path / "seq").values()) == {OTHER_PROMPT}
    # main's template differs from step2's: their prompts could not be paired
    result = runner.invoke(app, ["compare", "org/chat@main", "org/chat@step2", "-t", str(quiz), "-o", str(out),
                                 "--apply-chat-template"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: org/chat@main and org/chat@step2 have different chat templates")


def test_a_subfolder_model_renders_its_own_template(tmp_path, quiz, chat_llama_dir):
    """--model-args subfolder=sub scores sub's model and tokenizer: the template is sub's, not the top folder's."""
    top = _with_template(chat_llama_dir, tmp_path / "top", OTHER_TEMPLATE)
    shutil.copytree(chat_llama_dir, top / "sub")
    prompts = _eval(top, quiz, tmp_path / "res", "--model-args", "subfolder=sub", "--name", "sub")
    assert prompts == {"sub": MAIN_PROMPT}


@pytest.fixture()
def adapter_dir(tmp_path, chat_llama_dir):
    """A LoRA on chat_llama_dir, saved without a tokenizer (as peft saves one)."""
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(chat_llama_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    out = tmp_path / "adapter"
    model.save_pretrained(out)
    assert not list(out.glob("tokenizer*"))
    return out


def test_an_adapter_renders_its_base_models_template(chat_hub, tmp_path, quiz, adapter_dir, chat_llama_dir):
    assert _eval(adapter_dir, quiz, tmp_path / "res", "--name", "lora") == {"lora": MAIN_PROMPT}
    # a base at a hub revision: that revision's template
    on_step2 = tmp_path / "on_step2"
    shutil.copytree(adapter_dir, on_step2)
    config = json.loads((on_step2 / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "org/chat@step2"
    (on_step2 / "adapter_config.json").write_text(json.dumps(config))
    assert _eval(on_step2, quiz, tmp_path / "res2", "--name", "lora2") == {"lora2": OTHER_PROMPT}
    # an adapter that ships its own tokenizer is scored with it, so its template is used
    AutoTokenizer.from_pretrained(_with_template(chat_llama_dir, tmp_path / "tok", OTHER_TEMPLATE)).save_pretrained(
        adapter_dir)
    assert _eval(adapter_dir, quiz, tmp_path / "res3", "--name", "own") == {"own": OTHER_PROMPT}
