"""Training throughput: forgetscope's stage loop against a naive reference loop, same model and data.

    .venv/bin/python benchmarks/train_throughput.py              # hidden 256, 4 layers, vocab 8192 (~8M params), fp32
    .venv/bin/python benchmarks/train_throughput.py --hidden 128 --layers 2 --vocab 1024

The naive loop is what a first training script does: `model(input_ids, attention_mask, labels=...)` so HF computes the loss
(with a padding mask, as a tokenizer's batch would give), torch's default
AdamW, and `loss.item()` every step. Ours is `forgetscope.train.trainer`'s
step: loss from the decoder's hidden states through the fused, chunked LM
head + cross-entropy (no logits tensor, no logits for the last position, no
mask: pure causal SDPA), fused AdamW, no per-step sync. `--bf16` also times
it under bf16 autocast (weights and optimizer stay fp32): on a CPU with
AVX512-BF16 the matmuls run ~2.4x faster than fp32. Both train the same
initial weights on the same batches; the two are run alternately (ABAB...) so
a change in machine load hits both, and the median of the repeats is reported.
Throughput on a shared machine is only meaningful when it is idle: the load
average is printed before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time


def build(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
                         max_position_embeddings=2 * args.seq_len, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float().train()
    data = torch.randint(0, args.vocab, (args.batch * (args.steps + args.warmup_steps), args.seq_len))
    return model, data


def naive_loop(model, data, args) -> float:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    mask = torch.ones(args.batch, args.seq_len, dtype=torch.long)
    start = None
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            start = time.perf_counter()
        batch = data[step * args.batch:(step + 1) * args.batch]
        loss = model(input_ids=batch, attention_mask=mask, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
    return args.steps * args.batch * args.seq_len / (time.perf_counter() - start)


def our_loop(model, data, args, precision: str = "fp32") -> float:
    import torch

    from forgetscope.train.trainer import LossModule, autocast, make_optimizer, optimizer_step

    module = LossModule.build(model)
    optimizer = make_optimizer(model, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    scale = 1.0 / (args.batch * (args.seq_len - 1))
    losses = []
    start = None
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            start = time.perf_counter()
        batch = data.index_select(0, torch.arange(step * args.batch, (step + 1) * args.batch))
        losses.append(optimizer_step(module, model, optimizer, batch, scale, 1.0, autocast("cpu", precision)))
    torch.stack(losses).sum().item()  # the one sync
    return args.steps * args.batch * args.seq_len / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--bf16", action="store_true", help="also time forgetscope with bf16 autocast (fp32 weights)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}   torch {torch.__version__}, {torch.get_num_threads()} threads")
    model, data = build(args)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}: {params / 1e6:.2f}M parameters; "
          f"batch {args.batch} × {args.seq_len} tokens, fp32, {args.steps} timed steps")
    loops = {"naive": naive_loop, "forgetscope": our_loop}
    if args.bf16:
        loops["forgetscope bf16"] = lambda m, d, a: our_loop(m, d, a, "bf16")
    results: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            results[name].append(loop(copy.deepcopy(model), data, args))
    for name, values in results.items():
        print(f"{name:16s} {statistics.median(values):9,.0f} tokens/s  (runs: {', '.join(f'{v:,.0f}' for v in values)})")
    for name in results:
        if name != "naive":
            ratio = statistics.median(results[name]) / statistics.median(results["naive"])
            print(f"ratio {name} / naive (fp32): {ratio:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
