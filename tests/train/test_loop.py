"""The training loop: packing, schedule, learning, determinism, checkpoint output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from forgetscope.train.loop import fit, lr_at, pack_texts, train_causal_lm  # noqa: E402
from forgetscope.train.synthetic import FactsSource  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return FactsSource(n_countries=6, n_people=3).training_texts(300, seed=0)


def test_pack_texts_puts_eos_after_every_document(tokenizer) -> None:
    docs = ["The cat sat.", "A dog ran.", "Question: What is 2 + 3?\nAnswer: 5"] * 20
    rows = pack_texts(tokenizer, docs, seq_len=16)
    expected: list[int] = []
    for d in docs:
        expected += tokenizer(d, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert rows.dtype == torch.long and rows.shape == (len(expected) // 16, 16)
    assert rows.flatten().tolist() == expected[: rows.numel()]
    with pytest.raises(ValueError, match="not enough"):
        pack_texts(tokenizer, ["hi"], seq_len=64)


def test_lr_schedule() -> None:
    kw = dict(steps=100, lr=1.0, warmup=10, min_lr=0.1)
    assert lr_at(0, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(9, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(10, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(55, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(55, schedule="linear", **kw) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(99, schedule="constant", **kw) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(50, schedule="exp", **kw)  # type: ignore[arg-type]


def test_fit_reduces_loss(tiny_llama_dir: Path, tokenizer, texts) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    rows = pack_texts(tokenizer, texts, seq_len=64)
    stats = fit(model, rows, steps=40, batch_size=8, lr=3e-3, warmup=4, log=None)
    assert len(stats.losses) == 40 and stats.tokens == 40 * 8 * 64
    assert sum(stats.losses[-5:]) / 5 < 0.7 * sum(stats.losses[:5]) / 5
    assert not model.training


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_train_causal_lm_is_deterministic_and_saves(tiny_llama_dir: Path, texts, tmp_path: Path) -> None:
    kw = dict(steps=6, batch_size=4, seq_len=32, lr=1e-3, warmup=2, seed=7, log=None)
    a = train_causal_lm(tiny_llama_dir, texts, tmp_path / "a", **kw)
    b = train_causal_lm(tiny_llama_dir, texts, tmp_path / "b", **kw)
    c = train_causal_lm(tiny_llama_dir, texts, tmp_path / "c", **{**kw, "seed": 8})
    wa, wb, wc, w0 = _weights(a), _weights(b), _weights(c), _weights(tiny_llama_dir)
    assert wa.keys() == wb.keys() == w0.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # another seed, another data order
    assert not all(torch.equal(wa[k], w0[k]) for k in wa)  # it did train
    log = json.loads((a / "train_log.json").read_text())
    assert len(log["losses"]) == 6 and log["settings"]["seed"] == 7

    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(a)
    assert AutoTokenizer.from_pretrained(a).eos_token == "<|eos|>"


def test_train_model_object_needs_tokenizer_and_works_for_gpt2(tiny_gpt2_dir: Path, tokenizer, texts, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    with pytest.raises(ValueError, match="tokenizer="):
        train_causal_lm(model, texts, tmp_path / "x", steps=1, log=None)
    logged: list[str] = []
    out = train_causal_lm(model, texts, tmp_path / "gpt2", tokenizer=tokenizer, steps=4, batch_size=2,
                          seq_len=32, warmup=1, log_every=2, log=logged.append)
    assert (out / "model.safetensors").exists() and len(logged) == 2 and "loss" in logged[0]


def test_rejects_sequences_longer_than_context(tiny_llama_dir: Path, tokenizer, texts) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    rows = pack_texts(tokenizer, texts * 4, seq_len=300)
    with pytest.raises(ValueError, match="context"):
        fit(model, rows, steps=1, log=None)
