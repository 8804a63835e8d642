"""The lean Llama forward scores what transformers' LlamaForCausalLM scores, and only serves what it can."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from forgetscope.backends.base import LoglikelihoodRequest, Tokenization
from forgetscope.backends.hf import HFBackend
from forgetscope.backends.lean import LeanLlama, lean_unsupported

from ..helpers import mc_task


@pytest.fixture(scope="module")
def gqa_llama_dir(tmp_path_factory, tiny_tokenizer_dir):
    """Llama with grouped-query attention, biases on every projection, an untied head, rope_theta 5000."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                         tie_word_embeddings=False, max_position_embeddings=256, rope_theta=5000.0,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(3)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("gqa_llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _requests(tokenizer, n=24):
    tok = Tokenization(tokenizer)
    return [LoglikelihoodRequest(*tok.encode_pair(item.context, c)) for item in mc_task(n).items
            for c in item.continuations]


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "gqa_llama_dir"])
@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("max_length", [None, 24])
def test_lean_scores_like_transformers(request, fixture, pack, max_length):
    folder = str(request.getfixturevalue(fixture))
    assert lean_unsupported(folder) is None
    lean = HFBackend.from_pretrained(folder, batch_size=5, max_length=max_length)
    full = HFBackend.from_pretrained(folder, batch_size=5, max_length=max_length, lean=False)
    assert isinstance(lean.model, LeanLlama) and not isinstance(full.model, LeanLlama)
    assert type(lean.tokenizer) is type(full.tokenizer)
    requests = _requests(full.tokenizer)
    assert [r.context_ids for r in _requests(lean.tokenizer)] == [r.context_ids for r in requests]
    lean.pack = full.pack = pack
    a, b = lean.loglikelihood(requests), full.loglikelihood(requests)
    assert [r.n_tokens for r in a] == [r.n_tokens for r in b]
    assert [r.is_greedy for r in a] == [r.is_greedy for r in b]
    assert np.abs(np.array([r.logprob for r in a]) - np.array([r.logprob for r in b])).max() < 1e-5


def test_generation_swaps_in_transformers_model(tiny_llama_dir):
    from forgetscope.backends.base import GenerationRequest

    lean = HFBackend.from_pretrained(str(tiny_llama_dir), batch_size=2)
    full = HFBackend.from_pretrained(str(tiny_llama_dir), batch_size=2, lean=False)
    tok = Tokenization(full.tokenizer)
    requests = [GenerationRequest(tuple(tok.encode_context(f"Question: What is {i} plus {i}?\nAnswer:")),
                                  max_new_tokens=5) for i in range(3)]
    req = _requests(full.tokenizer, 4)
    before = [r.logprob for r in lean.loglikelihood(req)]
    assert lean.generate(requests) == full.generate(requests)
    assert lean._generation_model is not None  # generation needs transformers' KV cache
    assert isinstance(lean.model, LeanLlama)  # scoring stays lean: no dependence on task order
    assert [r.logprob for r in lean.loglikelihood(req)] == before


@pytest.mark.parametrize("dtype, expected", [("fp32", "float32"), ("bf16", "bfloat16"), ("auto", "float32")])
def test_dtype_aliases(tiny_llama_dir, dtype, expected):
    import torch

    backend = HFBackend.from_pretrained(str(tiny_llama_dir), dtype=dtype)
    assert isinstance(backend.model, LeanLlama) and backend.model.dtype == getattr(torch, expected)
    assert backend.model.layers[0].qkv.dtype == getattr(torch, expected)


def test_turned_off_by_the_environment(monkeypatch, tiny_llama_dir):
    monkeypatch.setenv("FORGETSCOPE_LEAN_FORWARD", "0")
    assert not isinstance(HFBackend.from_pretrained(str(tiny_llama_dir)).model, LeanLlama)


def test_what_it_does_not_serve(tmp_path, tiny_llama_dir, tiny_gpt2_dir):
    assert "model_type 'gpt2'" in lean_unsupported(tiny_gpt2_dir)
    assert lean_unsupported(tmp_path / "missing") == "not a local directory"
    assert not isinstance(HFBackend.from_pretrained(str(tiny_gpt2_dir)).model, LeanLlama)

    def variant(name, edit_config=None, edit_tokenizer=None, drop=None):
        folder = tmp_path / name
        shutil.copytree(tiny_llama_dir, folder)
        for file, edit in (("config.json", edit_config), ("tokenizer_config.json", edit_tokenizer)):
            if edit:
                data = json.loads((folder / file).read_text())
                edit(data)
                (folder / file).write_text(json.dumps(data))
        if drop:
            (folder / drop).unlink()
        return lean_unsupported(folder)

    assert variant("llama3rope", lambda c: c.update(rope_parameters={"rope_type": "llama3", "rope_theta": 1e4,
                                                                      "factor": 8.0})) == \
        "rope scaling other than the default"
    assert variant("oldrope", lambda c: (c.pop("rope_parameters", None),
                                         c.update(rope_scaling={"type": "linear", "factor": 2.0}))) == \
        "rope scaling other than the default"
    assert variant("gelu", lambda c: c.update(hidden_act="gelu")) == "hidden_act 'gelu'"
    assert variant("remote", lambda c: c.update(auto_map={"AutoModel": "x.Y"})) == "config has auto_map"
    assert variant("spm", edit_tokenizer=lambda t: t.update(tokenizer_class="LlamaTokenizer")) == \
        "tokenizer_class 'LlamaTokenizer'"
    assert variant("nosafetensors", drop="model.safetensors") == "no safetensors weights"
    # a transformers 4.x style config (rope_theta at the top) qualifies
    assert variant("v4", lambda c: (c.pop("rope_parameters", None), c.update(rope_theta=10000.0))) is None


def test_scoring_imports_no_transformers_modeling(tiny_llama_dir):
    """The point of the lean forward: a scoring process never imports transformers' model stack."""
    code = (
        "import sys\n"
        "from forgetscope.backends.hf import HFBackend\n"
        "from forgetscope.backends.base import LoglikelihoodRequest\n"
        f"b = HFBackend.from_pretrained({str(tiny_llama_dir)!r})\n"
        "b.loglikelihood([LoglikelihoodRequest((5, 6, 7), (8, 9))])\n"
        "print(sorted(m for m in ('transformers.modeling_utils', 'torch._dynamo', 'torch.distributed.tensor')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_tied_weights_stored_once_load_through_the_safetensors_metadata(tmp_path, tiny_llama_dir):
    """`safetensors.torch.save_model` (how a converted GGUF copy is saved) stores tied weights once
    and names the other in the file's metadata; the lean loader follows that alias."""
    from safetensors import safe_open
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "tied"
    shutil.copytree(tiny_llama_dir, folder)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert model.config.tie_word_embeddings
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        stored = set(handle.keys())
    assert len({"model.embed_tokens.weight", "lm_head.weight"} & stored) == 1  # one of the two is an alias
    lean = HFBackend.from_pretrained(str(folder))
    full = HFBackend.from_pretrained(str(tiny_llama_dir), lean=False)
    assert isinstance(lean.model, LeanLlama)
    requests = _requests(full.tokenizer, 8)
    a, b = lean.loglikelihood(requests), full.loglikelihood(requests)
    assert np.allclose([r.logprob for r in a], [r.logprob for r in b], atol=1e-5)


def test_a_llama_transformers_loads_is_scored_by_the_lean_forward_too(tmp_path, tiny_llama_dir):
    """Weights the lean loader leaves to transformers (here a .bin file; a GGUF file likewise) are
    handed to the lean forward after loading, so every Llama path gives the same numbers; generation
    loads transformers' model again."""
    import torch
    from transformers import AutoModelForCausalLM

    from forgetscope.backends.base import GenerationRequest

    folder = tmp_path / "bin"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).state_dict(), folder / "pytorch_model.bin")
    assert lean_unsupported(folder) == "no safetensors weights"
    lean = HFBackend.from_pretrained(str(folder), allow_pickle=True)  # pickle weights: only when allowed
    direct = HFBackend.from_pretrained(str(tiny_llama_dir))
    assert isinstance(lean.model, LeanLlama)
    requests = _requests(lean.tokenizer, 8)
    assert [r.logprob for r in lean.loglikelihood(requests)] == [r.logprob for r in direct.loglikelihood(requests)]
    request = GenerationRequest(tuple(Tokenization(lean.tokenizer).encode_context("Question: 2 plus 2?\nAnswer:")),
                                max_new_tokens=4)
    assert lean.generate([request]) == direct.generate([request])
    assert lean._generation_model is not None and isinstance(lean.model, LeanLlama)
