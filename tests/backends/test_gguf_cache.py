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


def test_a_gguf_file_is_parsed_once_inside_the_conversion_block(tmp_path):
    """Inside gguf_parsed_once the same file gives the same (already parsed) reader and the tensor-name
    table is built once; outside it, gguf is as it was."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("forgetscope.test", 7)
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    parses = []
    base_build = gguf.GGUFReader._build_fields

    def counting_build(self, *args, **kwargs):
        parses.append(1)
        return base_build(self, *args, **kwargs)

    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader._build_fields = counting_build
    try:
        with gguf_cache.gguf_parsed_once():
            first, second = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
            assert first is second and len(parses) == 1
            assert int(first.fields["forgetscope.test"].parts[-1][0]) == 7
            arch = gguf.MODEL_ARCH.LLAMA
            assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
        assert gguf.GGUFReader is original_reader and gguf.get_tensor_name_map is original_map
        assert gguf.GGUFReader(path) is not first and len(parses) == 2
    finally:
        gguf.GGUFReader._build_fields = base_build
