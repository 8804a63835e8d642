"""The transformers backend: batch size never changes a result."""

from __future__ import annotations

import numpy as np
import pytest

from forgetscope.engine.evaluate import EvalSettings, evaluate

from ..helpers import gen_task, mc_task


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
def test_batch_size_1_and_16_agree(request, tmp_path, fixture):
    model = str(request.getfixturevalue(fixture))
    task = mc_task(40)
    one = evaluate(model, [task], tmp_path / "bs1", EvalSettings(batch_size=1)).sort_values("item_id")
    sixteen = evaluate(model, [task], tmp_path / "bs16", EvalSettings(batch_size=16)).sort_values("item_id")
    ll1 = np.concatenate(one["loglikelihoods"].to_numpy())
    ll16 = np.concatenate(sixteen["loglikelihoods"].to_numpy())
    assert len(ll1) == len(ll16) == sum(i.n_choices for i in task.items)
    assert np.abs(ll1 - ll16).max() < 1e-4
    for column in ("correct", "correct_norm", "correct_per_token", "prediction"):
        assert one[column].tolist() == sixteen[column].tolist()


def test_head_on_continuation_positions_equals_full_logits(tiny_llama_dir):
    from forgetscope.backends.base import LoglikelihoodRequest, Tokenization
    from forgetscope.backends.hf import HFBackend

    backend = HFBackend.from_pretrained(str(tiny_llama_dir), batch_size=8)
    tok = Tokenization(backend.tokenizer)
    requests = [LoglikelihoodRequest(*tok.encode_pair(i.context, c)) for i in mc_task(10).items
                for c in i.continuations]
    fast = backend.loglikelihood(requests)
    backend._plain_head = False  # the generic path: full logits, then select
    slow = backend.loglikelihood(requests)
    assert [r.is_greedy for r in fast] == [r.is_greedy for r in slow]
    assert np.allclose([r.logprob for r in fast], [r.logprob for r in slow], atol=1e-5)


def test_greedy_generation_is_batch_invariant_and_stops(tmp_path, tiny_llama_dir):
    task = gen_task(8)
    one = evaluate(str(tiny_llama_dir), [task], tmp_path / "g1", EvalSettings(batch_size=1))
    four = evaluate(str(tiny_llama_dir), [task], tmp_path / "g4", EvalSettings(batch_size=4))
    assert one["output"].tolist() == four["output"].tolist()
    assert all("\n" not in text for text in one["output"])
    assert (one["n_choices"] == 0).all() and (one["prediction"] == -1).all()


def test_sampled_generation_is_seeded_per_item_not_per_batch(tmp_path, tiny_llama_dir):
    task = gen_task(6)
    settings = dict(temperature=1.0, repeats=2, seed=3)
    a = evaluate(str(tiny_llama_dir), [task], tmp_path / "s1", EvalSettings(batch_size=1, **settings))
    b = evaluate(str(tiny_llama_dir), [task], tmp_path / "s2", EvalSettings(batch_size=6, **settings))
    key = ["item_id", "repeat"]
    a, b = a.sort_values(key), b.sort_values(key)
    assert a["output"].tolist() == b["output"].tolist()
    # the two repeats use different seeds, so their samples differ somewhere
    r0 = a[a.repeat == 0]["output"].tolist()
    r1 = a[a.repeat == 1]["output"].tolist()
    assert r0 != r1
    assert sorted(a["seed"].unique().tolist()) == [3, 4]


def _packed_equals_alone(backend, requests):
    """Score packed and one request at a time; the results must agree. Returns the packed ones."""
    packed = backend.loglikelihood(requests)
    backend.pack = False
    alone = backend.loglikelihood(requests)
    backend.pack = True
    assert [r.is_greedy for r in packed] == [r.is_greedy for r in alone]
    assert [r.n_tokens for r in packed] == [r.n_tokens for r in alone]
    assert np.allclose([r.logprob for r in packed], [r.logprob for r in alone], atol=1e-4)
    return packed


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
@pytest.mark.parametrize("max_length", [None, 40])
def test_packed_choices_score_like_separate_sequences(request, fixture, max_length):
    """A context scored once with all its choices (block mask) = each choice scored alone."""
    from forgetscope.backends.base import LoglikelihoodRequest, Tokenization
    from forgetscope.backends.hf import HFBackend

    backend = HFBackend.from_pretrained(str(request.getfixturevalue(fixture)), batch_size=4, max_length=max_length)
    tok = Tokenization(backend.tokenizer)
    requests = [LoglikelihoodRequest(*tok.encode_pair(i.context, c)) for i in mc_task(16).items
                for c in i.continuations]
    packs, singles = backend._plan(requests)
    assert packs, "nothing was packed"
    if max_length:
        # with a short max_length some contexts' choices are split over several packs or scored alone
        assert len(packs) + len(singles) > 16
    packed = _packed_equals_alone(backend, requests)


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
def test_choices_sharing_a_prefix_are_fed_once_and_score_like_separate_sequences(request, fixture):
    """Choices that start alike share tree nodes; one choice may be a prefix of another."""
    from forgetscope.backends.base import LoglikelihoodRequest, Tokenization
    from forgetscope.backends.hf import HFBackend, _prefix_tree

    backend = HFBackend.from_pretrained(str(request.getfixturevalue(fixture)), batch_size=2)
    tok = Tokenization(backend.tokenizer)
    contexts = ["Question: Where does Gus go on Sunday?\nAnswer:", "Question: What is 12 + 13?\nAnswer:"]
    choices = [["Gus takes the bus to the market", "Gus takes the bus to the harbour", "Gus rows to the market",
                "Gus takes the bus"], ["25", "250", "26", "25"]]
    requests = [LoglikelihoodRequest(*tok.encode_pair(ctx, c)) for ctx, cs in zip(contexts, choices) for c in cs]
    packs, singles = backend._plan(requests)
    assert len(packs) == 2 and not singles
    tree = _prefix_tree(packs[0][1])
    assert len(tree.tokens) < sum(len(cont) - 1 for _, cont in packs[0][1])  # shared tokens fed once
    packed = _packed_equals_alone(backend, requests)
    assert packed[4].logprob == pytest.approx(packed[7].logprob, abs=1e-6)  # the same choice twice


def test_prefix_tree_layout():
    from forgetscope.backends.hf import _prefix_tree

    tree = _prefix_tree([(0, [5, 6, 7]), (1, [5, 6, 8, 9]), (2, [4]), (3, [5, 9])])
    # fed tokens: [5, 6] | [5, 6, 8] | [] | [5]: nodes 5, 6, 8 (shared 5 and 6)
    assert tree.tokens == [5, 6, 8] and tree.depth == [0, 1, 2]
    assert tree.paths == [[0, 1], [0, 1, 2], [], [0]]
    assert tree.ancestors.tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_prefix_tree_branches_never_see_each_other():
    from forgetscope.backends.hf import _prefix_tree

    tree = _prefix_tree([(0, [5, 6, 7]), (1, [5, 9, 3])])
    assert tree.tokens == [5, 6, 9] and tree.depth == [0, 1, 1]
    assert tree.ancestors.tolist() == [[True, False, False], [True, True, False], [True, False, True]]
