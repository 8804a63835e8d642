"""The optimizer loop of one stage: batches from the plan, AdamW, checkpoints, resume, DDP.

Why it is faster than the plain loop in `loop.py` (measured in
`benchmarks/train_throughput.py`): the loss is computed from the decoder's
hidden states with the LM head applied to the positions that have a target
(no logits for the last position, no label tensor, no attention mask, so
attention runs as pure causal SDPA), fused with the cross-entropy in chunks
(`fused_loss.py`: no [tokens, vocab] logits tensor); AdamW is the fused kernel where the
device has one; the per-step loss stays a tensor (no `.item()` sync per
step); batches are gathered from one pre-packed tensor by index.

Loss normalisation: the summed token loss of the whole global batch divided
by its token count (batch × (seq_len − 1)), so one process and N processes
(each scaling its partial sum by N / count before DDP averages gradients)
compute the same loss and gradients up to float summation order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from forgetscope.train.checkpoints import StageRecord, checkpoint_dirname, checkpoint_name, save_model_dir, save_state
from forgetscope.train.ddp import Dist
from forgetscope.train.fields import ConfigError, join
from forgetscope.train.mixture import seed_from
from forgetscope.train.plan import StagePlan
from forgetscope.train.schedule import lr_at

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class StageData:
    """Every source's training rows in one tensor (gathered by index), plus validation rows per source."""

    rows: "torch.Tensor"
    offsets: dict[str, int]
    val: dict[str, "torch.Tensor"]


@dataclass
class Runtime:
    """Where and how to train (none of it changes the result except `precision`)."""

    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    dist: Dist = field(default_factory=Dist)
    log: Callable[[str], None] | None = print
    log_every: int = 50


class LossModule:
    """Summed next-token loss of a batch; a torch Module built lazily (torch is imported on use)."""

    @staticmethod
    def build(model: "PreTrainedModel") -> "torch.nn.Module":
        import torch
        import torch.nn.functional as F

        from forgetscope.train.fused_loss import linear_cross_entropy_sum

        class NextTokenLoss(torch.nn.Module):
            def __init__(self, lm: "PreTrainedModel") -> None:
                super().__init__()
                self.lm = lm

            def forward(self, batch: "torch.Tensor") -> "torch.Tensor":
                hidden = self.lm.base_model(input_ids=batch, use_cache=False).last_hidden_state[:, :-1]
                head = self.lm.get_output_embeddings()
                targets = batch[:, 1:].flatten()
                if head.bias is None:
                    device = hidden.device.type
                    low = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
                    return linear_cross_entropy_sum(hidden.flatten(0, 1), head.weight, targets, matmul_dtype=low)
                logits = head(hidden)
                return F.cross_entropy(logits.flatten(0, 1).float(), targets, reduction="sum")

        return NextTokenLoss(model)


def _param_groups(model: "torch.nn.Module", weight_decay: float) -> list[dict]:
    """Decay matrices (linear, embedding); never norms or biases."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: "torch.nn.Module", *, lr: float, betas: tuple[float, float], eps: float,
                   weight_decay: float) -> "torch.optim.Optimizer":
    """AdamW; the fused kernel when this torch has one for the parameters' device (CPU too since torch 2.4)."""
    import torch

    kwargs = dict(lr=lr, betas=tuple(betas), eps=eps)
    try:
        return torch.optim.AdamW(_param_groups(model, weight_decay), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.AdamW(_param_groups(model, weight_decay), foreach=True, **kwargs)


def optimizer_step(module: "torch.nn.Module", model: "torch.nn.Module", optimizer: "torch.optim.Optimizer",
                   inputs: "torch.Tensor", scale: float, grad_clip: float | None, context) -> "torch.Tensor":
    """One step: summed loss → backward of loss·scale → clip → AdamW. Returns the summed loss (no sync)."""
    import torch

    with context:  # autocast (bf16) or a no-op
        loss_sum = module(inputs)
    (loss_sum * scale).backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum.detach()


class Dropout:
    """Stage dropout on a model whose config says otherwise: residual (attention and MLP outputs) + attention.

    Llama has no residual dropout modules, so forward hooks apply it to each
    layer's `o_proj` and `down_proj` outputs; attention-probability dropout is
    the attention modules' own `attention_dropout`. GPT-2's `nn.Dropout`
    modules just get the new probability. Nothing is written to the model
    config, so checkpoints say what the model is, not how it was trained.
    """

    def __init__(self, model: "PreTrainedModel", p: float) -> None:
        import torch

        self.undo: list[Callable[[], None]] = []
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Dropout):
                old = module.p
                module.p = p
                self.undo.append(lambda m=module, v=old: setattr(m, "p", v))
            elif hasattr(module, "attention_dropout") and isinstance(module.attention_dropout, float):
                old = module.attention_dropout
                module.attention_dropout = p
                self.undo.append(lambda m=module, v=old: setattr(m, "attention_dropout", v))
            elif p > 0 and (name.endswith("o_proj") or name.endswith("down_proj")):
                handle = module.register_forward_hook(
                    lambda mod, _inp, out: torch.nn.functional.dropout(out, p, mod.training))
                self.undo.append(handle.remove)

    def remove(self) -> None:
        for undo in reversed(self.undo):
            undo()


def validation_loss(model: "PreTrainedModel", val: dict[str, "torch.Tensor"], device: str, precision: str,
                    batch_size: int = 16) -> dict[str, float]:
    """Mean next-token loss on each source's held-out rows."""
    import torch

    module = LossModule.build(model)
    was_training = model.training
    model.eval()
    out = {}
    with torch.no_grad(), autocast(device, precision):
        for name, rows in val.items():
            if len(rows) == 0:
                continue
            total = sum(float(module(rows[i:i + batch_size].to(device))) for i in range(0, len(rows), batch_size))
            out[name] = round(total / (rows.shape[0] * (rows.shape[1] - 1)), 6)
    model.train(was_training)
    return out


def autocast(device: str, precision: str):
    """bf16 autocast when asked for, else a no-op context."""
    import torch

    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")


def train_stage(
    plan: StagePlan,
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    data: StageData,
    record: StageRecord,
    *,
    seq_len: int,
    seed: int,
    base_tokens: dict[str, int],
    runtime: Runtime,
    resume: dict | None = None,
    after_checkpoint: Callable[[], None] | None = None,
    max_steps: int | None = None,
) -> int:
    """Train `model` in place through `plan` from step 0 (or `resume["step"]`); returns the steps run.

    Checkpoints (rank 0 writes) after every step in `plan.checkpoint_steps`;
    `max_steps` stops early (resumable) after that many steps in this call.
    """
    import torch

    dist, device = runtime.dist, runtime.device
    batch = plan.batch_size
    if batch % dist.world:
        raise ConfigError(join(join("stages", plan.index), "batch_size"),
                          f"{batch} does not divide among {dist.world} processes")
    per_rank = batch // dist.world
    n_targets = batch * (seq_len - 1)
    offsets = np.array([data.offsets[name] for name in plan.names], dtype=np.int64)
    global_ids = offsets[plan.slots.astype(np.int64)] + plan.rows
    start = int(resume["step"]) if resume else 0
    losses: list[float] = list(resume["losses"]) if resume else []
    cfg = plan.config

    with torch.random.fork_rng(devices=[]):
        model.to(device).float().train()
        dropout = Dropout(model, plan.dropout)
        module = LossModule.build(model)
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(module, device_ids=[dist.local_rank] if device.startswith("cuda") else None)
        if runtime.compile:
            module = torch.compile(module)
        optimizer = make_optimizer(model, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
        if resume:
            optimizer.load_state_dict(resume["optimizer"])
            torch.set_rng_state(resume["rng"][dist.rank % len(resume["rng"])])
        else:
            torch.manual_seed(seed_from(seed, plan.name, "dropout", dist.rank) % (2**63))
        pending: list[torch.Tensor] = []
        clock, clock_step = time.perf_counter(), start
        ran = 0
        for step in range(start, plan.steps):
            lr = lr_at(step, steps=plan.steps, lr=cfg.lr, warmup=cfg.warmup, schedule=cfg.schedule, min_lr=cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids = torch.from_numpy(global_ids[step, dist.rank * per_rank:(dist.rank + 1) * per_rank])
            inputs = data.rows.index_select(0, ids).to(device, non_blocking=True)
            pending.append(optimizer_step(module, model, optimizer, inputs, dist.world / n_targets, cfg.grad_clip,
                                          autocast(device, runtime.precision)))
            ran += 1
            done = step + 1
            checkpoint = done in plan.checkpoint_steps
            logging = runtime.log and runtime.log_every and (done % runtime.log_every == 0 or done == plan.steps)
            if checkpoint or logging or (max_steps is not None and ran >= max_steps):
                sums = dist.sum_(torch.stack(pending).float().cpu())
                losses += (sums / n_targets).tolist()
                pending = []
            if logging and dist.is_main:
                elapsed = time.perf_counter() - clock
                window = losses[clock_step - done:] if done > clock_step else losses[-1:]
                tokens = (done - clock_step) * batch * seq_len
                runtime.log(f"[{plan.name}] step {done}/{plan.steps}  loss {sum(window) / len(window):.4f}  "
                            f"lr {lr:.2e}  {tokens / max(elapsed, 1e-9):,.0f} tok/s")
                clock, clock_step = time.perf_counter(), done
            if checkpoint:
                _checkpoint(plan, model, tokenizer, data, record, optimizer, losses, done, seq_len, base_tokens, runtime)
                if after_checkpoint and dist.is_main:
                    after_checkpoint()
                dist.barrier()
                clock, clock_step = time.perf_counter(), done  # throughput excludes checkpoint writing
            if max_steps is not None and ran >= max_steps:
                break
        dropout.remove()
    model.eval()
    return ran


def _checkpoint(plan: StagePlan, model, tokenizer, data: StageData, record: StageRecord, optimizer, losses: list[float],
                step: int, seq_len: int, base_tokens: dict[str, int], runtime: Runtime) -> None:
    """Save model dir, resume state and the record entry (rank 0); every rank's RNG state is gathered first."""
    import torch

    rng_states = runtime.dist.gather_objects(torch.get_rng_state())
    if not runtime.dist.is_main:
        return
    final = step == plan.steps
    tokens = dict(base_tokens)
    for name, n in plan.sequences_seen(step).items():
        tokens[name] = tokens.get(name, 0) + n * seq_len
    dirname = checkpoint_dirname(plan.name, step)
    save_model_dir(model, tokenizer, record.home / "checkpoints" / dirname)
    if not final:  # a finished stage is never resumed: its optimizer state would only take disk space
        save_state({"step": step, "hash": plan.hash, "optimizer": optimizer.state_dict(), "rng": rng_states,
                    "losses": losses, "world": runtime.dist.world}, record.state_path(step))
    entry = {"name": checkpoint_name(plan.name, step), "path": f"checkpoints/{dirname}", "stage": plan.name,
             "step": step, "final": final, "tokens_seen": tokens,
             "val_loss": validation_loss(model, data.val, runtime.device, runtime.precision)}
    record.add_checkpoint(entry, complete=final, extra={"losses": losses})
    record.drop_old_states(-1 if final else step)
