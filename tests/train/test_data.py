"""Data sources from local files: plain text, JSONL, Hugging Face datasets (no download), and packing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetscope.train.config import SourceConfig
from forgetscope.train.data import load_documents, pack_source, source_fingerprint
from forgetscope.train.fields import ConfigError


def test_text_files_split_by_blank_line_line_or_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first doc\nstill first\n\nsecond doc\n")
    (tmp_path / "b.txt").write_text("third\n")
    cfg = SourceConfig(type="text", path="*.txt")
    assert load_documents("web", cfg, tmp_path) == ["first doc\nstill first", "second doc", "third"]
    assert load_documents("web", SourceConfig(type="text", path="*.txt", separator="line"), tmp_path) == \
        ["first doc", "still first", "second doc", "third"]
    assert load_documents("web", SourceConfig(type="text", path="a.txt", separator="file"), tmp_path) == \
        ["first doc\nstill first\n\nsecond doc"]  # stripped
    assert load_documents("web", SourceConfig(type="text", path="*.txt", docs=2), tmp_path) == \
        ["first doc\nstill first", "second doc"]
    with pytest.raises(ConfigError, match=r"sources\.web\.path: no file matches"):
        load_documents("web", SourceConfig(type="text", path="missing/*.txt"), tmp_path)


def test_jsonl_reads_the_field_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"body": "one"}) + "\n\n" + json.dumps({"body": "two"}) + "\n")
    assert load_documents("qa", SourceConfig(type="jsonl", path=str(path), field="body")) == ["one", "two"]
    with pytest.raises(ConfigError, match=r"sources\.qa\.field: .*qa\.jsonl:1: no 'text' key"):
        load_documents("qa", SourceConfig(type="jsonl", path=str(path)))
    path.write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"qa\.jsonl:1: not valid JSON"):
        load_documents("qa", SourceConfig(type="jsonl", path=str(path)))


def test_hf_datasets_from_local_files_and_saved_directories(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}", "n": i}) + "\n" for i in range(5)))
    cfg = SourceConfig(type="hf", path="json", data_files=["rows.jsonl"], split="train")
    assert load_documents("local", cfg, tmp_path) == [f"row {i}" for i in range(5)]
    datasets.Dataset.from_dict({"content": ["a b", "c d", "e f"]}).save_to_disk(str(tmp_path / "saved"))
    saved = SourceConfig(type="hf", path="saved", field="content", docs=2)
    assert load_documents("saved", saved, tmp_path) == ["a b", "c d"]
    with pytest.raises(ConfigError, match=r"sources\.saved\.field: 'text' is not one of content"):
        load_documents("saved", SourceConfig(type="hf", path="saved"), tmp_path)


def test_fingerprint_follows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    cfg = SourceConfig(type="text", path="a.txt")
    before = source_fingerprint("web", cfg, tmp_path)
    assert source_fingerprint("web", cfg, tmp_path) == before
    (tmp_path / "a.txt").write_text("hello there\n")
    assert source_fingerprint("web", cfg, tmp_path) != before
    synth = SourceConfig(type="synthetic", docs=10)
    assert source_fingerprint("facts", synth) != source_fingerprint("facts", SourceConfig(type="synthetic", docs=11))


def test_synthetic_options_reach_the_generator_and_bad_ones_are_named() -> None:
    docs = load_documents("facts", SourceConfig(type="synthetic", docs=3, options={"n_countries": 4, "n_people": 2}))
    assert len(docs) == 3
    with pytest.raises(ConfigError, match=r"sources\.facts\.options: not accepted by the facts generator"):
        load_documents("facts", SourceConfig(type="synthetic", docs=3, options={"countries": 4}))


def test_pack_source_holds_out_validation_rows(tiny_tokenizer_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from forgetscope.train.data import pack_texts

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    docs = load_documents("general", SourceConfig(type="synthetic", docs=200))
    packed = pack_source("general", docs, tokenizer, 16, 5, "fp")
    everything = pack_texts(tokenizer, docs, 16)
    assert packed.val.shape == (5, 16) and packed.train.shape == (everything.shape[0] - 5, 16)
    rows = {tuple(r) for r in everything.tolist()}
    assert {tuple(r) for r in packed.train.tolist()} | {tuple(r) for r in packed.val.tolist()} == rows
    assert torch.equal(pack_source("general", docs, tokenizer, 16, 5, "fp").val, packed.val)  # fixed by the source
    with pytest.raises(ConfigError, match=r"sources\.general: only \d+ sequences"):
        pack_source("general", docs[:2], tokenizer, 16, 20, "fp")


def test_pack_texts_puts_eos_after_every_document(tiny_tokenizer_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from forgetscope.train.data import pack_texts

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    docs = ["The cat sat.", "A dog ran.", "Question: What is 2 + 3?\nAnswer: 5"] * 20
    rows = pack_texts(tokenizer, docs, seq_len=16)
    expected: list[int] = []
    for d in docs:
        expected += tokenizer(d, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert rows.dtype == torch.long and rows.shape == (len(expected) // 16, 16)
    assert rows.flatten().tolist() == expected[: rows.numel()]
    with pytest.raises(ValueError, match="not enough"):
        pack_texts(tokenizer, ["hi"], seq_len=64)
