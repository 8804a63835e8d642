"""Per-item agreement with lm-evaluation-harness on the same model, items and prompt format.

Runs lm-evaluation-harness (in its own Python environment: it is not a
dependency of forgetscope) with --log_samples on a multiple-choice JSONL file,
runs forgetscope on the same file, and compares per-item `acc` and `acc_norm`
and the per-choice log-likelihoods.

    python benchmarks/lmeval_agreement.py --model DIR --items items.jsonl \
        --lm-eval-python /path/to/lmeval-venv/bin/python

Without --items, the built-in synthetic tasks are written to a JSONL file.
Set up lm-eval's environment with benchmarks/setup_lmeval.sh.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
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


def write_synthetic_items(path: Path, n_per_task: int, seed: int) -> None:
    from forgetscope.train.synthetic import synthetic_tasks

    with open(path, "w") as handle:
        for task in synthetic_tasks(seed=seed):
            mc = [i for i in task.items if i.kind == "multiple_choice"][:n_per_task]
            for item in mc:
                question = item.context.removeprefix("Question: ").removesuffix("\nAnswer:")
                if "Question: " + question + "\nAnswer:" != item.context:
                    continue  # only items in the default format compare 1:1
                handle.write(json.dumps({"id": f"{task.name}/{item.item_id}", "question": question,
                                         "choices": list(item.choices), "answer": item.gold[0]}) + "\n")


def run_lm_eval(python: str, model: str, items: Path, work: Path, batch_size: int, model_args: str) -> tuple[Path, float]:
    name = "fs_agreement"
    (work / "tasks").mkdir(parents=True, exist_ok=True)
    (work / "tasks" / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=items.resolve()))
    args = f"pretrained={model},dtype=float32" + (f",{model_args}" if model_args else "")
    command = [python, "-m", "lm_eval", "--model", "hf", "--model_args", args, "--device", "cpu",
               "--batch_size", str(batch_size), "--tasks", name, "--include_path", str(work / "tasks"),
               "--log_samples", "--output_path", str(work / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"lm_eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    samples = glob.glob(str(work / "out" / "**" / f"samples_{name}_*.jsonl"), recursive=True)
    if not samples:
        sys.exit(f"lm_eval wrote no samples file under {work / 'out'}")
    return Path(samples[0]), seconds


def read_lm_eval_samples(path: Path, items: list[dict]) -> dict[str, dict]:
    out = {}
    with open(path) as handle:
        for line in handle:
            row = json.loads(line)
            doc = row["doc"]
            lls = [float(r[0]) for r in row["filtered_resps"]]
            out[str(doc["id"])] = {"acc": bool(row["acc"]), "acc_norm": bool(row["acc_norm"]), "ll": lls}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory (HF format)")
    parser.add_argument("--items", type=Path, help="multiple-choice JSONL (id, question, choices, answer)")
    parser.add_argument("--n-per-task", type=int, default=100)
    parser.add_argument("--lm-eval-python", default=os.environ.get("FORGETSCOPE_LMEVAL_PYTHON", sys.executable))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model-args", default="", help="extra lm-eval model_args, e.g. gguf_file=x.gguf")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model (forgetscope side)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    from forgetscope.evaluate import EvalSettings, evaluate
    from forgetscope.tasks import load_task

    work = Path(tempfile.mkdtemp(prefix="fs-lmeval-"))
    items_path = args.items or work / "items.jsonl"
    if not args.items:
        write_synthetic_items(items_path, args.n_per_task, seed=0)
    items = [json.loads(line) for line in open(items_path)]

    samples, lm_eval_seconds = run_lm_eval(args.lm_eval_python, args.model, items_path, work, args.batch_size,
                                           args.model_args)
    theirs = read_lm_eval_samples(samples, items)

    task = load_task(str(items_path))
    start = time.perf_counter()
    ours = evaluate(args.model, [task], work / "fs", EvalSettings(batch_size=args.batch_size, gguf_file=args.gguf_file))
    ours_seconds = time.perf_counter() - start
    ours = ours.set_index("item_id")

    agree_acc = agree_norm = 0
    max_ll_diff = 0.0
    disagreements = []
    for item_id, ref in theirs.items():
        row = ours.loc[item_id]
        agree_acc += bool(row.correct) == ref["acc"]
        agree_norm += bool(row.correct_norm) == ref["acc_norm"]
        diff = float(np.max(np.abs(np.asarray(row.loglikelihoods) - np.asarray(ref["ll"]))))
        max_ll_diff = max(max_ll_diff, diff)
        if bool(row.correct) != ref["acc"] or bool(row.correct_norm) != ref["acc_norm"]:
            disagreements.append(item_id)
    n = len(theirs)
    figures = {
        "model": args.model, "items": n, "acc_agreement": agree_acc / n, "acc_norm_agreement": agree_norm / n,
        "max_abs_loglikelihood_diff": max_ll_diff, "disagreeing_items": disagreements[:20],
        "lm_eval_seconds": round(lm_eval_seconds, 1), "forgetscope_seconds": round(ours_seconds, 1),
        "forgetscope_acc": float(ours["correct"].mean()), "lm_eval_acc": float(np.mean([r["acc"] for r in theirs.values()])),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
