"""Tiny tokenizer and models: they reload through the Auto classes and are deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_tokenizer_round_trip(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    text = "Question: What is 23 + 45?\nAnswer: 68"
    ids = tok(text).input_ids
    assert tok.bos_token_id not in ids and tok.eos_token_id not in ids  # nothing added silently
    assert tok.decode(ids) == text
    # digits are one token each
    assert tok.convert_ids_to_tokens(tok("6845").input_ids) == ["6", "8", "4", "5"]


@pytest.mark.parametrize("fixture, cls", [("tiny_llama_dir", "LlamaForCausalLM"), ("tiny_gpt2_dir", "GPT2LMHeadModel")])
def test_model_round_trip(request: pytest.FixtureRequest, fixture: str, cls: str) -> None:
    path = request.getfixturevalue(fixture)
    assert (path / "model.safetensors").exists()
    model, tok = _load(path)
    assert type(model).__name__ == cls
    assert model.config.vocab_size == len(tok)
    ids = torch.tensor([tok("The cat sat.").input_ids])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(logits).all()


def test_same_seed_same_weights_different_seed_differs(tiny_llama_dir: Path, tiny_llama_dir_b: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from forgetscope.train.tiny import build_tiny_model

    again = build_tiny_model(tmp_path / "again", AutoTokenizer.from_pretrained(tiny_llama_dir), seed=0)
    a, _ = _load(tiny_llama_dir)
    b, _ = _load(tiny_llama_dir_b)
    a2, _ = _load(again)
    sa, sb, sa2 = a.state_dict(), b.state_dict(), a2.state_dict()
    assert all(torch.equal(sa[k], sa2[k]) for k in sa)
    assert not all(torch.equal(sa[k], sb[k]) for k in sa)


def test_model_build_leaves_global_rng_alone(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from forgetscope.train.tiny import make_model

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_model(tok, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_bad_arch_and_shape_rejected(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from forgetscope.train.tiny import make_model

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    with pytest.raises(ValueError, match="arch"):
        make_model(tok, arch="mamba")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        make_model(tok, hidden=65, heads=4)
