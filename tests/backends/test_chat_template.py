"""A model's chat template: chosen as lm-eval chooses it, refused clearly when missing, no second BOS."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from forgetscope.backends.base import Tokenization
from forgetscope.backends.chat import load_chat_template
from forgetscope.tasks.base import TaskError
from tests.helpers import with_chat_template

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


@pytest.fixture(scope="module")
def two_templates_dir(tmp_path_factory, chat_llama_dir):
    return with_chat_template(chat_llama_dir, tmp_path_factory.mktemp("two_templates") / "model",
                              {"default": "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}",
                               "terse": "{% for m in messages %}{{ m['content'] }};{% endfor %}"})


def test_the_only_template_renders_with_the_generation_prompt(chat_llama_dir):
    chat = load_chat_template(str(chat_llama_dir))
    assert chat.name == "default"
    assert chat.render(MESSAGES) == "<|bos|><|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n"
    # add_generation_prompt=False continues the last message (lm-eval's gen_prefix case)
    assert chat.render(MESSAGES + [{"role": "assistant", "content": "A:"}], add_generation_prompt=False) \
        == "<|bos|><|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA:"


def test_a_named_template_of_several(two_templates_dir):
    assert load_chat_template(str(two_templates_dir)).render(MESSAGES) == "[system]S[user]U"
    terse = load_chat_template(str(two_templates_dir), "terse")
    assert terse.name == "terse" and terse.render(MESSAGES) == "S;U;"
    assert terse.digest != load_chat_template(str(two_templates_dir)).digest


@pytest.mark.parametrize("name,message", [("chatty", r"no chat template named 'chatty'.*\(default, terse\)")])
def test_an_unknown_name_lists_the_names(two_templates_dir, name, message):
    with pytest.raises(TaskError, match=message):
        load_chat_template(str(two_templates_dir), name)


def test_a_name_for_a_tokenizer_with_one_template_is_refused(chat_llama_dir):
    with pytest.raises(TaskError, match="one chat template"):
        load_chat_template(str(chat_llama_dir), "terse")
    assert load_chat_template(str(chat_llama_dir), "default").name == "default"  # its one template is the default


def test_no_template_is_one_clear_error(tiny_llama_dir):
    with pytest.raises(TaskError, match=r"has no chat template; drop --apply-chat-template"):
        load_chat_template(str(tiny_llama_dir))


def test_a_template_refusing_the_system_role_is_retried_without_it(tmp_path, chat_llama_dir):
    """lm-eval's HFLM.apply_chat_template: on a template error, drop the system messages and render again."""
    out = with_chat_template(chat_llama_dir, tmp_path / "model",
                             "{% for m in messages %}{% if m['role'] == 'system' %}"
                             "{{ raise_exception('no system role') }}{% endif %}<{{ m['content'] }}>{% endfor %}")
    assert load_chat_template(str(out)).render(MESSAGES) == "<U>"


def test_a_template_cannot_reach_python_internals(tmp_path, chat_llama_dir):
    out = with_chat_template(chat_llama_dir, tmp_path / "model", "{{ messages.__class__.__mro__ }}")
    with pytest.raises(TaskError, match=r"chat template refused the prompt: access to attribute '__class__'.*unsafe"):
        load_chat_template(str(out)).render(MESSAGES)  # transformers renders in Jinja's sandbox


def test_a_prompt_starting_with_the_bos_text_gets_no_second_bos(chat_llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(chat_llama_dir)
    bos = tokenizer.bos_token_id
    tokens = Tokenization(tokenizer)
    assert tokens.encode("hello")[0] == bos  # this tokenizer adds a BOS ...
    templated = tokens.encode("<|bos|>hello")
    assert templated == tokens.encode("hello") and templated.count(bos) == 1  # ... but not before a written one
    assert Tokenization(tokenizer, add_special_tokens=True).encode("<|bos|>hello").count(bos) == 2  # forced: as asked
