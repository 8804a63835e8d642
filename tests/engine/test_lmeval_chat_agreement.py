"""Chat templates agree with lm-evaluation-harness: same contexts and continuations, same decisions.

lm-eval's own HFLM path (simple_evaluate with apply_chat_template, its loglikelihood
requests) runs in-process on a tiny local model whose tokenizer has a chat template
and adds a BOS (tests/conftest.py chat_llama_dir), over a local YAML task
(dataset_path: json). forgetscope builds the same items twice, through lm-eval's
registry (`lmeval:NAME`) and as its own spec over the same files, and scores them.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytestmark = [pytest.mark.lmeval, pytest.mark.slow]

YAML = """task: chat_quiz
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/test.jsonl
    train: {data}/train.jsonl
test_split: test
fewshot_split: train
fewshot_config:
  sampler: first_n
description: "Riddles."
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
"""
SPEC = "path: test.jsonl\ndescription: Riddles.\nfewshot: {{k: {k}, file: train.jsonl, sampler: first_n}}\n"
POOL = ["red", "a small river", "seven", "the old stone bridge", "blue", "Paris", "a cat", "forty-two"]
CASES = {  # name: (num_fewshot, apply_chat_template, fewshot_as_multiturn, system_instruction)
    "chat-0shot": (0, True, True, None),
    "chat-2shot-multiturn-system": (2, True, True, "Answer with one of the options."),
    "chat-2shot-one-turn": (2, True, False, None),
    "plain-2shot-system": (2, False, False, "Answer with one of the options."),
}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat_quiz")
    rng = random.Random(3)
    for split, n in (("test", 12), ("train", 3)):
        rows = [{"question": f"Which answer belongs to riddle {split} {i}?", "choices": rng.sample(POOL, 3),
                 "answer": rng.randrange(3)} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "chat_quiz.yaml").write_text(YAML.format(data=folder))
    return folder


@pytest.fixture(scope="module")
def lm(chat_llama_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(chat_llama_dir), device="cpu", dtype="float32", batch_size=4)


def _lm_eval(lm, task_dir, k, chat, multiturn, system):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(model=lm, tasks=["chat_quiz"], num_fewshot=k, apply_chat_template=chat,
                          fewshot_as_multiturn=multiturn, system_instruction=system, log_samples=True,
                          bootstrap_iters=0, task_manager=TaskManager(include_path=str(task_dir),
                                                                      include_defaults=False))
    return {str(s["doc_id"]): s for s in out["samples"]["chat_quiz"]}


@pytest.mark.parametrize("case", list(CASES))
def test_same_requests_and_decisions_as_lm_eval(case, lm, task_dir, chat_llama_dir, tmp_path):
    from forgetscope.backends.chat import load_chat_template
    from forgetscope.engine.evaluate import EvalSettings, evaluate
    from forgetscope.tasks import TaskOptions, load_task
    from forgetscope.tasks.chat import PromptStyle

    k, chat, multiturn, system = CASES[case]
    theirs = _lm_eval(lm, task_dir, k, chat, multiturn, system)
    style = PromptStyle(chat=load_chat_template(str(chat_llama_dir)) if chat else None, system_instruction=system,
                        fewshot_as_multiturn=multiturn and chat)
    spec = task_dir / f"spec_{k}.yaml"
    spec.write_text(SPEC.format(k=k))
    registry = load_task("lmeval:chat_quiz", options=TaskOptions(num_fewshot=k, include_path=(str(task_dir),),
                                                                  prompt=style))
    native = load_task(str(spec), options=TaskOptions(prompt=style))
    assert [i.item_id for i in registry.items] == [str(j) for j in range(12)]
    for ours in (registry, native):
        for index, item in enumerate(ours.items):
            requests = theirs[str(index)]["arguments"]
            assert item.requests() == [tuple(r) for r in requests], (case, ours.name, index)
    if chat:  # the prompt is a chat; the choice follows the generation prompt with nothing in between
        assert registry.items[0].context.startswith("<|bos|>") and registry.items[0].context.endswith("<|assistant|>\n")
        assert registry.items[0].continuations == registry.items[0].choices
    records = evaluate(str(chat_llama_dir), [registry], tmp_path / "res", EvalSettings(batch_size=4))
    for row in records.itertuples():
        sample = theirs[row.item_id]
        lls = [float(r[0][0]) for r in sample["resps"]]
        assert np.max(np.abs(np.subtract(row.loglikelihoods, lls))) < 1e-4
        assert bool(row.correct) == bool(sample["acc"]) and bool(row.correct_norm) == bool(sample["acc_norm"])
