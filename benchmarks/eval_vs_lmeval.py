"""forgetscope vs lm-evaluation-harness on the same model, items and prompt format:
per-item agreement and speed, measured in one run.

Both tools run as separate processes, end to end (start-up, model load, scoring),
on the same multiple-choice JSONL file, the same batch size, fp32, CPU. The
script then checks that every item got the same `acc` and `acc_norm` decision
(so speed never comes from scoring less) and prints the items/s ratio.

    python benchmarks/eval_vs_lmeval.py --model DIR --items items.jsonl
    python benchmarks/eval_vs_lmeval.py --build-tiny /tmp/tiny8m --n-items 600   # ~8M-param local model

lm-evaluation-harness lives in its own environment (benchmarks/setup_lmeval.sh);
point --lm-eval-python (or FORGETSCOPE_LMEVAL_PYTHON) at its Python.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
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

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


CHOICE_STYLES = ("phrases", "numbers", "letters")
_NAMES = ["Ana", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Juno"]
_THINGS = ["apples", "books", "coins", "stamps", "shells", "marbles", "pens", "cards"]
_PLACES = ["the market", "the old bridge", "the library", "the harbour", "the school", "the bakery",
           "the river bank", "the train station", "the garden", "the museum"]
_ACTIONS = ["walks to", "cycles to", "runs to", "drives to", "rows to", "takes the bus to"]


def write_items(path: Path, n: int, seed: int = 0, passage_sentences: int = 2, style: str = "phrases") -> None:
    """n four-choice items: a short passage and a question about it (context ~40-80 tokens).

    The choice style decides how much a harness can share between an item's four requests:
    - phrases (ARC/HellaSwag-like): multi-token answers such as "cycles to the library";
      lm-eval runs the context once per choice, forgetscope once per item;
    - numbers: "23" vs "25": with per-digit tokenizers choices share their first tokens,
      which lm-eval already groups (it runs context + continuation[:-1] once per distinct value);
    - letters (MMLU-like): the options are in the prompt and the choices are " A".." D",
      one token each: lm-eval too runs each context once, so only the LM head and the
      log-softmax over the vocabulary (computed by lm-eval at every position) differ.
    """
    if style not in CHOICE_STYLES:
        raise ValueError(f"style {style!r} is not one of {', '.join(CHOICE_STYLES)}")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        who, what = rng.choice(_NAMES), rng.choice(_THINGS)
        filler = " ".join(f"{rng.choice(_NAMES)} likes {rng.choice(_THINGS)} and walks to the market on day "
                          f"{rng.randint(1, 30)}." for _ in range(passage_sentences))
        if style == "phrases":
            options = rng.sample([f"{a} {p}" for a in _ACTIONS for p in _PLACES], 4)
            question = f"{filler} On Sunday {who} {options[0]}. What does {who} do on Sunday?"
            choices = [f"{who} {o}" for o in options]
            gold = choices[0]
        else:
            a, b = rng.randint(2, 40), rng.randint(2, 40)
            question = f"{filler} {who} has {a} {what} and gets {b} more. How many {what} does {who} have now?"
            gold = str(a + b)
            pool = {str(a + b + d) for d in (-3, -2, -1, 1, 2, 3, 10)} | {str(a * b), str(abs(a - b))}
            pool.discard(gold)
            choices = rng.sample(sorted(pool), 3) + [gold]
        rng.shuffle(choices)
        answer = choices.index(gold)
        if style == "letters":
            question += "".join(f"\n{letter}. {c}" for letter, c in zip("ABCD", choices))
            choices = list("ABCD")
        rows.append({"id": f"b{i}", "question": question, "choices": choices, "answer": answer})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_tiny_model(out: Path, seed: int = 0, tokenizer=None) -> Path:
    """~8M parameters: Llama, hidden 256, 8 layers, MLP 896, random weights (initialised with `seed`), and
    `tokenizer`, by default a byte-level BPE tokenizer trained on the synthetic corpus (asked for 8192
    tokens, it stops at ~1.6k: the corpus has no more merges). An existing `out` is reused as it is:
    `describe_model` prints what it holds."""
    from forgetscope.train.synthetic import tokenizer_corpus
    from forgetscope.train.tiny import build_tiny_model as build, train_tokenizer

    if (out / "config.json").exists():
        return out
    if tokenizer is None:
        tokenizer = train_tokenizer(tokenizer_corpus(n=4000, seed=0), vocab_size=8192)
    return build(out, tokenizer, arch="llama", hidden=256, layers=8, heads=4, context=512, seed=seed,
                 intermediate=896)


def describe_model(model: str, gguf_file: str | None) -> dict:
    """Parameter count (from the safetensors headers: no weights read), vocabulary and shape."""
    folder = Path(model)
    info: dict = {"gguf_file": gguf_file} if gguf_file else {}
    config = folder / "config.json"
    if config.is_file():
        cfg = json.loads(config.read_text())
        info.update({k: cfg.get(k) for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                                              "intermediate_size")})
    n = 0
    for file in folder.glob("*.safetensors"):
        with open(file, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        n += sum(int(np.prod(t["shape"])) for k, t in header.items() if k != "__metadata__")
    if n:
        info["parameters"] = n
    return info


def run_lm_eval(python: str, model: str, items: Path, work: Path, batch_size: int, model_args: str) -> tuple[dict, float, float]:
    """Per-item results keyed by id, wall seconds, and lm-eval's own evaluation seconds."""
    name = "fs_bench"
    (work / "tasks").mkdir(parents=True, exist_ok=True)
    (work / "tasks" / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=items.resolve()))
    args = f"pretrained={model},dtype=float32" + (f",{model_args}" if model_args else "")
    command = [python, "-m", "lm_eval", "--model", "hf", "--model_args", args, "--device", "cpu",
               "--batch_size", str(batch_size), "--tasks", name, "--include_path", str(work / "tasks"),
               "--log_samples", "--output_path", str(work / "lm_eval")]
    start = time.perf_counter()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"lm_eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    samples = glob.glob(str(work / "lm_eval" / "**" / f"samples_{name}_*.jsonl"), recursive=True)
    results = glob.glob(str(work / "lm_eval" / "**" / "results_*.json"), recursive=True)
    if not samples or not results:
        sys.exit(f"lm_eval wrote no samples/results under {work / 'lm_eval'}")
    eval_seconds = float(json.loads(Path(results[0]).read_text()).get("total_evaluation_time_seconds", "nan"))
    out = {}
    for line in open(samples[0]):
        row = json.loads(line)
        out[str(row["doc"]["id"])] = {"acc": bool(row["acc"]), "acc_norm": bool(row["acc_norm"]),
                                      "ll": [float(r[0]) for r in row["filtered_resps"]]}
    return out, wall, eval_seconds


def run_forgetscope(model: str, items: Path, work: Path, batch_size: int, gguf_file: str | None,
                    run: int = 0) -> tuple[dict, float]:
    """One end-to-end `forgetscope eval` in a fresh results directory (no cached records).

    Its cache directory (file digests, converted GGUF copies) is the benchmark's own, empty at the
    start: run 0 is a cold start, a later run finds what run 0 left there (the GGUF conversion).
    """
    from forgetscope.records.store import load_records

    out_dir = work / f"forgetscope-{run}"
    command = [sys.executable, "-m", "forgetscope.cli", "eval", model, "--task", str(items), "--output", str(out_dir),
               "--batch-size", str(batch_size), "--dtype", "float32", "--device", "cpu"]
    if gguf_file:
        command += ["--gguf-file", gguf_file]
    start = time.perf_counter()
    done = subprocess.run(command, env={**ENV, "FORGETSCOPE_CACHE": str(work / "forgetscope-cache")},
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"forgetscope failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = load_records([out_dir])
    return {row.item_id: {"acc": bool(row.correct), "acc_norm": bool(row.correct_norm),
                          "ll": list(row.loglikelihoods)} for row in records.itertuples()}, wall


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model directory (HF format, or with --gguf-file)")
    source.add_argument("--build-tiny", type=Path, help="build (once) an ~8M-parameter random-init Llama here")
    parser.add_argument("--items", type=Path, help="multiple-choice JSONL (id, question, choices, answer)")
    parser.add_argument("--n-items", type=int, default=500, help="items to generate when --items is not given")
    parser.add_argument("--choices", choices=CHOICE_STYLES, default="phrases",
                        help="kind of generated choices (see write_items): phrases (default), numbers, letters")
    parser.add_argument("--lm-eval-python", default=os.environ.get("FORGETSCOPE_LMEVAL_PYTHON", sys.executable))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model (both tools load it)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="fs-vs-lmeval-"))
    model = args.model or str(build_tiny_model(args.build_tiny))
    items_path = args.items or work / "items.jsonl"
    if not args.items:
        write_items(items_path, args.n_items, style=args.choices)
    n_items = sum(1 for _ in open(items_path))

    model_args = f"gguf_file={args.gguf_file}" if args.gguf_file else ""
    theirs, their_wall, their_eval = run_lm_eval(args.lm_eval_python, model, items_path, work, args.batch_size, model_args)
    ours, our_wall = run_forgetscope(model, items_path, work, args.batch_size, args.gguf_file)
    # GGUF: a second run shows the converted-copy cache (backends/gguf_cache.py); scores must not change
    warm = run_forgetscope(model, items_path, work, args.batch_size, args.gguf_file, run=1) if args.gguf_file else None
    if warm is not None and any(warm[0][i]["ll"] != r["ll"] for i, r in ours.items()):
        sys.exit("forgetscope: the warm run (converted GGUF copy) gave other log-likelihoods than the cold run")

    same_acc = sum(ours[i]["acc"] == r["acc"] for i, r in theirs.items())
    same_norm = sum(ours[i]["acc_norm"] == r["acc_norm"] for i, r in theirs.items())
    max_diff = max(float(np.max(np.abs(np.subtract(ours[i]["ll"], r["ll"])))) for i, r in theirs.items())
    figures = {
        "model": model, **describe_model(model, args.gguf_file), "items": n_items, "choices": None if args.items else args.choices,
        "batch_size": args.batch_size,
        "acc_agreement": same_acc / len(theirs), "acc_norm_agreement": same_norm / len(theirs),
        "max_abs_loglikelihood_diff": max_diff,
        "disagreeing_items": [i for i, r in theirs.items() if (ours[i]["acc"], ours[i]["acc_norm"]) != (r["acc"], r["acc_norm"])][:20],
        "lm_eval_wall_s": round(their_wall, 1), "lm_eval_evaluation_s": round(their_eval, 1),
        "forgetscope_wall_s": round(our_wall, 1),
        "lm_eval_items_per_s": round(n_items / their_wall, 2), "forgetscope_items_per_s": round(n_items / our_wall, 2),
        "speedup_wall": round(their_wall / our_wall, 2),
        **({"forgetscope_warm_wall_s": round(warm[1], 1), "forgetscope_warm_items_per_s": round(n_items / warm[1], 2),
            "speedup_wall_warm": round(their_wall / warm[1], 2)} if warm else {}),
        "acc": float(np.mean([r["acc"] for r in ours.values()])),
    }
    print(json.dumps(figures, indent=2))
    identical = figures["acc_agreement"] == 1.0 and figures["acc_norm_agreement"] == 1.0
    print(f"\nitems/s  lm-eval {figures['lm_eval_items_per_s']}  forgetscope {figures['forgetscope_items_per_s']}"
          f"  ratio {figures['speedup_wall']}x  per-item decisions identical: {identical}")
    if warm:
        print(f"GGUF converted once (second forgetscope run): {figures['forgetscope_warm_items_per_s']} items/s,"
              f" ratio {figures['speedup_wall_warm']}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
