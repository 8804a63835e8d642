"""Inspect AI eval logs → records, on real logs of Inspect's mock model (see data/make_inspect_fixtures.py).

The mock's answers are fixed in the generator, so the expected figures are
hand-computed here: quiz gold is "ABCD"[i % 4]; model_a answers ABCDABDD
(q6 wrong), model_b ABCCBBCD (q3, q4 wrong); arith gold 3, 5, ..., 13; model_a
answers 3 5 8 9 11 14 (a2, a5 wrong), model_b 3 6 7 9 12 13 (a1, a4 wrong).
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.importers import LogFormatError, read_inspect
from forgetscope.records.store import load_records

from .conftest import DATA

INSPECT = DATA / "inspect"
runner = CliRunner()


@pytest.fixture(scope="module")
def log_api():
    return pytest.importorskip("inspect_ai.log")


def _log(model: str, task: str):
    return next(p for p in (INSPECT / model).iterdir() if f"_{task}_" in p.name)


def _rewrite(log_api, source, target, change):
    log = log_api.read_eval_log(str(source))
    change(log)
    log_api.write_eval_log(log, str(target))
    return target


def test_logs_import_with_the_mocks_decisions(log_api):
    run = read_inspect(INSPECT / "model_a", checkpoint="A")
    records = run.records.set_index(["task", "item_id"])
    assert run.backend == "inspect" and len(records) == 8 + 6
    quiz = records.loc["quiz"]
    assert quiz.correct.sum() == 7 and not quiz.loc["q6"].correct
    q6 = quiz.loc["q6"]
    assert q6.gold == "2" and q6.prediction == 3 and q6.extracted == "D" and q6.n_choices == 4
    assert list(q6.choices) == ["black", "white", "red", "blue"]
    assert "Which colour belongs to riddle 6?" in q6.prompt and "C) red" in q6.prompt
    assert q6.correct_norm == q6.correct_per_token == q6.correct and list(q6.loglikelihoods) == []
    arith = records.loc["arith"]
    assert sorted(arith.index[~arith.correct]) == ["a2", "a5"]
    a2 = arith.loc["a2"]
    assert a2.n_choices == 0 and json.loads(a2.gold) == ["7"] and a2.output == "8" and a2.prediction == -1


def test_json_and_eval_logs_pair_item_for_item(log_api):
    a = read_inspect(INSPECT / "model_a").records.set_index(["task", "item_id"])
    b = read_inspect(INSPECT / "model_b").records.set_index(["task", "item_id"])  # its quiz log is .json
    assert _log("model_b", "quiz").suffix == ".json" and _log("model_a", "quiz").suffix == ".eval"
    assert (a.item_hash == b.item_hash.reindex(a.index)).all() and a.item_hash.nunique() == len(a)
    assert sorted(b.loc["quiz"].index[~b.loc["quiz"].correct]) == ["q3", "q4"]


def test_compare_of_two_imports(tmp_path, log_api):
    dirs = []
    for model, name in (("model_a", "A"), ("model_b", "B")):
        result = runner.invoke(app, ["import", "inspect", str(INSPECT / model), "-o", str(tmp_path), "--name", name])
        assert result.exit_code == 0, result.output
        dirs.append(re.search(r"into (\S+)", result.output).group(1))
    assert "quiz: n=8  acc=0.8750" in runner.invoke(
        app, ["import", "inspect", str(INSPECT / "model_a"), "-o", str(tmp_path), "--name", "A"]).output
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", *dirs, "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    tasks = figures["tasks"]
    assert figures["dropped"] == {}  # every item paired
    assert (tasks["quiz"]["n_10"], tasks["quiz"]["n_01"]) == (2, 1)  # q3, q4 forgotten; q6 learned
    assert (tasks["arith"]["n_10"], tasks["arith"]["n_01"]) == (2, 2)  # a1, a4 forgotten; a2, a5 learned


def test_epochs_are_repeats(log_api):
    path = next((INSPECT / "epochs").iterdir())
    records = read_inspect(path).records
    assert len(records) == 16 and sorted(records.repeat.unique()) == [0, 1]
    scores = {(s.id, s.epoch - 1): s.scores["choice"].value == "C" for s in log_api.read_eval_log(str(path)).samples}
    assert {(r.item_id, r.repeat): r.correct for r in records.itertuples()} == scores
    first = records[records.repeat == 0].set_index("item_id").item_hash
    assert (records[records.repeat == 1].set_index("item_id").item_hash == first).all()


def test_a_changed_prompt_changes_the_hash(tmp_path, log_api):
    def reword(log):
        log.samples[0].messages[0].content = "Pick one.\n\n" + log.samples[0].messages[0].text
    changed = _rewrite(log_api, _log("model_a", "quiz"), tmp_path / "2026-01-01T00-00-00_quiz_x.json", reword)
    before = read_inspect(_log("model_a", "quiz")).records.set_index("item_id").item_hash
    after = read_inspect(changed).records.set_index("item_id").item_hash
    assert before["q0"] != after["q0"] and (before.drop("q0") == after.drop("q0")).all()


def _set_score(value):
    def change(log):
        log.samples[2].scores["choice"].value = value
    return change


@pytest.mark.parametrize("change,message", [
    (_set_score("P"), r"sample 'q2': score choice is 'P'; only C/I .* \(P is partial credit\)"),
    (_set_score(float("nan")), r"sample 'q2': score choice is nan \(not finite\)"),
    (_set_score(0.5), r"sample 'q2': score choice is 0.5; only C/I"),
    (lambda log: setattr(log, "status", "error"), r"status is 'error', not 'success'"),
    (lambda log: log.samples[1].scores.update(other=log.samples[1].scores["choice"]),
     r"sample 'q1': several scorers \(choice, other\); name the one .* --metric"),
    (lambda log: setattr(log.samples[3], "target", "Z"), r"sample 'q3': target 'Z' is neither a letter"),
])
def test_undecidable_samples_are_refused(tmp_path, log_api, change, message):
    path = _rewrite(log_api, _log("model_a", "quiz"), tmp_path / "2026-01-01T00-00-00_quiz_x.eval", change)
    with pytest.raises(LogFormatError, match=message) as info:
        read_inspect(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_failed_sample_is_refused(tmp_path, log_api):
    from inspect_ai.log import EvalError

    def fail(log):
        log.samples[4].error = EvalError(message="model timed out", traceback="", traceback_ansi="")
    path = _rewrite(log_api, _log("model_a", "quiz"), tmp_path / "2026-01-01T00-00-00_quiz_x.eval", fail)
    with pytest.raises(LogFormatError, match=r"sample 'q4': the sample failed \(model timed out\)"):
        read_inspect(path)


def test_metric_picks_the_scorer(tmp_path, log_api):
    def second(log):
        for sample in log.samples:
            sample.scores["strict"] = sample.scores["choice"].model_copy(update={"value": "I"})
    path = _rewrite(log_api, _log("model_a", "quiz"), tmp_path / "2026-01-01T00-00-00_quiz_x.eval", second)
    assert read_inspect(path, metric="choice").records.correct.sum() == 7
    assert read_inspect(path, metric="strict").records.correct.sum() == 0
    with pytest.raises(LogFormatError, match=r"no score 'nope'; it has choice, strict"):
        read_inspect(path, metric="nope")


def test_mixed_runs_and_unreadable_files(tmp_path, log_api):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(_log("model_a", "quiz"), mixed)
    shutil.copy(_log("model_b", "quiz"), mixed)
    with pytest.raises(LogFormatError, match=r"task 'quiz' also in .*two runs are mixed here"):
        read_inspect(mixed)

    def other_model(log):
        log.eval.model = "hf/other"
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(_log("model_a", "quiz"), models)
    _rewrite(log_api, _log("model_a", "arith"), models / "2026-01-01T00-00-00_arith_x.eval", other_model)
    with pytest.raises(LogFormatError, match=r"quiz_\w+\.eval: model 'mockllm/model', but .*arith_x\.eval is of 'hf/other'"):
        read_inspect(models)
    junk = tmp_path / "2026-01-01T00-00-00_quiz_x.eval"
    junk.write_bytes(b"not a zip")
    with pytest.raises(LogFormatError, match=r"x.eval: not a readable Inspect eval log"):
        read_inspect(junk)
    with pytest.raises(LogFormatError, match=r"no Inspect logs"):
        read_inspect(_empty(tmp_path))


def test_a_directory_takes_every_eval_file_and_only_logs_among_json(tmp_path, log_api):
    shutil.copy(_log("model_a", "quiz"), tmp_path / "renamed.eval")
    (tmp_path / "logs.json").write_text('{"x": 1}')  # Inspect's listing of a log directory, not a log
    (tmp_path / "notes.json").write_text("[]")
    run = read_inspect(tmp_path, checkpoint="A")
    assert run.sources == [tmp_path / "renamed.eval"] and len(run.records) == 8


def _empty(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    (path / "notes.json").write_text("{}")
    return path


def test_cli_errors_are_one_line(tmp_path, log_api):
    junk = tmp_path / "2026-01-01T00-00-00_quiz_x.json"
    junk.write_text('{"version": 2')
    result = runner.invoke(app, ["import", "inspect", str(junk), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.startswith(f"error: {junk}: not a readable Inspect eval log")
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_records_land_in_the_store(tmp_path, log_api):
    result = runner.invoke(app, ["import", "inspect", str(INSPECT / "model_b"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = load_records([tmp_path])
    assert set(records.checkpoint) == {"mockllm/model"} and set(records.backend) == {"inspect"} and len(records) == 14


def test_without_inspect_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "inspect_ai", None)
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)
    with pytest.raises(LogFormatError, match=r"needs inspect_ai, which is not installed .*forgetscope\[inspect\]"):
        read_inspect(INSPECT / "model_a")
