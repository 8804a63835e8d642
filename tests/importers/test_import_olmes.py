"""OLMES prediction files → records (fixtures: data/make_olmes_fixtures.py, in oe_eval's output format,
with the real log-likelihoods of the committed lm-eval run on the same two tiny models)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.importers import LogFormatError, read_lmeval, read_olmes

from .conftest import DATA, LMEVAL

OLMES = DATA / "olmes"
runner = CliRunner()


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def olmes_copy(tmp_path):
    target = tmp_path / "olmes_a"
    shutil.copytree(OLMES / "model_a", target)
    return target


def test_import_reproduces_olmes_task_metrics():
    run = read_olmes(OLMES / "model_a")
    records = run.records
    assert run.backend == "olmes" and run.checkpoint == "tiny-llama-a" and len(records) == 16 + 16 + 8
    for task in ("quiz_even", "quiz_odd"):
        metrics = json.loads(next(OLMES.glob(f"model_a/task-*-{task}-metrics.json")).read_text())["metrics"]
        rows = records[records.task == task]
        assert rows.correct.mean() == pytest.approx(metrics["acc_raw"])
        assert rows.correct_norm.mean() == pytest.approx(metrics["acc_per_char"])
        assert rows.correct_per_token.mean() == pytest.approx(metrics["acc_per_token"])
    assert run.notes == []


def test_a_row_by_hand():
    line = _lines(OLMES / "model_a" / "task-000-quiz_even-predictions.jsonl")[0]
    row = read_olmes(OLMES / "model_a").records.set_index(["task", "item_id"]).loc[("quiz_even", "0")]
    ll = [o["sum_logits"] for o in line["model_output"]]
    assert list(row.loglikelihoods) == ll and row.gold == "2" and row.n_choices == 4
    assert row.prediction == 3 and not row.correct  # -12.50 (choice 3) beats -56.94 (gold)
    # per character of the continuation, leading space included (OLMES's num_chars): " the old stone bridge"
    chars = [o["num_chars"] for o in line["model_output"]]
    assert chars == [len(" a cat"), len(" forty-two"), len(" the old stone bridge"), len(" red")]
    assert list(row.choice_chars) == chars
    assert int(np.argmax(np.array(ll) / chars)) == 2 and row.correct_norm
    assert list(row.choice_tokens) == [o["num_tokens"] for o in line["model_output"]]
    assert row.prompt == "" and list(row.choices) == []  # OLMES's predictions hold no prompt text


def test_log_likelihoods_and_decisions_match_the_lm_eval_run_they_came_from():
    olmes = read_olmes(OLMES / "model_b").records
    lmeval = read_lmeval(LMEVAL / "model_b").records
    for task in ("quiz_even", "quiz_odd"):
        ours = olmes[olmes.task == task].set_index("item_id")
        theirs = lmeval[lmeval.category == task].assign(item_id=lambda f: f.item_id.str.split("/").str[-1])
        theirs = theirs.set_index("item_id").loc[ours.index]
        assert all(list(a) == list(b) for a, b in zip(ours.loglikelihoods, theirs.loglikelihoods))
        assert (ours.correct.values == theirs.correct.values).all()


def test_same_items_pair_and_another_task_config_does_not(olmes_copy):
    a = read_olmes(OLMES / "model_a").records.set_index(["task", "item_id"]).item_hash
    b = read_olmes(OLMES / "model_b").records.set_index(["task", "item_id"]).item_hash
    assert (a == b.reindex(a.index)).all() and a.nunique() == len(a)
    path = olmes_copy / "task-000-quiz_even-predictions.jsonl"
    rows = _lines(path)
    for row in rows:
        row["task_hash"] = "0" * 32  # e.g. 5-shot instead of 0-shot
    _write(path, rows)
    metrics = olmes_copy / "task-000-quiz_even-metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "task_hash": "0" * 32}))
    changed = read_olmes(olmes_copy).records.set_index(["task", "item_id"]).item_hash
    assert (changed.loc["quiz_even"] != a.loc["quiz_even"]).all()
    assert (changed.loc["quiz_odd"] == a.loc["quiz_odd"]).all()


def test_generative_rows():
    records = read_olmes(OLMES / "model_a").records
    row = records[(records.task == "arith_gen") & (records.item_id == "3")].iloc[0]
    line = _lines(OLMES / "model_a" / "task-002-arith_gen-predictions.jsonl")[3]
    assert row.n_choices == 0 and json.loads(row.gold) == [line["label"]] == ["7"]
    assert row.output == line["model_output"][0]["continuation"] and row.correct == bool(line["metrics"]["exact_match"])


def _edit(index, change):
    def edit(rows):
        change(rows[index])
    return edit


@pytest.mark.parametrize("edit,message", [
    (_edit(4, lambda r: r["metrics"].update(acc_raw=1 - r["metrics"]["acc_raw"])),
     r":5: recomputed acc_raw=\d from model_output differs from the file's acc_raw=\d"),
    (_edit(2, lambda r: r["metrics"].update(acc_per_char=1 - r["metrics"]["acc_per_char"])),
     r":3: recomputed acc_per_char="),
    (_edit(1, lambda r: r["model_output"][2].update(sum_logits=float("nan"))),
     r":2: non-finite log-likelihood\(s\)"),
    (_edit(0, lambda r: r.update(label=7)), r":1: label 7 is not an index of the 4 choices"),
    (_edit(0, lambda r: r.update(label="C")), r":1: label 'C' is not an index"),
    (_edit(3, lambda r: r.pop("task_hash")), r":4: no task_hash; is this an OLMES predictions file\?"),
    (_edit(3, lambda r: r.update(task_hash="f" * 32)), r":4: task_hash 'f+' differs from"),
    (_edit(6, lambda r: r.update(model_output=[{"sum_logits": -1.0}])), r":7: model_output is neither"),
])
def test_bad_lines_name_file_and_line(olmes_copy, edit, message):
    path = olmes_copy / "task-000-quiz_even-predictions.jsonl"
    rows = _lines(path)
    edit(rows)
    _write(path, rows)
    with pytest.raises(LogFormatError, match=message) as info:
        read_olmes(olmes_copy)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_mixed_files(olmes_copy, tmp_path):
    path = olmes_copy / "task-001-quiz_odd-predictions.jsonl"
    _write(path, _lines(path)[:-1])
    with pytest.raises(LogFormatError, match=r"15 predictions, but the task's metrics.json counts 16"):
        read_olmes(olmes_copy)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(OLMES / "model_a" / "task-000-quiz_even-predictions.jsonl", mixed)
    shutil.copy(OLMES / "model_b" / "task-001-quiz_odd-predictions.jsonl", mixed)
    with pytest.raises(LogFormatError, match=r"quiz_odd-predictions.jsonl: model_hash \w+, but .* has \w+"):
        read_olmes(mixed)
    (mixed / "task-005-quiz_odd-predictions.jsonl").write_text(
        (OLMES / "model_a" / "task-001-quiz_odd-predictions.jsonl").read_text())
    with pytest.raises(LogFormatError, match=r"task 'quiz_odd' also in"):
        read_olmes(mixed)
    bad = tmp_path / "task-000-x-predictions.jsonl"
    bad.write_text('{"doc_id": 0,\n')
    with pytest.raises(LogFormatError, match=r"x-predictions.jsonl:1: not valid JSON"):
        read_olmes(bad)
    with pytest.raises(LogFormatError, match=r"no task-NNN-<task>-predictions.jsonl files"):
        read_olmes(_empty(tmp_path))


def _empty(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    (path / "metrics-all.jsonl").write_text("{}\n")
    return path


def test_generative_metric_must_exist(olmes_copy):
    path = olmes_copy / "task-002-arith_gen-predictions.jsonl"
    rows = _lines(path)
    for row in rows:
        row["metrics"] = {"f1": 0.5, "pass_at_1": row["metrics"]["exact_match"]}
    _write(path, rows)
    with pytest.raises(LogFormatError, match=r":1: no exact_match in metrics; .*--metric \(it has f1, pass_at_1\)"):
        read_olmes(olmes_copy)
    assert read_olmes(olmes_copy, metric="pass_at_1").records.query("task == 'arith_gen'").correct.sum() == 0
    with pytest.raises(LogFormatError, match=r"metric f1 is 0.5; only 0/1 metrics"):
        read_olmes(olmes_copy, metric="f1")


def test_acc_uncond_primary_metric_is_noted(olmes_copy):
    path = olmes_copy / "task-000-quiz_even-metrics.json"
    info = json.loads(path.read_text())
    info["task_config"]["primary_metric"] = "acc_uncond"
    path.write_text(json.dumps(info))
    assert any("acc_uncond, which has no records column" in note for note in read_olmes(olmes_copy).notes)


def test_cli_import_and_compare(tmp_path):
    dirs = []
    for model, name in (("model_a", "A"), ("model_b", "B")):
        result = runner.invoke(app, ["import", "olmes", str(OLMES / model), "-o", str(tmp_path), "--name", name])
        assert result.exit_code == 0, result.output
        dirs.append(re.search(r"into (\S+)", result.output).group(1))
    assert "quiz_even: n=16  acc=0.3750" in result.output  # model_b: 6 of 16
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", *dirs, "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["dropped"] == {} and set(figures["tasks"]) == {"quiz_even", "quiz_odd", "arith_gen"}
    a, b = (read_olmes(OLMES / m).records.set_index(["task", "item_id"]).correct for m in ("model_a", "model_b"))
    for task, row in figures["tasks"].items():
        assert row["n_10"] == int((a.loc[task] & ~b.loc[task]).sum())
        assert row["n_01"] == int((~a.loc[task] & b.loc[task]).sum())
    missing = runner.invoke(app, ["import", "olmes", str(tmp_path / "nowhere"), "-o", str(tmp_path)])
    assert missing.exit_code == 2 and missing.output.strip().endswith("no such file or directory")
