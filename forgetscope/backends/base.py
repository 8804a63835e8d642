"""The backend interface and the one place where text becomes token ids.

A backend answers two questions about token ids: "how likely is this
continuation after this context?" and "what does the model write after this
context?". Tokenisation, and in particular where the context ends and the
continuation begins, is decided here, once, so every backend (transformers,
vLLM) scores exactly the same token ids.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence


#: batch_size value: the largest batch that fits, searched once per model on a GPU (see batching.py)
AUTO_BATCH = "auto"


class BackendError(RuntimeError):
    """A backend could not be created or could not run (message says how to fix it)."""


class NonFiniteScoreError(BackendError):
    """The model gave NaN or infinite scores: its weights or numerics are broken, and no answer can be read
    from them (a NaN log-likelihood makes every choice "the first maximum"). `requests` holds the positions,
    in the call, of the requests affected."""

    def __init__(self, message: str, requests: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.requests = tuple(requests)


def check_finite(results: Sequence["LoglikelihoodResult"]) -> None:
    """Raise NonFiniteScoreError when any result's log-likelihood is NaN or infinite."""
    bad = [index for index, result in enumerate(results) if not math.isfinite(result.logprob)]
    if bad:
        raise NonFiniteScoreError(
            f"{len(bad)} of {len(results)} log-likelihood requests got a non-finite score (NaN or inf); "
            "the model's weights or numerics are broken", bad)


_DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
           "fp16": "float16", "float16": "float16", "half": "float16", "auto": "auto"}


def canonical_dtype(name: str) -> str:
    """float32, bfloat16, float16 or auto for a dtype name or alias (fp32, bf16, fp16, half)."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise BackendError(f"unknown dtype {name!r}; choose float32, bfloat16, float16 or auto") from None


def truncate_left(context: Sequence[int], continuation: Sequence[int], max_length: int) -> tuple[tuple[int, ...], int]:
    """context + continuation cut from the left so that at most `max_length` tokens are fed (the last
    token is only a target, so max_length + 1 are kept); also how many continuation tokens remain
    to be scored (those cut away on the left are not)."""
    whole = tuple(context) + tuple(continuation)
    tokens = whole[-(max(1, max_length) + 1):]
    return tokens, min(len(continuation), len(tokens) - 1)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation_ids` given `context_ids` (both non-empty)."""

    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float  # sum of log p(token) over the continuation tokens
    is_greedy: bool  # every continuation token is the argmax at its position
    n_tokens: int  # continuation tokens actually scored


@dataclass(frozen=True)
class GenerationRequest:
    context_ids: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0  # per-request seed, so sampling does not depend on batching


class Backend(ABC):
    """What forgetscope needs from a model. Implementations: hf, vllm."""

    name: str = "base"
    tokenizer: Any
    #: What the backend was built with that can change scores (dtype, context length), for
    #: inspection only: the cache key of records is built from EvalSettings (engine.evaluate).
    settings: dict[str, Any]

    @abstractmethod
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """One result per request, in request order."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Generated text per request (stop sequence excluded), in request order."""

    def close(self) -> None:  # pragma: no cover - optional
        """Release memory (GPU) held by the backend."""


@dataclass
class Tokenization:
    """How strings become token ids; shared by every backend.

    add_special_tokens: None uses the tokenizer's default (as
    lm-evaluation-harness does), True/False forces it.
    """

    tokenizer: Any
    add_special_tokens: bool | None = None
    _cache: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def encode(self, text: str) -> list[int]:
        cached = self._cache.get(text)
        if cached is None:
            kwargs = {} if self.add_special_tokens is None else {"add_special_tokens": self.add_special_tokens}
            if self.add_special_tokens is None and self._starts_with_prefix(text):
                # a chat template writes the BOS itself: not a second one (lm-eval's HFLM.tok_encode)
                kwargs = {"add_special_tokens": False}
            cached = list(self.tokenizer.encode(text, **kwargs))
            if len(self._cache) < 200_000:
                self._cache[text] = cached
        return cached

    def _starts_with_prefix(self, text: str) -> bool:
        prefix = self._prefix_text
        return bool(prefix) and text.startswith(prefix)

    @property
    def _prefix_id(self) -> int | None:
        """BOS, else EOS; None when the tokenizer has neither."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    @functools.cached_property
    def _prefix_text(self) -> str:
        """The text of the BOS token (else EOS), as decoded; empty when the tokenizer has neither."""
        token_id = self._prefix_id
        return self.tokenizer.decode([token_id]) if token_id is not None else ""

    @property
    def prefix_token_id(self) -> int:
        """Token that stands in for an empty context: BOS, else EOS."""
        token_id = self._prefix_id
        if token_id is None:
            raise BackendError("the tokenizer has neither a BOS nor an EOS token to use for an empty context")
        return int(token_id)

    def encode_pair(self, context: str, continuation: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Split the tokens of `context + continuation` into context and continuation ids.

        The continuation is scored as part of the joint string, never
        tokenised on its own: " Paris" after "Answer:" may tokenise differently
        from "Paris" alone. Context ids are the longest common prefix of the
        joint encoding and the context's own encoding, so a token that merges
        across the boundary belongs to the continuation, and scoring the pair
        equals scoring the joint text and reading off the continuation part.
        Trailing whitespace of the context moves to the continuation first
        (as in lm-evaluation-harness), so "Answer: " + "Paris" scores " Paris".
        """
        if not context:
            cont = self.encode(continuation)
            prefix = self.prefix_token_id
            if cont and cont[0] == prefix:
                return (prefix,), tuple(cont[1:]) or (prefix,)
            return (prefix,), tuple(cont)
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        common = 0
        limit = min(len(whole), len(ctx))
        while common < limit and whole[common] == ctx[common]:
            common += 1
        if common == len(whole):  # empty continuation: score at least one token
            common -= 1
        if common == 0:
            return (self.prefix_token_id,), tuple(whole)
        return tuple(whole[:common]), tuple(whole[common:])

    def encode_context(self, context: str) -> tuple[int, ...]:
        ids = self.encode(context)
        return tuple(ids) if ids else (self.prefix_token_id,)
