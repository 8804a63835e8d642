"""A broken model (NaN weights) is an error, never a result: nothing of it is stored or read as an answer.

A NaN log-likelihood compares false with everything, so numpy's argmax falls on choice 0 and
the item counts as right wherever gold is 0. These tests pin that every way in refuses it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgetscope.backends.base import Backend, LoglikelihoodResult, NonFiniteScoreError
from forgetscope.backends.hf import HFBackend
from forgetscope.cli import app
from forgetscope.engine.evaluate import EvalSettings, evaluate
from forgetscope.records.store import RunDir, StoreError, load_records

from ..helpers import gen_task, mc_task

runner = CliRunner()


def gold_zero_quiz(path: Path, n: int = 12) -> Path:
    """Items whose gold is always choice 0: where a NaN model looks perfect."""
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} plus one?",
                                        "choices": [str(i + 1), str(i + 2), str(i + 3)], "answer": 0}) + "\n"
                            for i in range(n)))
    return path


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet")) if root.exists() else []


def test_eval_of_a_nan_model_is_exit_2_naming_checkpoint_task_and_items(tmp_path, nan_llama_dir):
    quiz = gold_zero_quiz(tmp_path / "quiz.jsonl")
    result = runner.invoke(app, ["eval", str(nan_llama_dir), "--task", str(quiz), "--output", str(tmp_path / "out"),
                                 "--name", "broken"])
    assert result.exit_code == 2, result.output
    assert "error: checkpoint 'broken', task 'quiz': non-finite log-likelihoods" in result.output
    assert "for 12 of the 12 items" in result.output and "Traceback" not in result.output
    assert parquet_files(tmp_path / "out") == []  # nothing a later run could reuse as cache


def test_the_backend_itself_refuses_nan_scores(nan_llama_dir):
    from forgetscope.backends.base import Tokenization

    backend = HFBackend.from_pretrained(str(nan_llama_dir))
    tokens = Tokenization(backend.tokenizer)
    from forgetscope.backends.base import LoglikelihoodRequest

    requests = [LoglikelihoodRequest(*tokens.encode_pair("Question: 1 + 1?\nAnswer:", f" {c}")) for c in "234"]
    with pytest.raises(NonFiniteScoreError) as error:
        backend.loglikelihood(requests)
    assert error.value.requests == (0, 1, 2) and "3 of 3 log-likelihood requests" in str(error.value)


def test_generation_with_nan_logits_is_refused(tmp_path, nan_llama_dir):
    with pytest.raises(NonFiniteScoreError, match=r"task 'gen': non-finite logits .* for 6 of the 6 items"):
        evaluate(str(nan_llama_dir), [gen_task(6)], tmp_path, EvalSettings(batch_size=4))
    assert parquet_files(tmp_path) == []


class HalfBroken(Backend):
    """NaN for every request after one of the `poisoned` contexts, -1 otherwise; no check of its own."""

    name = "half"

    def __init__(self, tokenizer, poisoned: set) -> None:
        self.tokenizer, self.settings, self.poisoned = tokenizer, {}, poisoned

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(math.nan if r.context_ids in self.poisoned else -1.0, False, 1)
                for r in requests]

    def generate(self, requests):
        return ["" for _ in requests]


def test_items_are_counted_and_earlier_finite_chunks_survive(tmp_path, tiny_llama_dir):
    """A backend without a check of its own: evaluate checks; the count is of items, not of requests."""
    from transformers import AutoTokenizer

    from forgetscope.backends.base import Tokenization

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    task = mc_task(12)
    tokens = Tokenization(tokenizer)
    poisoned = {tokens.encode_pair(task.items[i].context, task.items[i].choices[0])[0] for i in (9, 10)}
    with pytest.raises(NonFiniteScoreError, match=r"for 2 of the 4 items being scored \(the task has 12\)"):
        evaluate(str(tiny_llama_dir), [task], tmp_path, EvalSettings(chunk_size=4),
                 backend=HalfBroken(tokenizer, poisoned))
    parts = parquet_files(tmp_path)
    assert len(parts) == 2  # the two finite chunks are kept (finished work); nothing of the third
    rows = pa.concat_tables([pq.read_table(p) for p in parts])
    assert sorted(rows.column("item_id").to_pylist()) == sorted(i.item_id for i in task.items[:8])


def test_nan_rows_of_an_older_version_are_rescored_not_reused(tmp_path, tiny_llama_dir):
    task = mc_task(8)
    first = evaluate(str(tiny_llama_dir), [task], tmp_path).set_index("item_id")
    final = next(tmp_path.rglob("records.parquet"))
    table = pq.read_table(final)
    ll = table.column("loglikelihoods").to_pylist()
    ll[2] = [math.nan] * len(ll[2])  # as the unchecked code stored a broken model's rows
    pq.write_table(table.set_column(table.schema.get_field_index("loglikelihoods"), "loglikelihoods",
                                    pa.array(ll, table.schema.field("loglikelihoods").type)), final)
    again = evaluate(str(tiny_llama_dir), [task], tmp_path).set_index("item_id")
    assert np.isfinite(np.concatenate(again["loglikelihoods"].to_numpy())).all()
    item = task.items[2].item_id
    assert list(again.loc[item, "loglikelihoods"]) == pytest.approx(list(first.loc[item, "loglikelihoods"]))
    assert RunDir(final.parent).read().num_rows == 8


def test_stored_nan_log_likelihoods_are_refused_by_analysis(tmp_path, tiny_llama_dir):
    records = evaluate(str(tiny_llama_dir), [mc_task(8)], tmp_path)
    from forgetscope.records.store import save_records

    good = save_records(records, tmp_path / "good.parquet")
    records.at[5, "loglikelihoods"] = [-1.0, math.inf] + [-2.0] * (len(records.at[5, "loglikelihoods"]) - 2)
    broken = save_records(records.assign(checkpoint="broken"), tmp_path / "broken.parquet")
    # a narrow read (the columns the figures need) is checked as well as a whole one
    for columns in (None, ["checkpoint", "task", "item_id", "correct"]):
        with pytest.raises(StoreError, match=r"broken.parquet: 1 row\(s\) have non-finite log-likelihoods .* "
                                             r"item 'mc-5'"):
            load_records([broken], columns=columns)
    assert len(load_records([good])) == 8
    result = runner.invoke(app, ["compare", str(good), str(broken)])
    assert result.exit_code == 2 and "non-finite log-likelihoods" in result.output, result.output


def test_differently_typed_columns_are_conformed_and_nan_correctness_refused(tmp_path):
    from forgetscope.records.schema import to_table

    rows = to_table([{"checkpoint": "a", "task": "quiz", "item_id": f"q{i}", "item_hash": f"h{i}", "n_choices": 4,
                      "correct": i % 2 == 0} for i in range(6)])
    plain = tmp_path / "plain.parquet"
    pq.write_table(rows, plain)
    wide = rows.set_column(rows.schema.get_field_index("item_id"), "item_id",
                           rows.column("item_id").cast(pa.large_string())).drop_columns(["category"])
    pq.write_table(wide.set_column(wide.schema.get_field_index("task"), "task", pa.array(["other"] * 6)),
                   tmp_path / "wide.parquet")
    narrow = load_records([tmp_path], columns=["checkpoint", "task", "item_id", "category", "correct"])
    assert len(narrow) == 12 and set(narrow["category"].astype(str)) == {""}
    floats = rows.set_column(rows.schema.get_field_index("correct"), "correct",
                             pa.array([1.0, 0.0, math.nan, 1.0, 0.0, 1.0]))
    pq.write_table(floats, tmp_path / "floats.parquet")
    for columns in (None, ["checkpoint", "task", "item_id", "correct"]):
        with pytest.raises(StoreError, match=r"floats.parquet: column 'correct' holds 1 value\(s\) that are "
                                             r"neither 0 nor 1 \(first: nan at row 2\)"):
            load_records([tmp_path / "floats.parquet"], columns=columns)


def test_a_sweep_whose_checkpoint_scores_nan_is_exit_2(tmp_path, monkeypatch):
    """A diverged training run's checkpoint stops the sweep with the one-line error, not a traceback."""
    from types import SimpleNamespace

    def evaluate_diverged(*args, **kwargs):
        raise NonFiniteScoreError("checkpoint 'runs/a/posttrain/step-8', task 'quiz': non-finite log-likelihoods")
    monkeypatch.setattr("forgetscope.train.sweep.load_sweep_config", lambda path: SimpleNamespace(name="s"))
    monkeypatch.setattr("forgetscope.train.sweep.run_sweep", evaluate_diverged)
    result = runner.invoke(app, ["sweep", str(tmp_path / "sweep.yaml"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: checkpoint 'runs/a/posttrain/step-8'" in result.output, result.output
