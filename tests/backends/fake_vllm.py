"""A stand-in for vllm shaped like its documented output, over a tiny deterministic "model".

RequestOutput.prompt_logprobs is a list aligned with the prompt: None first,
then a dict token id → Logprob(logprob, rank, decoded_token) holding the
actual prompt token plus the top-n; CompletionOutput.logprobs holds one such
dict per generated token. The "model" gives every prefix a fixed random
next-token distribution over VOCAB tokens, so expected scores can be computed
independently (`reference_score`).
"""

from __future__ import annotations

import math
import random
import types
from dataclasses import dataclass, field
from typing import Any

VOCAB = 12
EOS = 11


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = "length"


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool = True


def next_logprobs(prefix: tuple[int, ...], vocab: int = VOCAB) -> list[float]:
    """log p(token | prefix) for every token: a fixed random distribution per prefix."""
    rng = random.Random(sum((t + 1) * 31**i for i, t in enumerate(prefix)) % 2**61)
    logits = [rng.gauss(0.0, 2.0) for _ in range(vocab)]
    top = max(logits)
    norm = top + math.log(sum(math.exp(x - top) for x in logits))
    return [x - norm for x in logits]


def rank_of(logprobs: list[float], token: int) -> int:
    return 1 + sum(1 for x in logprobs if x > logprobs[token])


def reference_score(context: tuple[int, ...], continuation: tuple[int, ...], vocab: int = VOCAB
                    ) -> tuple[float, bool]:
    total, greedy = 0.0, True
    for j, token in enumerate(continuation):
        lps = next_logprobs(tuple(context) + tuple(continuation[:j]), vocab)
        total += lps[token]
        greedy = greedy and rank_of(lps, token) == 1
    return total, greedy


def _entry(lps: list[float], tokens: list[int]) -> dict[int, Logprob]:
    return {t: Logprob(lps[t], rank_of(lps, t), None) for t in tokens}


def _top(lps: list[float], n: int) -> list[int]:
    return sorted(range(len(lps)), key=lambda t: -lps[t])[:n]


class FakeTokenizer:
    eos_token_id = EOS

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join("" if (t == EOS and skip_special_tokens) else chr(ord("a") + t) for t in ids)


@dataclass
class FakeLLM:
    """Answers generate() like vllm.LLM and records every call."""

    calls: list[list[Any]] = field(default_factory=list)
    vocab: int = VOCAB

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        self.calls.append([(tuple(p["prompt_token_ids"]), sp) for p, sp in zip(prompts, params)])
        return [self._one(i, list(p["prompt_token_ids"]), sp) for i, (p, sp) in enumerate(zip(prompts, params))]

    def _one(self, i: int, tokens: list[int], sp) -> RequestOutput:
        prompt_lps = None
        if sp.prompt_logprobs is not None:
            prompt_lps = [None]
            for pos in range(1, len(tokens)):
                lps = next_logprobs(tuple(tokens[:pos]), self.vocab)
                prompt_lps.append(_entry(lps, [tokens[pos]] + _top(lps, sp.prompt_logprobs)))
        generated, sample_lps, prefix = [], [], list(tokens)
        for _ in range(sp.max_tokens):
            lps = next_logprobs(tuple(prefix), self.vocab)
            token = max(range(self.vocab), key=lambda t: lps[t])  # the fake samples greedily
            if sp.logprob_token_ids is not None:
                sample_lps.append(_entry(lps, [token] + list(sp.logprob_token_ids)))
            elif sp.logprobs is not None:
                sample_lps.append(_entry(lps, [token] + _top(lps, sp.logprobs)))
            generated.append(token)
            prefix.append(token)
            text = FakeTokenizer().decode(generated)
            if token == EOS or any(s in text for s in (sp.stop or [])):
                break
        completion = CompletionOutput(0, "", generated, None, sample_lps if sample_lps else None)
        return RequestOutput(str(i), None, tokens, prompt_lps, [completion])


def sampling_params_class(with_token_ids: bool):
    names = ["max_tokens", "temperature", "top_p", "seed", "stop", "logprobs", "prompt_logprobs", "detokenize"]
    if with_token_ids:
        names.append("logprob_token_ids")

    class SamplingParams:
        __struct_fields__ = tuple(names)

        def __init__(self, **kwargs):
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
            defaults = {"max_tokens": 16, "temperature": 1.0, "top_p": 1.0}
            for name in names + ["logprob_token_ids"]:
                setattr(self, name, kwargs.get(name, defaults.get(name)))

    return SamplingParams


def install(monkeypatch, *, with_token_ids: bool = True) -> None:
    """Put a fake `vllm` (SamplingParams, inputs.TokensPrompt) into sys.modules."""
    module = types.ModuleType("vllm")
    module.SamplingParams = sampling_params_class(with_token_ids)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # a TypedDict in vLLM: a plain dict at runtime
    module.inputs = inputs
    monkeypatch.setitem(__import__("sys").modules, "vllm", module)
    monkeypatch.setitem(__import__("sys").modules, "vllm.inputs", inputs)
