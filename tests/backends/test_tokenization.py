"""The context/continuation boundary is decided once, and equals joint scoring."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetscope.backends.base import LoglikelihoodRequest, Tokenization
from forgetscope.backends.hf import HFBackend


@pytest.fixture(scope="module")
def tokenization(tiny_tokenizer_dir):
    return Tokenization(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))


PAIRS = [
    ("Question: What is the capital?\nAnswer:", " Paris"),
    ("Answer: th", "e cat"),  # a word split across the boundary
    ("The answer is", "n't here"),
    ("Answer: ", "Paris"),  # trailing space moves to the continuation
    ("x", "y"),
]


@pytest.mark.parametrize("context,continuation", PAIRS)
def test_pair_is_a_split_of_the_joint_encoding(tokenization, context, continuation):
    ctx, cont = tokenization.encode_pair(context, continuation)
    assert list(ctx) + list(cont) == tokenization.encode(context + continuation)
    assert len(cont) >= 1


def test_token_merging_across_the_boundary_belongs_to_the_continuation(tokenization):
    # with this tokenizer "th" + "e" becomes one token " the": the context's own
    # encoding is not a prefix of the joint encoding
    context, continuation = "Answer: th", "e cat"
    joint = tokenization.encode(context + continuation)
    alone = tokenization.encode(context)
    assert joint[: len(alone)] != alone, "fixture no longer merges across the boundary"
    ctx, cont = tokenization.encode_pair(context, continuation)
    assert len(ctx) < len(alone)
    assert tuple(joint[len(ctx):]) == cont
    assert tokenization.tokenizer.decode(list(cont)).endswith("cat")


def test_trailing_space_of_context_is_scored_with_continuation(tokenization):
    a = tokenization.encode_pair("Answer: ", "Paris")
    b = tokenization.encode_pair("Answer:", " Paris")
    assert a == b


def test_empty_context_uses_the_prefix_token(tokenization):
    ctx, cont = tokenization.encode_pair("", "hello")
    assert ctx == (tokenization.prefix_token_id,)
    assert list(cont) == tokenization.encode("hello")


def test_loglikelihood_equals_joint_scoring(tiny_llama_dir, tokenization):
    """Sum of log p over the continuation = reading it off one forward pass of the joint text."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    backend = HFBackend(model, tokenization.tokenizer, batch_size=4)
    requests = [LoglikelihoodRequest(*tokenization.encode_pair(c, x)) for c, x in PAIRS]
    results = backend.loglikelihood(requests)
    for (context, continuation), req, res in zip(PAIRS, requests, results):
        joint = torch.tensor([list(req.context_ids) + list(req.continuation_ids)])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(joint).logits[0].double(), -1)
        n_ctx = len(req.context_ids)
        expected = sum(float(logprobs[n_ctx - 1 + j, t]) for j, t in enumerate(req.continuation_ids))
        greedy = all(int(logprobs[n_ctx - 1 + j].argmax()) == t for j, t in enumerate(req.continuation_ids))
        assert res.logprob == pytest.approx(expected, abs=1e-4)
        assert res.is_greedy == greedy
        assert res.n_tokens == len(req.continuation_ids)
