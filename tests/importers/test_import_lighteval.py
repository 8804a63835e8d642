"""lighteval details → records, on real --save-details output (lighteval 0.13.0)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgetscope.importers import LogFormatError, read_lighteval

from .conftest import LIGHTEVAL


def _details(model: str, task: str):
    return next((LIGHTEVAL / model).glob(f"details_{task}@0_*.parquet"))


def test_fixture_imports_with_lightevals_own_accuracies():
    run = read_lighteval(LIGHTEVAL / "model_a", checkpoint="A")
    records = run.records
    assert run.backend == "lighteval" and len(records) == 32 + 8
    assert sorted(records.task.unique()) == ["arith_gen", "quiz"]  # "quiz|0" without its few-shot count
    results = json.loads(next((LIGHTEVAL / "model_a").glob("results_*.json")).read_text())["results"]["quiz|0"]
    quiz = records[records.task == "quiz"]
    assert quiz.correct.mean() == pytest.approx(results["acc"]) == 0.25
    assert quiz.correct_norm.mean() == pytest.approx(results["acc_norm"])


def test_multiple_choice_row_matches_the_parquet_row():
    sample = pq.read_table(_details("model_b", "quiz")).to_pylist()[5]
    doc, response = sample["doc"], sample["model_response"]
    row = read_lighteval(_details("model_b", "quiz"), checkpoint="B").records.set_index("item_id").loc[doc["id"]]
    ll = np.array(response["logprobs"])
    assert list(row.loglikelihoods) == list(ll) and list(row.choices) == doc["choices"]
    assert row.gold == str(doc["gold_index"]) and row.prediction == int(np.argmax(ll))
    assert row.correct == bool(sample["metric"]["acc"]) == (int(np.argmax(ll)) == doc["gold_index"])
    # lighteval's LogProbCharNorm divides by len(choice) including its leading space
    chars = [len(c) for c in doc["choices"]]
    assert list(row.choice_chars) == chars
    assert row.correct_norm == bool(sample["metric"]["acc_norm"]) == (int(np.argmax(ll / chars)) == doc["gold_index"])
    tokens = [sum(t >= 0 for t in ids) for ids in response["output_tokens"]]  # -1 is padding
    assert list(row.choice_tokens) == tokens
    assert row.correct_per_token == (int(np.argmax(ll / np.array(tokens))) == doc["gold_index"])
    assert row.prompt == doc["query"]


def test_generative_rows_keep_the_text_and_em():
    records = read_lighteval(LIGHTEVAL / "model_a", checkpoint="A").records
    row = records[(records.task == "arith_gen") & (records.item_id == "3")].iloc[0]
    assert row.n_choices == 0 and json.loads(row.gold) == ["7"]
    assert row.output == "::::::::" and not row.correct


def test_same_items_pair_across_checkpoints():
    a = read_lighteval(LIGHTEVAL / "model_a").records.set_index(["task", "item_id"]).item_hash
    b = read_lighteval(LIGHTEVAL / "model_b").records.set_index(["task", "item_id"]).item_hash
    assert (a == b.reindex(a.index)).all() and a.nunique() == len(a)


def _rewrite(path, change):
    rows = pq.read_table(path).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_an_edited_metric_names_the_row(tmp_path):
    path = tmp_path / "details_quiz|0_x.parquet"
    shutil.copy(_details("model_a", "quiz"), path)

    def flip(rows):
        rows[7]["metric"]["acc"] = 1 - rows[7]["metric"]["acc"]
    _rewrite(path, flip)
    with pytest.raises(LogFormatError, match=r"row 7: recomputed acc=\d from the logprobs differs"):
        read_lighteval(path)


def test_old_flat_layout_and_unreadable_files_are_clear_errors(tmp_path):
    flat = tmp_path / "details_old.parquet"
    pq.write_table(pa.table({"example": ["q"], "predictions": [[[-1.0, 0.0]]], "metrics": ['{"acc": 1}']}), flat)
    with pytest.raises(LogFormatError, match="older lighteval's flat layout") as error:
        read_lighteval(flat)
    assert str(flat) in str(error.value)
    junk = tmp_path / "details_junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(LogFormatError, match="not a readable Parquet file"):
        read_lighteval(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LogFormatError, match="no details_"):
        read_lighteval(empty)
    with pytest.raises(LogFormatError, match="no such file"):
        read_lighteval(tmp_path / "nowhere")


def test_non_finite_logprobs_are_refused(tmp_path):
    """All-NaN logprobs look like "choice 0" to argmax: with gold 0 and acc 1 they would import as right."""
    path = tmp_path / "details_quiz|0_x.parquet"
    shutil.copy(_details("model_a", "quiz"), path)

    def broken(rows):
        rows[3]["model_response"]["logprobs"] = [float("nan")] * len(rows[3]["model_response"]["logprobs"])
        rows[3]["doc"]["gold_index"] = 0
        rows[3]["metric"].update(acc=1.0, acc_norm=1.0)
    _rewrite(path, broken)
    with pytest.raises(LogFormatError, match=r"row 3: non-finite log-likelihood\(s\) \[nan, nan"):
        read_lighteval(path)
