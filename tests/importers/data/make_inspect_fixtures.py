"""Regenerate the Inspect AI eval logs under tests/importers/data/inspect/ (offline, no model).

The logs are real: Inspect's own `eval()` runs two small tasks with its
built-in mock model (`mockllm/model`), whose answers are given here, and
writes its logs as it always does. Two "checkpoints" answer differently:

- quiz: 8 four-choice questions, solver `multiple_choice()`, scorer `choice()`
  (per-sample scores C/I); model_a writes `.eval`, model_b `.json`
  (`log_format="json"`), so both log formats are covered.
- arith: 6 generative questions, solver `generate()`, scorer `match()`.
- epochs/: quiz again for model_a with `epochs=2` (one row per epoch).

    .venv/bin/python tests/importers/data/make_inspect_fixtures.py

The mock's outputs carry token usage, so Inspect never counts tokens (which
would need tiktoken's downloaded encoding). Samples run one at a time
(`max_samples=1`), so output k goes to the k-th sample and a rerun gives the
same scores (the logs' ids and timestamps differ).
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "inspect"
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]

# the answer each checkpoint gives, per sample (gold is "ABCD"[i % 4])
QUIZ_ANSWERS = {"model_a": "ABCDABDD", "model_b": "ABCCBBCD"}
ARITH_ANSWERS = {"model_a": ["3", "5", "8", "9", "11", "14"], "model_b": ["3", "6", "7", "9", "12", "13"]}


def quiz_samples():
    from inspect_ai.dataset import Sample

    return [Sample(id=f"q{i}", input=f"Which colour belongs to riddle {i}?",
                   choices=[COLOURS[(i + k) % 8] for k in range(4)], target="ABCD"[i % 4]) for i in range(8)]


def arith_samples():
    from inspect_ai.dataset import Sample

    return [Sample(id=f"a{i}", input=f"What is {i + 1} plus {i + 2}? Reply with the number only.",
                   target=str(2 * i + 3)) for i in range(6)]


def mock(texts: list[str]):
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    outputs = []
    for text in texts:
        output = ModelOutput.from_content(model="mockllm/model", content=text)
        output.usage = ModelUsage(input_tokens=20, output_tokens=3, total_tokens=23)
        outputs.append(output)
    return get_model("mockllm/model", custom_outputs=outputs)


def run(task, texts: list[str], out: Path, log_format: str = "eval") -> None:
    from inspect_ai import eval as inspect_eval

    logs = inspect_eval(task, model=mock(texts), log_dir=str(out), log_format=log_format, display="none",
                        max_samples=1)
    assert all(log.status == "success" for log in logs), [log.status for log in logs]
    print("  ->", Path(logs[0].location).relative_to(HERE))


def main() -> None:
    from inspect_ai import Task
    from inspect_ai.scorer import choice, match
    from inspect_ai.solver import generate, multiple_choice

    shutil.rmtree(OUT, ignore_errors=True)
    for model, log_format in (("model_a", "eval"), ("model_b", "json")):
        quiz = Task(dataset=quiz_samples(), solver=multiple_choice(), scorer=choice(), name="quiz")
        run(quiz, [f"ANSWER: {a}" for a in QUIZ_ANSWERS[model]], OUT / model, log_format)
        arith = Task(dataset=arith_samples(), solver=generate(), scorer=match(), name="arith")
        run(arith, ARITH_ANSWERS[model], OUT / model, "eval")
    quiz = Task(dataset=quiz_samples(), solver=multiple_choice(), scorer=choice(), name="quiz", epochs=2)
    run(quiz, [f"ANSWER: {a}" for a in QUIZ_ANSWERS["model_a"] + QUIZ_ANSWERS["model_b"]], OUT / "epochs")


if __name__ == "__main__":
    main()
