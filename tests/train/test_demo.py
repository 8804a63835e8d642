"""The demo builds two real checkpoints between which items are forgotten and learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from forgetscope.demo import DEMO_TASKS, DemoConfig, build_demo_checkpoints, demo_tasks  # noqa: E402


def _mc_correct(model, tokenizer, task) -> dict[str, bool]:
    """Per item: is the highest summed log-likelihood choice gold? (a plain reference scorer)"""
    out = {}
    with torch.no_grad():
        for item in task.items:
            scores = []
            for context, continuation in item.requests():
                ctx = tokenizer(context, add_special_tokens=False).input_ids
                cont = tokenizer(continuation, add_special_tokens=False).input_ids
                logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0], -1)
                positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
                scores.append(float(logp[positions, torch.tensor(cont)].sum()))
            out[item.item_id] = scores.index(max(scores)) in item.gold
    return out


def test_demo_tasks_without_building() -> None:
    tasks = demo_tasks(DemoConfig.quick())
    assert [t.name for t in tasks] == list(DEMO_TASKS)
    assert all(len(t) == DemoConfig.quick().n_items for t in tasks)
    assert {t.kind for t in tasks} == {"multiple_choice", "generate"}


@pytest.mark.slow
def test_quick_demo_builds_two_checkpoints_with_forgetting_and_learning(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    art = build_demo_checkpoints(tmp_path / "demo", seed=0, quick=True, log=None)
    assert [t.name for t in art.tasks] == list(DEMO_TASKS)
    manifest = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert manifest["quick"] is True and set(manifest["tasks"]) == set(DEMO_TASKS)

    accuracy: dict[str, dict[str, dict[str, bool]]] = {}
    for tag, path in (("A", art.pretrained_dir), ("B", art.finetuned_dir)):
        assert (path / "model.safetensors").exists() and (path / "train_log.json").exists()
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        accuracy[tag] = {t.name: _mc_correct(model, tokenizer, t) for t in art.tasks if t.kind == "multiple_choice"}

    def mean(tag: str, task: str) -> float:
        values = accuracy[tag][task].values()
        return sum(values) / len(values)

    def transitions(task: str, before: bool, after: bool) -> int:
        a, b = accuracy["A"][task], accuracy["B"][task]
        return sum(1 for k in a if a[k] == before and b[k] == after)

    assert mean("A", "synth_facts_mc") >= 0.6  # chance is 0.25
    assert transitions("synth_facts_mc", True, False) >= 5  # forgotten
    assert transitions("synth_reverse_mc", False, True) >= 5  # learned
    assert mean("B", "synth_reverse_mc") > mean("A", "synth_reverse_mc")
