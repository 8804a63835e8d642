"""The transformers backend: CPU or GPU, fp32 by default.

Scoring runs one forward pass per batch of (context + continuation)
sequences, right-padded and sorted by length so little padding is computed.
Right padding keeps every real token's positions and attention exactly as in
an unpadded pass, which is why batch size does not change the scores.
Only the hidden states at continuation positions go through the LM head, so
a 49k-token vocabulary costs (continuation tokens × vocab), not
(all tokens × vocab).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .base import (
    Backend,
    BackendError,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)

# Architectures whose logits are exactly lm_head(final hidden state): for these
# we can apply the head to the continuation positions only.
_PLAIN_HEAD_MODEL_TYPES = {
    "llama", "gpt2", "mistral", "qwen2", "qwen3", "phi3", "gpt_neox", "olmo", "olmo2", "smollm3",
}


def _torch_dtype(name: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name == "auto":
        return "auto"
    try:
        return table[name]
    except KeyError:
        raise BackendError(f"unknown dtype {name!r}; choose float32, bfloat16, float16 or auto") from None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    return device


def split_gguf(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`dir/model.gguf` → (`dir`, `model.gguf`); otherwise unchanged."""
    if gguf_file is None and model.endswith(".gguf") and Path(model).is_file():
        path = Path(model)
        return str(path.parent), path.name
    return model, gguf_file


def load_model_and_tokenizer(
    model: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
):
    """Load a causal LM and its tokenizer from a local dir, a hub id or a GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # forgetscope shows its own progress
    model, gguf_file = split_gguf(model, gguf_file)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=_torch_dtype(dtype), **kwargs)
    except ImportError as exc:  # e.g. gguf not installed
        raise BackendError(f"cannot load {model!r}: {exc}. For GGUF files: pip install gguf accelerate") from None
    except ValueError as exc:  # transformers reports missing optional packages this way too
        raise BackendError(f"cannot load {model!r}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise BackendError(
            f"cannot load model {model!r}: {str(exc).splitlines()[0]}. "
            "Pass a local directory with config.json and weights (or a .gguf file); "
            "hub ids need a network connection or a populated HF cache."
        ) from None
    lm.to(resolve_device(device))
    lm.eval()
    torch.set_grad_enabled(False)
    return lm, tokenizer


class HFBackend(Backend):
    """Score and generate with a transformers causal LM."""

    name = "hf"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, int(batch_size))
        self.device = next(model.parameters()).device
        self.max_length = int(max_length or self._model_max_length())
        self.settings = dict(settings or {})
        self._plain_head = getattr(model.config, "model_type", "") in _PLAIN_HEAD_MODEL_TYPES
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 16,
        max_length: int | None = None,
        gguf_file: str | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
    ) -> "HFBackend":
        import torch

        if threads:
            torch.set_num_threads(threads)
        elif device == "cpu" and os.environ.get("OMP_NUM_THREADS") is None:
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        lm, tok = load_model_and_tokenizer(
            model, dtype=dtype, device=device, gguf_file=gguf_file, trust_remote_code=trust_remote_code
        )
        return cls(lm, tok, batch_size=batch_size, max_length=max_length)

    def _model_max_length(self) -> int:
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    # ------------------------------------------------------------------ scoring
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        import torch

        prepared = []
        for index, req in enumerate(requests):
            whole = list(req.context_ids) + list(req.continuation_ids)
            tokens = whole[-(self.max_length + 1):][:-1]  # left-truncate, drop the last token
            n_cont = min(len(req.continuation_ids), len(tokens))
            prepared.append((index, tokens, list(req.continuation_ids[-n_cont:]) if n_cont else []))
        # longest first: the first batch shows memory problems at once, and
        # sorting by length keeps padding (wasted compute) small
        prepared.sort(key=lambda p: -len(p[1]))
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        with torch.inference_mode():
            for start in range(0, len(prepared), self.batch_size):
                batch = prepared[start:start + self.batch_size]
                for (index, _, cont), (logprob, greedy) in zip(batch, self._score_batch(batch)):
                    results[index] = LoglikelihoodResult(logprob, greedy, len(cont))
        return results  # type: ignore[return-value]

    def _score_batch(self, batch: list[tuple[int, list[int], list[int]]]) -> list[tuple[float, bool]]:
        import torch

        width = max(len(tokens) for _, tokens, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        rows, positions, targets, owner = [], [], [], []
        for b, (_, tokens, cont) in enumerate(batch):
            input_ids[b, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            attention[b, : len(tokens)] = 1
            # logits at position t predict token t+1: the continuation's tokens
            # are predicted from the last len(cont) input positions
            first = len(tokens) - len(cont)
            for j, target in enumerate(cont):
                rows.append(b)
                positions.append(first + j)
                targets.append(target)
                owner.append(b)
        input_ids = input_ids.to(self.device)
        attention = attention.to(self.device)
        rows_t = torch.tensor(rows, dtype=torch.long, device=self.device)
        pos_t = torch.tensor(positions, dtype=torch.long, device=self.device)
        if self._plain_head:
            hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[rows_t, pos_t])
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention).logits[rows_t, pos_t]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        target_t = torch.tensor(targets, dtype=torch.long, device=self.device)
        token_lp = logprobs.gather(1, target_t[:, None]).squeeze(1)
        greedy_tok = logprobs.argmax(dim=-1) == target_t
        owner_t = torch.tensor(owner, dtype=torch.long, device=self.device)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=self.device)
        sums.index_add_(0, owner_t, token_lp.double())
        misses = torch.zeros(len(batch), dtype=torch.long, device=self.device)
        misses.index_add_(0, owner_t, (~greedy_tok).long())
        return [(float(s), int(m) == 0) for s, m in zip(sums.cpu(), misses.cpu())]

    # --------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        import torch

        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context_ids))
        outputs: list[str] = [""] * len(requests)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                for i, text in zip(idx, self._generate_batch([requests[i] for i in idx])):
                    outputs[i] = text
        return outputs

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[str]:
        import torch

        budget = [max(1, r.max_new_tokens) for r in batch]
        contexts = [list(r.context_ids)[-max(1, self.max_length - b):] for r, b in zip(batch, budget)]
        width = max(len(c) for c in contexts)
        n = len(batch)
        # left padding: every row's next token is at the same column
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for b, ctx in enumerate(contexts):
            input_ids[b, width - len(ctx):] = torch.tensor(ctx, dtype=torch.long)
            attention[b, width - len(ctx):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        position = (attention.cumsum(-1) - 1).clamp(min=0)
        generators = [self._generator(r.seed) if r.temperature > 0 else None for r in batch]
        eos = self.tokenizer.eos_token_id
        new_tokens: list[list[int]] = [[] for _ in batch]
        done = [False] * n
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=position, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
        for _ in range(max(budget)):
            next_ids = [self._choose(logits[b], batch[b], generators[b]) for b in range(n)]
            for b in range(n):
                if done[b]:
                    continue
                token = next_ids[b]
                if token == eos:
                    done[b] = True
                    continue
                new_tokens[b].append(token)
                if len(new_tokens[b]) >= budget[b] or self._hit_stop(new_tokens[b], batch[b].stop):
                    done[b] = True
            if all(done):
                break
            step = torch.tensor([[t if not d else self.pad_id] for t, d in zip(next_ids, done)],
                                dtype=torch.long, device=self.device)
            attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=self.device)], 1)
            position = position[:, -1:] + 1
            out = self.model(input_ids=step, attention_mask=attention, position_ids=position,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
        return [cut_at_stop(self.tokenizer.decode(toks, skip_special_tokens=True), r.stop)
                for toks, r in zip(new_tokens, batch)]

    def _generator(self, seed: int):
        import torch

        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) % (2**63))
        return gen

    @staticmethod
    def _choose(logits, request: GenerationRequest, generator) -> int:
        import torch

        if request.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_p, sorted_i = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < request.top_p
            probs = torch.zeros_like(probs).scatter(0, sorted_i[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=generator))

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        if not stop:
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stop)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text up to the earliest stop sequence (excluded)."""
    cut = len(text)
    for s in stop:
        found = text.find(s)
        if 0 <= found < cut:
            cut = found
    return text[:cut]
