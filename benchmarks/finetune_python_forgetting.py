"""Does a short fine-tune on Python source make a small instruct model forget, and does the risk score see it?

Fine-tunes a Hugging Face checkpoint directory (e.g. SmolLM2-135M converted from
its GGUF by forgetscope's GGUF cache) on Python source files for a few hundred
steps on CPU (plain AdamW loop, fp32, next-token loss on packed sequences),
saves the result as safetensors, and writes a JSONL of real multiple-choice
items taken from BIG-bench task.json files (the same selection as
benchmarks/lmeval_task_agreement.py). Scoring and the comparison are then the
ordinary CLI commands:

    python benchmarks/finetune_python_forgetting.py --init BEFORE_DIR --source /usr/lib/python3.11 \
        --bigbench /path/to/bigbench-1.0.0 --work WORK --steps 20 --lr 2e-4
    forgetscope eval BEFORE_DIR --task WORK/bigbench_mc.jsonl --output WORK/records --name before
    forgetscope eval WORK/after --task WORK/bigbench_mc.jsonl --output WORK/records-after --name after
    forgetscope compare WORK/records WORK/records-after --json WORK/compare.json

BEFORE_DIR for SmolLM2-135M: the safetensors copy forgetscope's GGUF cache
makes of SmolLM2-135M-Instruct.Q4_1.gguf (backends/gguf_cache.py, under
~/.cache/forgetscope/gguf/), i.e. the de-quantised model `eval --gguf-file` scores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def python_sources(root: Path, limit_bytes: int, seed: int) -> list[str]:
    """Texts of .py files under `root` (seeded order, tests and vendored trees skipped) up to `limit_bytes`."""
    files = sorted(p for p in root.rglob("*.py") if "test" not in str(p.relative_to(root)).lower())
    random.Random(seed).shuffle(files)
    texts, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def packed_batches(tokenizer, texts: list[str], seq_len: int, batch_size: int, steps: int, seed: int):
    """`steps` batches of `batch_size` packed sequences of `seq_len` tokens (documents joined with EOS)."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) >= seq_len * batch_size * steps:
            break
    n = len(ids) // seq_len
    blocks = torch.tensor(ids[: n * seq_len]).view(n, seq_len)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for step in range(steps):
        index = order[(torch.arange(batch_size) + step * batch_size) % n]
        yield blocks[index]


def finetune(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.init)
    model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32, use_safetensors=True)
    model.train()
    texts = python_sources(args.source, args.source_bytes, args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    losses, start = [], time.perf_counter()
    for step, batch in enumerate(packed_batches(tokenizer, texts, args.seq_len, args.batch_size, args.steps,
                                                args.seed)):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:4d} loss {losses[-1]:.3f} {time.perf_counter() - start:6.0f} s", flush=True)
    out = args.work / "after"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
            "tokens": args.steps * args.batch_size * args.seq_len, "loss_first10": sum(losses[:10]) / 10,
            "loss_last10": sum(losses[-10:]) / 10, "train_wall_s": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, required=True, help="checkpoint directory (safetensors) to start from")
    parser.add_argument("--source", type=Path, required=True, help="folder of .py files to fine-tune on")
    parser.add_argument("--bigbench", type=Path, required=True, help="the bigbench sdist (its task.json files)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n-items", type=int, default=480)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--source-bytes", type=int, default=4_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from lmeval_task_agreement import bigbench_items

    args.work.mkdir(parents=True, exist_ok=True)
    test, _ = bigbench_items(args.bigbench, args.n_items)
    (args.work / "bigbench_mc.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "question": r["question"], "choices": r["choices"],
                    "answer": r["answer"]}) + "\n" for r in test))
    figures = {"items": len(test), "bigbench_tasks": len({r["task"] for r in test}), **finetune(args)}
    (args.work / "finetune.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
