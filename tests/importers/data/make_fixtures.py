"""Regenerate the real lm-evaluation-harness and lighteval fixtures under tests/importers/data/.

The fixtures are real per-sample logs: lm-evaluation-harness 0.4.13
`--log_samples` output (lmeval/) and lighteval 0.13.0 `--save-details` output
(lighteval/), each on two tiny random-init Llamas. The models are not
committed: they are the ones tests/conftest.py builds (`tiny_llama_dir`,
seed 0, and `tiny_llama_dir_b`, seed 1, over the same 512-token BPE
tokenizer), and this script builds them the same way, so a test can evaluate
the very same models with forgetscope and check that both routes give the
same comparison.

    .venv/bin/python tests/importers/data/make_fixtures.py \
        --lm-eval-python /work/venvs/lmeval/bin/python --lighteval-python /work/venvs/lighteval/bin/python

The two tools live in their own virtual environments, never in forgetscope's:

    python3 -m venv /work/venvs/lmeval && /work/venvs/lmeval/bin/pip install -c .ci/constraints.txt lm_eval==0.4.13
    python3 -m venv /work/venvs/lighteval
    /work/venvs/lighteval/bin/pip install -c .ci/constraints.txt lighteval==0.13.0 "xxhash<4"

(lighteval 0.13 hashes str objects with xxhash, which xxhash 4 refuses.)

What it runs, per model (each command is printed as it runs):

    LM_EVAL_PYTHON -m lm_eval --model hf --model_args pretrained=MODEL,dtype=float32 --device cpu
        --batch_size 8 --seed 0 --tasks quiz,arith_gen --include_path TASKS --log_samples
        --output_path OUT
    LIGHTEVAL_PYTHON run_lighteval_offline.py accelerate "model_name=MODEL,dtype=float32,batch_size=8"
        "quiz|0,arith_gen|0" --custom-tasks lighteval_tasks.py --output-dir OUT --save-details

For lm-eval, `quiz` is a group of two four-choice subtasks (quiz_even,
quiz_odd: 16 items each, from items/quiz.jsonl split by category) and
`arith_gen` a generate_until task (8 items, items/arith_gen.jsonl); the task
YAMLs are the templates below, written with absolute data paths into a
temporary directory. For lighteval, `quiz` is the same 32 items as one task
and `arith_gen` the same 8 (lighteval_tasks.py). lighteval names its files
`details_quiz|0_<date>.parquet`; they are copied with "|" replaced by "@" so
that the repository checks out on every file system (the importer takes the
task name from the file's rows, not its name).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ITEMS = HERE / "items"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

MC_YAML = """task: {name}
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

GROUP_YAML = """group: quiz
task:
  - quiz_even
  - quiz_odd
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
"""

GEN_YAML = """task: arith_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
"""

CHOICE_POOL = ["red", "a small river", "seven", "the old stone bridge", "blue", "Paris", "a cat", "forty-two"]


def quiz_items() -> list[dict]:
    """32 four-choice items; choices of different lengths in a seeded random order (so acc and acc_norm differ)."""
    rng = random.Random(0)
    rows = []
    for i in range(32):
        choices = rng.sample(CHOICE_POOL, 4)
        rows.append({"id": f"q{i}", "question": f"Which answer belongs to riddle number {i}?",
                     "choices": choices, "answer": rng.randrange(4),
                     "category": "quiz_even" if i % 2 == 0 else "quiz_odd"})
    return rows


def gen_items() -> list[dict]:
    return [{"id": f"g{i}", "prompt": f"Question: What is {i} plus {i + 1}?\nAnswer:", "answer": str(2 * i + 1)}
            for i in range(8)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_models(root: Path) -> dict[str, Path]:
    """The two checkpoints of tests/conftest.py: same tokenizer, seeds 0 and 1."""
    from forgetscope.train.synthetic import tokenizer_corpus
    from forgetscope.train.tiny import build_tiny_model, train_tokenizer

    tokenizer = train_tokenizer(tokenizer_corpus(n=1500, seed=0), vocab_size=512)
    return {name: build_tiny_model(root / name, tokenizer, arch="llama", seed=seed)
            for name, seed in (("model_a", 0), ("model_b", 1))}


def run_lm_eval(python: str, models: dict[str, Path], work: Path, quiz: list[dict]) -> None:
    tasks = work / "lmeval_tasks"
    tasks.mkdir(parents=True)
    for category in ("quiz_even", "quiz_odd"):
        data = work / f"{category}.jsonl"
        write_jsonl(data, [r for r in quiz if r["category"] == category])
        (tasks / f"{category}.yaml").write_text(MC_YAML.format(name=category, data=data))
    (tasks / "quiz.yaml").write_text(GROUP_YAML)
    shutil.copy(ITEMS / "arith_gen.jsonl", work / "arith_gen.jsonl")
    (tasks / "arith_gen.yaml").write_text(GEN_YAML.format(data=work / "arith_gen.jsonl"))
    for name, model in models.items():
        output = work / "lmeval_out" / name
        run([python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
             "--device", "cpu", "--batch_size", "8", "--seed", "0", "--tasks", "quiz,arith_gen",
             "--include_path", str(tasks), "--log_samples", "--output_path", str(output)])
        collect(output.rglob("*.json*"), HERE / "lmeval" / name)


def run_lighteval(python: str, models: dict[str, Path], work: Path, quiz: list[dict]) -> None:
    data = work / "lighteval_data"
    write_jsonl(data / "quiz" / "test.jsonl", quiz)
    write_jsonl(data / "arith_gen" / "test.jsonl", gen_items())
    env = {**ENV, "FS_LIGHTEVAL_DATA": str(data)}
    for name, model in models.items():
        output = work / "lighteval_out" / name
        run([python, str(HERE / "run_lighteval_offline.py"), "accelerate",
             f"model_name={model},dtype=float32,batch_size=8", "quiz|0,arith_gen|0",
             "--custom-tasks", str(HERE / "lighteval_tasks.py"), "--output-dir", str(output), "--save-details"],
            env=env)
        collect(output.rglob("*.json"), HERE / "lighteval" / name)
        collect(output.rglob("details_*.parquet"), HERE / "lighteval" / name)


def run(command: list[str], env: dict | None = None) -> None:
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, env=env or ENV, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")


def collect(paths, target: Path) -> None:
    """Copy files into `target`, with '|' in their names made '@'."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(paths):
        destination = target / path.name.replace("|", "@")
        shutil.copy(path, destination)
        print("  ->", destination.relative_to(HERE))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-eval-python", help="a Python with lm-evaluation-harness installed")
    parser.add_argument("--lighteval-python", help="a Python with lighteval installed")
    args = parser.parse_args(argv)

    quiz = quiz_items()
    write_jsonl(ITEMS / "quiz.jsonl", quiz)
    write_jsonl(ITEMS / "arith_gen.jsonl", gen_items())
    work = Path(tempfile.mkdtemp(prefix="forgetscope-fixtures-"))
    models = build_models(work / "models")
    if args.lm_eval_python:
        shutil.rmtree(HERE / "lmeval", ignore_errors=True)
        run_lm_eval(args.lm_eval_python, models, work, quiz)
    if args.lighteval_python:
        shutil.rmtree(HERE / "lighteval", ignore_errors=True)
        run_lighteval(args.lighteval_python, models, work, quiz)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
