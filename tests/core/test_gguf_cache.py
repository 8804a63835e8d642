"""The GGUF conversion cache: convert once, then load the saved copy; never use a partial copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetscope.backends import gguf_cache
from forgetscope.backends.gguf_cache import converted_dir, gguf_cache_enabled, load_gguf_cached


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGETSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _loaders(tiny_llama_dir: Path, calls: list[str]):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def convert():
        calls.append("convert")
        return AutoModelForCausalLM.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)

    def load(directory: Path):
        calls.append(f"load {directory.name}")
        return AutoModelForCausalLM.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)

    return convert, load


def test_second_load_reads_the_saved_copy_with_identical_weights_and_tokens(tmp_path, cache_env, tiny_llama_dir):
    import torch

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"pretend GGUF bytes")
    calls: list[str] = []
    convert, load = _loaders(tiny_llama_dir, calls)
    first, tok_first, cached_first = load_gguf_cached(gguf, "float32", convert, load)
    second, tok_second, cached_second = load_gguf_cached(gguf, "float32", convert, load)
    target = converted_dir(gguf, "float32")
    assert (cached_first, cached_second) == (False, True)
    assert calls == ["convert", f"load {target.name}"]
    assert target.parent == cache_env / "gguf" and (target / "model.safetensors").is_file()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    text = "The capital of Norway is Oslo."
    assert tok_first(text)["input_ids"] == tok_second(text)["input_ids"]


def test_copy_is_keyed_by_content_and_dtype(tmp_path, cache_env):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"version one")
    one = converted_dir(gguf, "float32")
    assert converted_dir(gguf, "bfloat16") != one
    gguf.write_bytes(b"version two!")  # new content (and size): a new key
    assert converted_dir(gguf, "float32") != one


def test_a_copy_without_its_completion_marker_is_converted_again(tmp_path, cache_env, tiny_llama_dir):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"pretend GGUF bytes")
    target = converted_dir(gguf, "float32")
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # what a killed, non-atomic save could leave
    calls: list[str] = []
    convert, load = _loaders(tiny_llama_dir, calls)
    _, _, cached = load_gguf_cached(gguf, "float32", convert, load)
    assert not cached and calls == ["convert"]
    assert (target / gguf_cache._DONE).is_file() and (target / "model.safetensors").is_file()


def test_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("FORGETSCOPE_GGUF_CACHE", "0")
    assert not gguf_cache_enabled()
    monkeypatch.setenv("FORGETSCOPE_GGUF_CACHE", "1")
    assert gguf_cache_enabled()
