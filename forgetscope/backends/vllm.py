"""The vLLM backend: the transformers backend's per-sample scores, batched by vLLM on a GPU.

vLLM sees exactly the token ids the transformers backend sees: requests
arrive already tokenised (base.Tokenization decides the context/continuation
boundary once for every backend) and are passed as token prompts, never as
text. All requests of a call go to vLLM in ONE `LLM.generate` call, so vLLM's
scheduler forms the batches.

Scoring, without wasted work:

- identical (context, continuation) requests are scored once;
- a continuation of several tokens is scored from `prompt_logprobs` over the
  prompt context + continuation (position 0 of that list is None; every
  other position holds a dict token id → Logprob(logprob, rank) that always
  contains the actual prompt token); greedy = every continuation token has
  rank 1;
- when several continuations after the same context are each ONE token
  (" A", " B", ...), one request reads the next-token distribution after the
  context (max_tokens=1, temperature 0) instead of one prompt per choice. The
  choices' log-probabilities come from `logprob_token_ids` where the
  installed vLLM has it (exactly those ids); otherwise from the top
  `NEXT_TOKEN_TOP_K` log-probs, and a choice outside them is rescored in a
  second call as its own prompt. vLLM computes both kinds of log-probs from
  the raw logits (before any sampling processor), like `prompt_logprobs`.

Prefix caching is off: prompt log-probs with prefix caching have been
reported to depend on request order, and a scoring backend must not.

Truncation follows the transformers backend: at most `max_length` tokens
are fed, cut from the left. vLLM needs room for the scored last token and the
one token it always generates, so `max_length` is at most max_model_len - 2.

vLLM is imported lazily, only when a backend is built; everything above the
`VLLMBackend` class is pure Python and unit-tested without a GPU.
"""

from __future__ import annotations

import gc
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .base import (
    Backend,
    BackendError,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    NonFiniteScoreError,
    canonical_dtype,
    check_finite,
    truncate_left,
)
from .hf import cut_at_stop
from .weights import refuse_pickle

INSTALL_HINT = "vllm is not installed: pip install 'forgetscope[vllm]' (needs a CUDA GPU)"
#: top log-probs read after a shared context when `logprob_token_ids` is missing (vLLM's default max_logprobs)
NEXT_TOKEN_TOP_K = 20
#: most candidate ids one next-token request asks for (vLLM's MAX_LOGPROB_TOKEN_IDS)
MAX_CANDIDATES = 128


# ------------------------------------------------------------------ planning
@dataclass(frozen=True)
class SequencePrompt:
    """Score `tokens[first:]` from the prompt log-probs of `tokens`."""

    tokens: tuple[int, ...]
    first: int  # >= 1: position 0 has no log-prob
    requests: tuple[int, ...]  # the (identical) requests this prompt answers

    @property
    def positions(self) -> range:
        return range(self.first, len(self.tokens))

    @property
    def targets(self) -> tuple[int, ...]:
        return self.tokens[self.first:]


@dataclass(frozen=True)
class NextTokenPrompt:
    """Read log p(candidate | tokens) for each one-token candidate."""

    tokens: tuple[int, ...]
    candidates: tuple[int, ...]
    requests: tuple[tuple[int, ...], ...]  # per candidate: the requests it answers


@dataclass
class ScoringPlan:
    sequences: list[SequencePrompt] = field(default_factory=list)
    next_tokens: list[NextTokenPrompt] = field(default_factory=list)

    @property
    def n_prompts(self) -> int:
        return len(self.sequences) + len(self.next_tokens)


def sequence_prompt(context: Sequence[int], continuation: Sequence[int], requests: tuple[int, ...],
                    max_length: int) -> SequencePrompt:
    """context + continuation, left-truncated so at most `max_length` tokens are fed.

    Same cut as HFBackend._score_singles: the last token is only a target,
    so the prompt holds max_length + 1 tokens; continuation tokens cut away
    on the left are not scored.
    """
    tokens, n_scored = truncate_left(context, continuation, max_length)
    return SequencePrompt(tokens, len(tokens) - n_scored, requests)


def plan_scoring(requests: Sequence[LoglikelihoodRequest], max_length: int, *,
                 next_token: bool = True) -> ScoringPlan:
    """Prompts that answer every request, each distinct (context, continuation) once.

    One-token continuations sharing a context (at least two, at most
    MAX_CANDIDATES) become one NextTokenPrompt; the rest are SequencePrompts.
    """
    unique: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for index, request in enumerate(requests):
        if not request.context_ids or not request.continuation_ids:
            raise BackendError(f"request {index}: context and continuation must both be non-empty token ids")
        unique.setdefault((tuple(request.context_ids), tuple(request.continuation_ids)), []).append(index)
    plan = ScoringPlan()
    singles: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}
    for (context, continuation), owners in unique.items():
        if next_token and len(continuation) == 1:
            singles.setdefault(context, []).append((continuation[0], tuple(owners)))
        else:
            plan.sequences.append(sequence_prompt(context, continuation, tuple(owners), max_length))
    for context, members in singles.items():
        if 2 <= len(members) <= MAX_CANDIDATES:
            plan.next_tokens.append(NextTokenPrompt(
                context[-max(1, max_length):], tuple(t for t, _ in members), tuple(o for _, o in members)))
        else:
            plan.sequences.extend(sequence_prompt(context, (t,), owners, max_length) for t, owners in members)
    return plan


# ------------------------------------------------------------------ parsing
def _is_top(chosen: Any, entry: Mapping[int, Any]) -> bool:
    """Rank 1 (vLLM's rank is 1-based); without a rank, no returned token is more likely."""
    rank = getattr(chosen, "rank", None)
    if rank is not None:
        return int(rank) == 1
    return float(chosen.logprob) >= max(float(v.logprob) for v in entry.values())


def parse_prompt_logprobs(prompt_logprobs: Sequence[Mapping[int, Any] | None] | None,
                          positions: Sequence[int], target_ids: Sequence[int]) -> tuple[float, bool]:
    """Sum of log p(target) over `positions`, and whether every target has rank 1.

    `prompt_logprobs` is RequestOutput.prompt_logprobs: aligned with the
    prompt, None at position 0, then dicts token id → Logprob.
    """
    if prompt_logprobs is None:
        raise BackendError("vLLM returned no prompt_logprobs; the request needs SamplingParams(prompt_logprobs=...)")
    if len(positions) != len(target_ids) or not len(positions):
        raise BackendError("need one target token per scored position, and at least one")
    total, greedy = 0.0, True
    for position, token in zip(positions, target_ids):
        if position < 1 or position >= len(prompt_logprobs):
            raise BackendError(f"position {position} has no prompt log-prob "
                               f"(prompt_logprobs covers 1..{len(prompt_logprobs) - 1})")
        entry = prompt_logprobs[position]
        chosen = entry.get(token) if entry is not None else None
        if chosen is None:
            shown = sorted(entry)[:5] if entry else []
            raise BackendError(
                f"vLLM's prompt_logprobs at position {position} lack the prompt token {token} "
                f"(it returned token ids {shown}); vLLM always includes the prompt token, so the "
                "prompt sent was not the one planned")
        total += float(chosen.logprob)
        greedy = greedy and _is_top(chosen, entry)
    return total, greedy


def parse_next_token(logprobs: Mapping[int, Any] | None, candidates: Sequence[int],
                     sampled: int | None = None) -> list[tuple[float, bool] | None]:
    """(log p, is greedy) per candidate from the first generated position's log-probs; None if absent.

    `sampled` is the token vLLM generated at temperature 0 (the argmax), used
    as the greedy check when a Logprob carries no rank.
    """
    out: list[tuple[float, bool] | None] = []
    for token in candidates:
        chosen = logprobs.get(token) if logprobs else None
        if chosen is None:
            out.append(None)
            continue
        rank = getattr(chosen, "rank", None)
        greedy = int(rank) == 1 if rank is not None else (sampled == token if sampled is not None
                                                            else _is_top(chosen, logprobs))
        out.append((float(chosen.logprob), greedy))
    return out


def rescue_prompts(prompt: NextTokenPrompt, missing: Sequence[int], max_length: int) -> list[SequencePrompt]:
    """Candidates the next-token read did not return, each as context + token."""
    return [sequence_prompt(prompt.tokens, (prompt.candidates[i],), prompt.requests[i], max_length) for i in missing]


def scoring_max_length(max_length: int | None, max_model_len: int) -> int:
    """Tokens fed at most: the user's limit, within vLLM's (target + generated token need 2 slots)."""
    engine = max(1, int(max_model_len) - 2)
    return min(int(max_length), engine) if max_length else engine


def generation_prompt(request: GenerationRequest, max_length: int) -> tuple[list[int], dict[str, Any]]:
    """Token prompt (left-truncated like HFBackend) and SamplingParams keyword arguments."""
    budget = max(1, request.max_new_tokens)
    tokens = list(request.context_ids)[-max(1, max_length - budget):]
    # logprobs=0: the chosen token's log-prob only, so a broken model (NaN logits) is caught
    params: dict[str, Any] = {"max_tokens": budget, "temperature": max(0.0, request.temperature),
                              "top_p": request.top_p, "stop": list(request.stop) or None, "logprobs": 0}
    if request.temperature > 0:
        params["seed"] = int(request.seed) % (2**63)  # per item, so samples do not depend on batching
    return tokens, params


def finite_generation(completion: Any) -> bool:
    """False when the log-prob vLLM reports for a generated token is NaN or infinite (broken numerics)."""
    logprobs = getattr(completion, "logprobs", None)
    if not logprobs:
        return True
    for token, entry in zip(completion.token_ids, logprobs):
        chosen = entry.get(token) if entry else None
        if chosen is not None and not math.isfinite(float(chosen.logprob)):
            return False
    return True


def completion_text(token_ids: Sequence[int], decode: Callable[[list[int]], str], stop: Sequence[str],
                    eos_token_id: int | None) -> str:
    """Decode generated ids as HFBackend does: EOS dropped, text cut at the first stop sequence."""
    ids = list(token_ids)
    if eos_token_id is not None and ids and ids[-1] == eos_token_id:
        ids.pop()
    return cut_at_stop(decode(ids), stop)


# ------------------------------------------------------------------ availability
def _vllm_installed() -> bool:
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch broken
        return False


def require_vllm() -> Any:
    """Import vllm, or say clearly what is missing (vllm itself, or a GPU)."""
    if not _vllm_installed():
        raise BackendError(INSTALL_HINT)
    if not _cuda_available():
        raise BackendError("the vLLM backend needs a CUDA GPU and none is visible (torch.cuda.is_available() "
                           "is False); use --backend hf")
    try:
        import vllm
    except ImportError as exc:
        raise BackendError(f"{INSTALL_HINT} (importing it failed: {exc})") from None
    return vllm


# ------------------------------------------------------------------ backend
class VLLMBackend(Backend):
    """Score and generate with vllm.LLM (one GPU, or several with tensor parallelism)."""

    name = "vllm"
    #: evaluate() hands a whole task to one call: vLLM forms its own batches
    items_per_call: int | None = 1 << 30

    def __init__(self, llm: Any, tokenizer: Any, *, max_length: int, settings: dict[str, Any] | None = None,
                 use_token_ids: bool | None = None, use_tqdm: bool = False) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self.llm, self.tokenizer = llm, tokenizer
        self.max_length = int(max_length)
        self.settings = dict(settings or {})
        self._sampling, self._prompt = SamplingParams, TokensPrompt
        fields = getattr(SamplingParams, "__struct_fields__", ()) or ()
        self.use_token_ids = ("logprob_token_ids" in fields) if use_token_ids is None else use_token_ids
        self.use_tqdm = use_tqdm

    @classmethod
    def from_pretrained(cls, model: str, *, dtype: str = "float32", max_length: int | None = None,
                        max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                        tensor_parallel_size: int = 1, seed: int = 0, trust_remote_code: bool = False,
                        gguf_file: str | None = None, allow_pickle: bool = False, **ignored: Any) -> "VLLMBackend":
        """Build vllm.LLM for a model directory or hub id (batch_size, device, threads are vLLM's business).

        Without `allow_pickle` vLLM reads safetensors only; with it, vLLM's own loader
        reads pickle weights with torch.load(weights_only=True)."""
        if gguf_file or model.endswith(".gguf"):
            raise BackendError("the vLLM backend takes a model directory or hub id, not a GGUF file; "
                               "use --backend hf for GGUF")
        refuse_pickle(model, allow_pickle)
        vllm = require_vllm()
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise BackendError(f"cannot load the tokenizer of {model!r}: {str(exc).splitlines()[0]}") from None
        kwargs: dict[str, Any] = dict(
            model=model, tokenizer=model, dtype=canonical_dtype(dtype), seed=int(seed),
            gpu_memory_utilization=float(gpu_memory_utilization), tensor_parallel_size=int(tensor_parallel_size),
            trust_remote_code=trust_remote_code, enable_prefix_caching=False, max_logprobs=NEXT_TOKEN_TOP_K,
            **({} if allow_pickle else {"load_format": "safetensors"}),
        )
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        llm = vllm.LLM(**kwargs)
        engine_len = _engine_max_model_len(llm) or max_model_len or getattr(tokenizer, "model_max_length", 2048)
        settings = {"dtype": canonical_dtype(dtype), "max_model_len": max_model_len}
        return cls(llm, tokenizer, max_length=scoring_max_length(max_length, engine_len), settings=settings)

    # -------------------------------------------------------------- scoring
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        plan = plan_scoring(requests, self.max_length)
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        sequence_params = self._sampling(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        prompts = [self._prompt(prompt_token_ids=list(p.tokens)) for p in plan.sequences]
        params = [sequence_params] * len(plan.sequences)
        for p in plan.next_tokens:
            prompts.append(self._prompt(prompt_token_ids=list(p.tokens)))
            params.append(self._next_token_params(p))
        outputs = self._generate(prompts, params) if prompts else []
        self._fill_sequences(plan.sequences, outputs[:len(plan.sequences)], results)
        rescue: list[SequencePrompt] = []
        for prompt, output in zip(plan.next_tokens, outputs[len(plan.sequences):]):
            completion = output.outputs[0]
            first = completion.logprobs[0] if completion.logprobs else None
            sampled = completion.token_ids[0] if len(completion.token_ids) else None
            scores = parse_next_token(first, prompt.candidates, sampled)
            for owners, score in zip(prompt.requests, scores):
                if score is not None:
                    for index in owners:
                        results[index] = LoglikelihoodResult(score[0], score[1], 1)
            rescue += rescue_prompts(prompt, [i for i, s in enumerate(scores) if s is None], self.max_length)
        if rescue:  # choices outside the top-k log-probs: score them as prompts
            outputs = self._generate([self._prompt(prompt_token_ids=list(p.tokens)) for p in rescue],
                                     [sequence_params] * len(rescue))
            self._fill_sequences(rescue, outputs, results)
        check_finite(results)  # type: ignore[arg-type]  # a NaN score must not become "choice 0"
        return results  # type: ignore[return-value]

    def _next_token_params(self, prompt: NextTokenPrompt):
        if self.use_token_ids:
            return self._sampling(max_tokens=1, temperature=0.0, logprob_token_ids=list(prompt.candidates),
                                  detokenize=False)
        return self._sampling(max_tokens=1, temperature=0.0, logprobs=NEXT_TOKEN_TOP_K, detokenize=False)

    @staticmethod
    def _fill_sequences(prompts: Sequence[SequencePrompt], outputs: Sequence[Any], results: list) -> None:
        for prompt, output in zip(prompts, outputs):
            logprob, greedy = parse_prompt_logprobs(output.prompt_logprobs, prompt.positions, prompt.targets)
            for index in prompt.requests:
                results[index] = LoglikelihoodResult(logprob, greedy, len(prompt.targets))

    def _generate(self, prompts: list, params: list) -> list:
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=self.use_tqdm)
        if len(outputs) != len(prompts):  # pragma: no cover - vLLM contract
            raise BackendError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return outputs

    # ----------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        prompts, params = [], []
        for request in requests:
            tokens, kwargs = generation_prompt(request, self.max_length)
            prompts.append(self._prompt(prompt_token_ids=tokens))
            params.append(self._sampling(**kwargs))
        outputs = self._generate(prompts, params) if prompts else []
        bad = [i for i, out in enumerate(outputs) if not finite_generation(out.outputs[0])]
        if bad:
            raise NonFiniteScoreError(f"{len(bad)} of {len(requests)} generation requests got non-finite "
                                      "log-probs (NaN or inf); the model's weights or numerics are broken", bad)
        eos = self.tokenizer.eos_token_id

        def decode(ids: list[int]) -> str:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

        return [completion_text(out.outputs[0].token_ids, decode, r.stop, eos) for out, r in zip(outputs, requests)]

    def close(self) -> None:  # pragma: no cover - needs a GPU
        self.llm = None
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:
            pass


def _engine_max_model_len(llm: Any) -> int | None:
    """The context length vLLM settled on (attribute paths differ between versions)."""
    for path in (("llm_engine", "model_config", "max_model_len"), ("llm_engine", "vllm_config", "model_config",
                                                                    "max_model_len")):
        value: Any = llm
        for name in path:
            value = getattr(value, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
