"""lm-evaluation-harness samples → records, on real --log_samples output (lm-eval 0.4.13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgetscope.importers import LogFormatError, read_lmeval

from .conftest import LMEVAL, read_samples, samples_file


def test_fixture_imports_with_groups_as_categories():
    run = read_lmeval(LMEVAL / "model_a", checkpoint="A")
    records = run.records
    assert run.backend == "lm-eval" and set(records.checkpoint) == {"A"}
    assert len(records) == 32 + 8
    quiz = records[records.task == "quiz"]
    # quiz is an lm-eval group: its subtasks become categories, doc ids stay unique per subtask
    assert sorted(quiz.category.unique()) == ["quiz_even", "quiz_odd"]
    assert "quiz_even/0" in set(quiz.item_id) and "quiz_odd/15" in set(quiz.item_id)
    # the same accuracies lm-eval reported in its results_*.json
    results = json.loads(next((LMEVAL / "model_a").glob("results_*.json")).read_text())["results"]
    for category in ("quiz_even", "quiz_odd"):
        rows = quiz[quiz.category == category]
        assert rows.correct.mean() == pytest.approx(results[category]["acc,none"])
        assert rows.correct_norm.mean() == pytest.approx(results[category]["acc_norm,none"])
    assert (quiz.n_choices == 4).all()


def test_multiple_choice_row_is_rebuilt_from_the_log():
    sample = read_samples(samples_file("model_a", "quiz_even"))[0]
    row = read_lmeval(samples_file("model_a", "quiz_even"), checkpoint="A").records.iloc[0]
    lls = [float(r[0]) for r in sample["filtered_resps"]]
    assert list(row.loglikelihoods) == lls  # strings → floats, exactly
    assert list(row.choices) == sample["doc"]["choices"]  # continuation minus the " " target delimiter
    gold = sample["doc"]["answer"]
    assert row.gold == str(gold) and row.prediction == int(np.argmax(lls))
    assert row.correct == (int(np.argmax(lls)) == gold) == bool(sample["acc"])
    by_chars = np.array(lls) / np.array([len(c) for c in sample["doc"]["choices"]])
    assert row.correct_norm == (int(np.argmax(by_chars)) == gold) == bool(sample["acc_norm"])
    assert row.prompt == sample["arguments"]["gen_args_0"]["arg_0"]
    # one file of a group: the run's results_*.json still says which group it belongs to
    assert (row.task, row.category, row.item_id) == ("quiz", "quiz_even", "quiz_even/0")
    assert list(row.is_greedy) == [r[1] == "True" for r in sample["filtered_resps"]]


def test_generative_rows_keep_output_and_exact_match():
    records = read_lmeval(LMEVAL / "model_b", checkpoint="B").records
    gen = records[records.task == "arith_gen"].set_index("item_id")
    sample = read_samples(samples_file("model_b", "arith_gen"))[3]
    row = gen.loc["3"]
    assert row.n_choices == 0 and row.output == sample["resps"][0][0] and row.extracted == sample["filtered_resps"][0]
    assert json.loads(row.gold) == [sample["target"]] == ["7"]
    assert bool(row.correct) == bool(sample["exact_match"])


def test_same_items_pair_across_checkpoints_and_changed_prompts_do_not():
    a = read_lmeval(LMEVAL / "model_a", checkpoint="A").records.set_index(["task", "item_id"])
    b = read_lmeval(LMEVAL / "model_b", checkpoint="B").records.set_index(["task", "item_id"])
    assert (a.item_hash == b.item_hash.reindex(a.index)).all()
    assert a.item_hash.nunique() == len(a)


def test_edited_prompt_changes_the_item_hash(lmeval_copy):
    path = next(lmeval_copy.glob("samples_quiz_even_*.jsonl"))
    samples = read_samples(path)
    samples[2]["prompt_hash"] = "0" * 64
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    before = read_lmeval(samples_file("model_a", "quiz_even")).records.set_index("item_id").item_hash
    after = read_lmeval(path).records.set_index("item_id").item_hash.reindex(before.index)
    assert (before != after).tolist() == [i == 2 for i in range(16)]


def _damage(directory, task: str, line: int, change) -> str:
    path = next(directory.glob(f"samples_{task}_*.jsonl"))
    lines = path.read_text().splitlines()
    lines[line - 1] = change(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _edit(field, value):
    def change(line: str) -> str:
        sample = json.loads(line)
        sample[field] = value
        return json.dumps(sample)
    return change


@pytest.mark.parametrize("task,line,change,fragments", [
    ("quiz_odd", 5, lambda line: line[:40], ["quiz_odd", ":5:", "not valid JSON"]),
    ("quiz_even", 3, _edit("acc", None), []),  # a missing metric is recomputed, not an error
    ("quiz_even", 7, lambda line: json.dumps({**json.loads(line), "acc": 1 - json.loads(line)["acc"]}),
     [":7:", "recomputed acc", "differ"]),
    ("quiz_even", 2, _edit("target", "purple"), [":2:", "'purple'", "neither a choice index nor a choice text"]),
    ("arith_gen", 4, lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != "exact_match"}),
     [":4:", "--metric"]),
    ("quiz_odd", 1, lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != "arguments"}),
     [":1:", "arguments", "--log_samples"]),
    ("quiz_odd", 3, lambda line: json.dumps({**json.loads(line), "arguments": {
        f"gen_args_{i}": {"arg_0": f"The {i}th context", "arg_1": " same"} for i in range(4)}}),
     [":3:", "multiple-input task", "winogrande"]),
    ("quiz_odd", 6, lambda line: json.dumps({**json.loads(line), "target": "word",
                                             "arguments": {"gen_args_0": {"arg_0": "A context", "arg_1": " word"}},
                                             "filtered_resps": [["-1.5", "True"]], "resps": [[["-1.5", "True"]]]}),
     [":6:", "lambada"]),
])
def test_malformed_lines_name_file_and_line(lmeval_copy, task, line, change, fragments):
    path = _damage(lmeval_copy, task, line, change)
    if not fragments:
        read_lmeval(lmeval_copy)
        return
    with pytest.raises(LogFormatError) as error:
        read_lmeval(lmeval_copy)
    assert path in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_unknown_file_names_and_mixed_runs_are_errors(lmeval_copy, tmp_path):
    stray = lmeval_copy / "samples_quiz_even.jsonl"
    stray.write_text("{}\n")
    with pytest.raises(LogFormatError, match="samples_<task>_<timestamp>"):
        read_lmeval(lmeval_copy)
    stray.unlink()
    second = next(lmeval_copy.glob("samples_quiz_odd_*.jsonl"))
    (lmeval_copy / "samples_quiz_odd_2030-01-01T00-00-00.000001.jsonl").write_text(second.read_text())
    with pytest.raises(LogFormatError, match="two runs are mixed"):
        read_lmeval(lmeval_copy)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(LogFormatError, match="no samples_"):
        read_lmeval(empty)


def test_several_filters_need_a_choice(lmeval_copy):
    path = next(lmeval_copy.glob("samples_arith_gen_*.jsonl"))
    samples = read_samples(path)
    strict = [{**s, "filter": "strict-match", "exact_match": 1.0} for s in samples]
    path.write_text("".join(json.dumps(s) + "\n" for s in samples + strict))
    with pytest.raises(LogFormatError, match="several filters.*--filter"):
        read_lmeval(path)
    records = read_lmeval(path, filter_name="strict-match").records
    assert len(records) == 8 and records.correct.all()
    assert not read_lmeval(path, filter_name="none").records.correct.any()


def test_non_finite_log_likelihoods_are_refused(lmeval_copy):
    """All-NaN scores look like "choice 0" to argmax: with gold 0 and acc 1 they would import as right."""
    def broken(line: str) -> str:
        sample = json.loads(line)
        sample["filtered_resps"] = [["nan", "False"] for _ in sample["filtered_resps"]]
        return json.dumps({**sample, "target": 0, "acc": 1.0, "acc_norm": 1.0})
    path = _damage(lmeval_copy, "quiz_even", 4, broken)
    with pytest.raises(LogFormatError, match=r":4: non-finite log-likelihood\(s\) \[nan, nan, nan, nan\]") as error:
        read_lmeval(lmeval_copy)
    assert path in str(error.value)
