"""A small, correct causal-LM training loop (fp32, AdamW, warmup + decay).

Kept deliberately plain so it can be reused by the stage runner: texts are
tokenised once, joined with EOS between documents and cut into fixed-length
sequences (no padding, every token is a training target); batches are drawn
from seeded permutations, so the same seed gives the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from forgetscope.train.schedule import Schedule, lr_at  # noqa: F401 - re-exported: lr_at lived here first

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def pack_texts(tokenizer: "PreTrainedTokenizerBase", texts: Sequence[str], seq_len: int) -> "torch.Tensor":
    """Tokenise `texts` once, join them with EOS after each document, cut into rows of `seq_len`.

    Returns a LongTensor [n_sequences, seq_len]; the incomplete tail is dropped.
    Documents cross row boundaries (standard packing): the model learns that
    EOS starts something new.
    """
    import numpy as np
    import torch

    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; packing needs one to separate documents")
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]  # long documents are fine: they are cut into rows
    eos = tokenizer.eos_token_id
    lengths = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    ends = np.cumsum(lengths)
    for doc, end, n in zip(ids, ends, lengths):  # one slice per document, not per token
        flat[end - n : end - 1] = doc
    flat[ends - 1] = eos
    n_rows = len(flat) // seq_len
    if n_rows == 0:
        raise ValueError(f"only {len(flat)} tokens in {len(ids)} texts: not enough for one sequence of {seq_len}")
    return torch.from_numpy(flat[: n_rows * seq_len].reshape(n_rows, seq_len).copy())


def _param_groups(model: "torch.nn.Module", weight_decay: float) -> list[dict]:
    """Decay matrices (linear, embedding); never norms or biases."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batches(n_rows: int, batch_size: int, steps: int, generator: "torch.Generator"):
    """`steps` index batches from back-to-back seeded permutations of the rows."""
    import torch

    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n_rows, generator=generator)])
        yield order[:batch_size]
        order = order[batch_size:]


@dataclass
class TrainStats:
    """What one `fit` call did: the loss of every step, wall time and tokens seen."""

    losses: list[float]
    seconds: float
    tokens: int
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "losses": self.losses, "seconds": round(self.seconds, 3), "tokens": self.tokens}


def fit(
    model: "PreTrainedModel",
    rows: "torch.Tensor",
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 1e-3,
    warmup: int = 20,
    schedule: Schedule = "cosine",
    min_lr: float = 0.0,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    grad_clip: float | None = 1.0,
    seed: int = 0,
    log_every: int = 50,
    log: Callable[[str], None] | None = print,
) -> TrainStats:
    """Train `model` in place on packed `rows` ([n, seq_len], from `pack_texts`) for `steps` steps.

    Runs under a forked RNG seeded with `seed` (the caller's global RNG is
    untouched), so the same model, rows and settings give identical weights.
    """
    import torch

    max_pos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if max_pos is not None and rows.shape[1] > max_pos:
        raise ValueError(f"seq_len {rows.shape[1]} exceeds the model's context of {max_pos} positions")
    settings = dict(steps=steps, batch_size=batch_size, seq_len=int(rows.shape[1]), lr=lr, warmup=warmup,
                    schedule=schedule, min_lr=min_lr, weight_decay=weight_decay, betas=list(betas),
                    grad_clip=grad_clip, seed=seed, n_sequences=int(rows.shape[0]))
    lr_at(0, steps=steps, lr=lr, warmup=warmup, schedule=schedule, min_lr=min_lr)  # reject a bad schedule early
    losses: list[float] = []
    # enable_grad: a caller may be inside no_grad/inference code; training needs gradients
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)  # dropout, if any
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=betas, eps=1e-8)
        model.float().train()
        start = time.perf_counter()
        window: list[float] = []
        for step, index in enumerate(_batches(rows.shape[0], batch_size, steps, generator)):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps=steps, lr=lr, warmup=warmup, schedule=schedule, min_lr=min_lr)
            batch = rows[index]
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            window.append(losses[-1])
            if log and log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
                elapsed = time.perf_counter() - start
                tokens = (step + 1) * batch_size * rows.shape[1]
                log(f"step {step + 1}/{steps}  loss {sum(window) / len(window):.4f}  "
                    f"lr {optimizer.param_groups[0]['lr']:.2e}  {tokens / elapsed:,.0f} tok/s")
                window = []
        seconds = time.perf_counter() - start
    model.eval()
    return TrainStats(losses, seconds, steps * batch_size * int(rows.shape[1]), settings)


def train_causal_lm(
    model_dir_or_model: "str | Path | PreTrainedModel",
    texts: "Sequence[str] | torch.Tensor",
    out_dir: str | Path,
    *,
    tokenizer: "PreTrainedTokenizerBase | None" = None,
    steps: int = 200,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float = 1e-3,
    warmup: int = 20,
    schedule: Schedule = "cosine",
    min_lr: float = 0.0,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    grad_clip: float | None = 1.0,
    seed: int = 0,
    log_every: int = 50,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Train a causal LM on `texts` and save model + tokenizer to `out_dir` (returned).

    `model_dir_or_model` is a checkpoint directory (its tokenizer is loaded
    from the same place unless `tokenizer` is given) or a model object (then
    `tokenizer` is required; the object is trained in place). `texts` are
    documents, or rows already packed by `pack_texts` (then `seq_len` is
    ignored). Writes `train_log.json` (settings, per-step losses, throughput)
    beside the weights. Same seed, data and settings → identical weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetscope.train.tiny import save_checkpoint

    if isinstance(model_dir_or_model, (str, Path)):
        model = AutoModelForCausalLM.from_pretrained(str(model_dir_or_model), dtype=torch.float32)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model_dir_or_model))
    else:
        model = model_dir_or_model
        if tokenizer is None:
            raise ValueError("pass tokenizer= when training a model object (it is saved with the checkpoint)")
    rows = texts if isinstance(texts, torch.Tensor) else pack_texts(tokenizer, texts, seq_len)
    stats = fit(model, rows, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, schedule=schedule,
                min_lr=min_lr, weight_decay=weight_decay, betas=betas, grad_clip=grad_clip, seed=seed,
                log_every=log_every, log=log)
    out = save_checkpoint(model, tokenizer, out_dir)
    tmp = out / "train_log.json.tmp"
    tmp.write_text(json.dumps(stats.to_dict(), indent=1))
    tmp.replace(out / "train_log.json")
    return out
