"""The vLLM backend without a GPU or vllm: request plans, output parsing, and the wiring
against a fake shaped like vLLM's documented RequestOutput."""

from __future__ import annotations

import sys

import pytest

from forgetscope.backends import BackendError, create_backend
from forgetscope.backends.base import GenerationRequest, LoglikelihoodRequest, NonFiniteScoreError
from forgetscope.backends.vllm import (
    INSTALL_HINT,
    NextTokenPrompt,
    SequencePrompt,
    VLLMBackend,
    completion_text,
    generation_prompt,
    parse_next_token,
    parse_prompt_logprobs,
    plan_scoring,
    require_vllm,
    rescue_prompts,
    scoring_max_length,
    sequence_prompt,
)

from . import fake_vllm
from .fake_vllm import FakeLLM, FakeTokenizer, Logprob, reference_score


def req(context, continuation) -> LoglikelihoodRequest:
    return LoglikelihoodRequest(tuple(context), tuple(continuation))


# ------------------------------------------------------------------ parsing
def test_prompt_logprobs_sum_and_rank():
    # prompt [5, 7, 8, 9]: continuation [8, 9] sits at positions 2 and 3
    prompt_logprobs = [
        None,
        {7: Logprob(-0.5, 1)},
        {8: Logprob(-1.25, 2), 3: Logprob(-0.75, 1)},
        {9: Logprob(-0.125, 1)},
    ]
    assert parse_prompt_logprobs(prompt_logprobs, [2, 3], [8, 9]) == (-1.375, False)
    assert parse_prompt_logprobs(prompt_logprobs, [3], [9]) == (-0.125, True)
    assert parse_prompt_logprobs(prompt_logprobs, [1, 2, 3], [7, 8, 9]) == (-1.875, False)


def test_prompt_logprobs_without_rank_compare_with_returned_tokens():
    entries = [None, {4: Logprob(-0.2), 6: Logprob(-2.0)}, {5: Logprob(-3.0), 1: Logprob(-0.1)}]
    assert parse_prompt_logprobs(entries, [1], [4]) == (-0.2, True)
    assert parse_prompt_logprobs(entries, [1, 2], [4, 5]) == (pytest.approx(-3.2), False)


def test_prompt_logprobs_errors_say_what_is_wrong():
    entries = [None, {4: Logprob(-0.2, 1)}]
    with pytest.raises(BackendError, match="lack the prompt token 9"):
        parse_prompt_logprobs(entries, [1], [9])
    with pytest.raises(BackendError, match="position 0 has no prompt log-prob"):
        parse_prompt_logprobs(entries, [0], [4])
    with pytest.raises(BackendError, match="position 2 has no prompt log-prob"):
        parse_prompt_logprobs(entries, [2], [4])
    with pytest.raises(BackendError, match="prompt_logprobs=..."):
        parse_prompt_logprobs(None, [1], [4])


def test_next_token_reads_candidates_and_reports_missing():
    first = {3: Logprob(-0.1, 1), 4: Logprob(-2.5, 3), 6: Logprob(-1.5, 2)}
    assert parse_next_token(first, [4, 3, 8], sampled=3) == [(-2.5, False), (-0.1, True), None]
    no_rank = {3: Logprob(-0.1), 4: Logprob(-2.5)}
    assert parse_next_token(no_rank, [3, 4], sampled=3) == [(-0.1, True), (-2.5, False)]
    assert parse_next_token(None, [3]) == [None]


def test_completion_text_drops_eos_and_cuts_at_stop():
    decode = FakeTokenizer().decode
    assert completion_text([0, 1, 11], decode, (), eos_token_id=11) == "ab"
    assert completion_text([0, 1, 2, 3], decode, ("c",), eos_token_id=11) == "ab"
    assert completion_text([0, 1, 2, 3], decode, ("d", "bc"), eos_token_id=11) == "a"


# ------------------------------------------------------------------ planning
def test_identical_requests_are_scored_once():
    requests = [req([1, 2], [3, 4]), req([1, 2], [3, 4]), req([1, 2], [5, 6]), req([9], [3, 4])]
    plan = plan_scoring(requests, max_length=100)
    assert plan.n_prompts == 3 and not plan.next_tokens
    assert [p.requests for p in plan.sequences] == [(0, 1), (2,), (3,)]
    first = plan.sequences[0]
    assert first.tokens == (1, 2, 3, 4) and first.first == 2
    assert list(first.positions) == [2, 3] and first.targets == (3, 4)


def test_single_token_choices_share_one_next_token_request_per_item():
    # two items of four one-token choices, one of them asked twice
    items = [([1, 2, 3], [[10], [11], [12], [13]]), ([4, 5], [[10], [11], [12], [13]])]
    requests = [req(ctx, c) for ctx, choices in items for c in choices] + [req([1, 2, 3], [12])]
    plan = plan_scoring(requests, max_length=100)
    assert not plan.sequences and len(plan.next_tokens) == 2
    assert plan.next_tokens[0] == NextTokenPrompt((1, 2, 3), (10, 11, 12, 13), ((0,), (1,), (2, 8), (3,)))
    assert plan.next_tokens[1].tokens == (4, 5)


def test_mixed_lengths_split_between_next_token_and_sequences():
    requests = [req([1], [10]), req([1], [11]), req([1], [12, 13]), req([2], [10])]
    plan = plan_scoring(requests, max_length=100)
    assert [p.candidates for p in plan.next_tokens] == [(10, 11)]
    # a lone one-token continuation needs no next-token read: its prompt log-prob has its rank
    assert sorted(p.requests for p in plan.sequences) == [(2,), (3,)]
    assert plan_scoring(requests, max_length=100, next_token=False).n_prompts == 4


def test_truncation_matches_the_transformers_backend():
    # hf feeds (context + continuation)[-(L+1):][:-1] and scores the continuation tokens that remain
    assert sequence_prompt((1, 2, 3, 4, 5), (6, 7), (0,), max_length=4) == SequencePrompt((3, 4, 5, 6, 7), 3, (0,))
    cut = sequence_prompt((1, 2, 3, 4, 5), (6, 7), (0,), max_length=1)
    assert cut.tokens == (6, 7) and cut.targets == (7,)
    plan = plan_scoring([req([1, 2, 3, 4, 5], [8]), req([1, 2, 3, 4, 5], [9])], max_length=3)
    assert plan.next_tokens[0].tokens == (3, 4, 5)
    rescued = rescue_prompts(plan.next_tokens[0], [1], max_length=3)
    assert [(p.tokens, p.first, p.requests) for p in rescued] == [((3, 4, 5, 9), 3, (1,))]


def test_scoring_limit_leaves_room_for_target_and_generated_token():
    assert scoring_max_length(None, 2048) == 2046
    assert scoring_max_length(512, 2048) == 512
    assert scoring_max_length(4096, 2048) == 2046


def test_generation_prompt_truncates_and_seeds_only_sampling():
    greedy = GenerationRequest(tuple(range(10)), max_new_tokens=4, stop=("\n",), seed=7)
    tokens, params = generation_prompt(greedy, max_length=8)
    # logprobs=0: the chosen token's log-prob, so NaN logits are caught
    assert tokens == [6, 7, 8, 9] and params == {"max_tokens": 4, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"],
                                                 "logprobs": 0}
    sampled = GenerationRequest((1, 2), max_new_tokens=3, temperature=0.7, top_p=0.9, seed=2**64 + 5)
    assert generation_prompt(sampled, 100)[1] == {"max_tokens": 3, "temperature": 0.7, "top_p": 0.9,
                                                  "stop": None, "logprobs": 0, "seed": (2**64 + 5) % 2**63}


# ------------------------------------------------------------------ the backend against the fake
def mc_requests() -> list[LoglikelihoodRequest]:
    """Three 4-choice items with one-token choices, one with two-token choices, duplicates."""
    out = []
    for ctx in ([1, 2, 3], [4, 5], [6, 1, 2, 7]):
        out += [req(ctx, [c]) for c in (0, 3, 5, 8)]
    out += [req([2, 2], [1, 4]), req([2, 2], [3, 0]), req([2, 2], [1, 4])]
    return out


@pytest.mark.parametrize("with_token_ids", [True, False])
def test_backend_scores_equal_the_reference(monkeypatch, with_token_ids):
    fake_vllm.install(monkeypatch, with_token_ids=with_token_ids)
    llm = FakeLLM()
    backend = VLLMBackend(llm, FakeTokenizer(), max_length=100)
    requests = mc_requests()
    results = backend.loglikelihood(requests)
    for request, result in zip(requests, results):
        logprob, greedy = reference_score(request.context_ids, request.continuation_ids)
        assert result.logprob == pytest.approx(logprob, abs=1e-12)
        assert result.is_greedy == greedy
        assert result.n_tokens == len(request.continuation_ids)
    # one generate call: 3 next-token requests (one per item) + 2 distinct two-token prompts
    assert len(llm.calls) == 1 and len(llm.calls[0]) == 5
    assert sum(sp.max_tokens == 1 and sp.prompt_logprobs is None for _, sp in llm.calls[0]) == 3
    if with_token_ids:
        assert all(sp.logprobs is None for _, sp in llm.calls[0])


def test_candidates_outside_the_top_k_are_rescored_as_prompts(monkeypatch):
    fake_vllm.install(monkeypatch, with_token_ids=False)
    monkeypatch.setattr("forgetscope.backends.vllm.NEXT_TOKEN_TOP_K", 2)
    llm = FakeLLM()
    requests = [req([1, 2, 3], [c]) for c in range(fake_vllm.VOCAB)]
    results = VLLMBackend(llm, FakeTokenizer(), max_length=100).loglikelihood(requests)
    expected = [reference_score((1, 2, 3), (c,)) for c in range(fake_vllm.VOCAB)]
    assert [r.logprob for r in results] == pytest.approx([e[0] for e in expected], abs=1e-12)
    assert [r.is_greedy for r in results] == [e[1] for e in expected]
    # the top 2 (plus the sampled argmax, which is among them) came from the first call
    assert len(llm.calls) == 2 and len(llm.calls[0]) == 1 and len(llm.calls[1]) == fake_vllm.VOCAB - 2


def test_backend_truncates_like_hf(monkeypatch):
    fake_vllm.install(monkeypatch)
    llm = FakeLLM()
    request = req([1, 2, 3, 4, 5], [6, 7])
    [result] = VLLMBackend(llm, FakeTokenizer(), max_length=4).loglikelihood([request])
    logprob, _ = reference_score((3, 4, 5), (6, 7))
    assert result.logprob == pytest.approx(logprob) and result.n_tokens == 2
    assert llm.calls[0][0][0] == (3, 4, 5, 6, 7)


def test_backend_generates_with_stops_in_one_call(monkeypatch):
    fake_vllm.install(monkeypatch)
    llm = FakeLLM()
    backend = VLLMBackend(llm, FakeTokenizer(), max_length=100)
    requests = [GenerationRequest((1, 2), max_new_tokens=5), GenerationRequest((3,), max_new_tokens=5)]
    texts = backend.generate(requests)
    assert len(llm.calls) == 1
    for request, text in zip(requests, texts):
        prefix, expected = list(request.context_ids), []
        for _ in range(5):  # greedy decoding of the fake model, by hand
            lps = fake_vllm.next_logprobs(tuple(prefix))
            token = max(range(fake_vllm.VOCAB), key=lambda t: lps[t])
            if token == fake_vllm.EOS:
                break
            expected.append(token)
            prefix.append(token)
        assert text == FakeTokenizer().decode(expected)
    stop_at = texts[0][1] if len(texts[0]) > 1 else None
    if stop_at:
        cut = backend.generate([GenerationRequest((1, 2), max_new_tokens=5, stop=(stop_at,))])
        assert cut == [texts[0][: texts[0].index(stop_at)]]


def poison(monkeypatch, broken) -> None:
    """The fake model's distribution is NaN after every prefix for which broken(prefix) is true."""
    real = fake_vllm.next_logprobs

    def next_logprobs(prefix, vocab=fake_vllm.VOCAB):
        return [float("nan")] * vocab if broken(prefix) else real(prefix, vocab)
    monkeypatch.setattr(fake_vllm, "next_logprobs", next_logprobs)


@pytest.mark.parametrize("with_token_ids", [True, False])
def test_nan_scores_are_refused_naming_the_requests(monkeypatch, with_token_ids):
    fake_vllm.install(monkeypatch, with_token_ids=with_token_ids)
    poison(monkeypatch, lambda prefix: prefix[:3] == (1, 2, 3))  # the first item's next-token read
    backend = VLLMBackend(FakeLLM(), FakeTokenizer(), max_length=100)
    with pytest.raises(NonFiniteScoreError, match="4 of 15 log-likelihood requests got a non-finite score") as error:
        backend.loglikelihood(mc_requests())
    assert error.value.requests == (0, 1, 2, 3)
    # and the two-token choices too (scored from prompt log-probs): poisons add up
    poison(monkeypatch, lambda prefix: prefix[:2] == (2, 2))
    with pytest.raises(NonFiniteScoreError) as error:
        backend.loglikelihood(mc_requests())
    assert error.value.requests == (0, 1, 2, 3, 12, 13, 14)


def test_generation_with_nan_log_probs_is_refused(monkeypatch):
    fake_vllm.install(monkeypatch)
    poison(monkeypatch, lambda prefix: prefix[:1] == (3,))
    backend = VLLMBackend(FakeLLM(), FakeTokenizer(), max_length=100)
    requests = [GenerationRequest((1, 2), max_new_tokens=5), GenerationRequest((3,), max_new_tokens=5)]
    with pytest.raises(NonFiniteScoreError, match="1 of 2 generation requests got non-finite log-probs") as error:
        backend.generate(requests)
    assert error.value.requests == (1,)


def test_evaluate_writes_nothing_of_a_task_vllm_scored_nan(monkeypatch, tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from forgetscope.engine.evaluate import Checkpoint, EvalSettings, evaluate

    from ..helpers import mc_task

    fake_vllm.install(monkeypatch)
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    poison(monkeypatch, lambda prefix: True)
    backend = VLLMBackend(FakeLLM(vocab=len(tokenizer)), tokenizer, max_length=200)
    with pytest.raises(NonFiniteScoreError, match=r"checkpoint 'fake-model', task 'mc': non-finite log-likelihoods "
                                                  r"\(NaN or inf\) for 10 of the 10 items"):
        evaluate(Checkpoint("fake-model", fingerprint="f" * 32), [mc_task(10)], tmp_path,
                 EvalSettings(backend="vllm"), backend=backend)
    assert list(tmp_path.rglob("*.parquet")) == []


# ------------------------------------------------------------------ availability
def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # find_spec → None, import → ImportError
    with pytest.raises(BackendError) as info:
        create_backend("vllm", "some/model")
    assert str(info.value) == INSTALL_HINT
    assert "pip install 'forgetscope[vllm]'" in str(info.value)


def test_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("forgetscope.backends.vllm._vllm_installed", lambda: True)
    monkeypatch.setattr("forgetscope.backends.vllm._cuda_available", lambda: False)
    with pytest.raises(BackendError, match="needs a CUDA GPU"):
        require_vllm()


def test_gguf_is_refused_before_loading_anything():
    with pytest.raises(BackendError, match="not a GGUF file"):
        create_backend("vllm", "model.gguf")


def test_vllm_only_options_are_refused_by_hf():
    with pytest.raises(BackendError, match="--max-model-len"):
        create_backend("hf", "unused", max_model_len=128)


def test_module_import_does_not_import_vllm_or_torch():
    import subprocess

    code = ("import sys, forgetscope.backends.vllm; "
            "print(int('vllm' in sys.modules), int('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_evaluate_hands_a_whole_task_to_one_vllm_call(monkeypatch, tmp_path, tiny_tokenizer_dir):
    """Through evaluate(): one generate call per task whatever chunk_size, scores as the reference."""
    from transformers import AutoTokenizer

    from forgetscope.backends.base import Tokenization
    from forgetscope.engine.evaluate import Checkpoint, EvalSettings, evaluate

    from ..helpers import mc_task

    fake_vllm.install(monkeypatch)
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    llm = FakeLLM(vocab=len(tokenizer))
    backend = VLLMBackend(llm, tokenizer, max_length=200)
    task = mc_task(30)
    checkpoint = Checkpoint("fake-model", fingerprint="f" * 32)  # nothing on disk to fingerprint
    records = evaluate(checkpoint, [task], tmp_path, EvalSettings(backend="vllm", chunk_size=8), backend=backend)
    assert len(llm.calls) == 1 and len(records) == 30 and (records["backend"] == "vllm").all()
    tokenization = Tokenization(tokenizer)
    by_id = records.set_index("item_id")
    for item in task.items:
        expected = [reference_score(*tokenization.encode_pair(ctx, cont), vocab=len(tokenizer))[0]
                    for ctx, cont in item.requests()]
        assert list(by_id.loc[item.item_id, "loglikelihoods"]) == pytest.approx(expected, abs=1e-9)
    # one prompt per distinct request at most; fewer where one-token choices share a read
    n_requests = len({tokenization.encode_pair(c, t) for item in task.items for c, t in item.requests()})
    assert len(llm.calls[0]) <= n_requests


def test_eval_command_without_vllm_says_how_to_install(monkeypatch, tmp_path, tiny_llama_dir):
    from typer.testing import CliRunner

    from forgetscope.cli import app

    monkeypatch.setitem(sys.modules, "vllm", None)
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "question": "Two plus two?", "choices": ["four", "five"], "answer": 0}\n')
    result = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--task", str(items), "--backend", "vllm",
                                      "--output", str(tmp_path / "out")], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert INSTALL_HINT in result.output


def test_dtype_aliases_and_left_truncation_are_shared_by_both_backends():
    from forgetscope.backends.base import BackendError, canonical_dtype, truncate_left

    assert [canonical_dtype(n) for n in ("fp32", "bf16", "half", "auto")] == ["float32", "bfloat16", "float16", "auto"]
    with pytest.raises(BackendError, match="unknown dtype 'int8'; choose float32, bfloat16, float16 or auto"):
        canonical_dtype("int8")
    # 6 tokens, at most 3 fed: 4 kept; of the 3 continuation tokens, the last 3 are still scored
    assert truncate_left([1, 2, 3], [4, 5, 6], 3) == ((3, 4, 5, 6), 3)
    assert truncate_left([1, 2, 3], [4, 5, 6], 2) == ((4, 5, 6), 2)  # one continuation token cut away
