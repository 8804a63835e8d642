"""Imported runs compare exactly as forgetscope's own evaluation of the same models does.

The fixtures were produced by lm-eval and lighteval on the two tiny models of
tests/conftest.py (tiny_llama_dir: seed 0, tiny_llama_dir_b: seed 1; see
data/make_fixtures.py). Here forgetscope evaluates those very models on the
same 32 items and the comparisons must be equal, figure for figure, through
the CLI: `import` both runs, then `compare` the records directories.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forgetscope.analysis import compare_records
from forgetscope.cli import app
from forgetscope.engine.evaluate import Checkpoint, evaluate
from forgetscope.records.store import load_records
from forgetscope.tasks import load_task

from .conftest import DATA, LIGHTEVAL, LMEVAL

runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ours(tmp_path_factory, tiny_llama_dir, tiny_llama_dir_b):
    """forgetscope's records of both models on items/quiz.jsonl (task quiz, categories quiz_even/quiz_odd)."""
    task = load_task(str(DATA / "items" / "quiz.jsonl"))
    out = tmp_path_factory.mktemp("fs-records")
    return [evaluate(Checkpoint(str(model), name=name), [task], out)
            for name, model in (("A", tiny_llama_dir), ("B", tiny_llama_dir_b))]


def _import(tmp_path, tool: str, source, name: str) -> str:
    result = runner.invoke(app, ["import", tool, str(source), "--output", str(tmp_path / "res"), "--name", name])
    assert result.exit_code == 0, result.output
    return re.search(r"into (\S+)", result.output).group(1)


def _doc_to_question(item_id: str, category: str) -> str:
    """lm-eval's quiz_even doc k is item q(2k), quiz_odd doc k is q(2k+1)."""
    return f"q{2 * int(item_id.split('/')[-1]) + (category == 'quiz_odd')}"


#: Means of the log-likelihoods' differences: equal up to the logs' rounding (the gap checked below).
SCORE_MEANS = ("kl_mean", "js_mean", "margin_change_mean")


def _same_figures(theirs: dict, expected: dict) -> None:
    assert {k: v for k, v in theirs.items() if k not in SCORE_MEANS} == \
        {k: v for k, v in expected.items() if k not in SCORE_MEANS}
    for name in SCORE_MEANS:
        assert theirs[name] == pytest.approx(expected[name], rel=1e-3)


@pytest.mark.parametrize("tool,root", [("lm-eval", LMEVAL), ("lighteval", LIGHTEVAL)])
def test_compare_of_imports_equals_compare_of_forgetscope(tmp_path, ours, tool, root):
    dir_a = _import(tmp_path, tool, root / "model_a", "A")
    dir_b = _import(tmp_path, tool, root / "model_b", "B")
    out = tmp_path / "imported.json"
    result = runner.invoke(app, ["compare", dir_a, dir_b, "--json", str(out)])
    assert result.exit_code == 0, result.output
    theirs = json.loads(out.read_text())
    mine = compare_records(*ours)
    expected = mine.to_json_dict()
    _same_figures(theirs["tasks"]["quiz"], expected["tasks"]["quiz"])
    if tool == "lm-eval":  # lm-eval's group subtasks are the categories of our items
        assert theirs["categories"].keys() == expected["categories"].keys()
        assert theirs["categories"]["quiz"].keys() == expected["categories"]["quiz"].keys()
        for category, figures in expected["categories"]["quiz"].items():
            _same_figures(theirs["categories"]["quiz"][category], figures)
    # and item by item: the same log-likelihoods and decisions
    imported = load_records([dir_a])
    imported = imported[imported.task == "quiz"]
    if tool == "lm-eval":
        ids = [_doc_to_question(i, c) for i, c in zip(imported.item_id, imported.category)]
    else:
        ids = [f"q{i}" for i in imported.item_id]
    reference = ours[0].set_index("item_id").loc[ids]
    assert imported.correct.tolist() == reference.correct.tolist()
    gap = np.abs(np.stack(imported.loglikelihoods.to_numpy()) - np.stack(reference.loglikelihoods.to_numpy()))
    assert gap.max() < 1e-4
    if tool == "lm-eval":  # lm-eval's acc_norm is forgetscope's (lighteval counts the leading space)
        assert imported.correct_norm.tolist() == reference.correct_norm.tolist()


def _same_table(theirs: pd.DataFrame, mine: pd.DataFrame) -> None:
    """Equal column for column, exactly; only the distance means within rtol 1e-4: they come from
    log-likelihoods the logs round (their gap is checked above)."""
    assert list(theirs.columns) == list(mine.columns)
    exact = [c for c in mine.columns if c not in SCORE_MEANS]
    pd.testing.assert_frame_equal(theirs[exact], mine[exact], check_categorical=False, check_exact=True)
    pd.testing.assert_frame_equal(theirs[list(SCORE_MEANS)], mine[list(SCORE_MEANS)], rtol=1e-4)


def test_transitions_table_of_imports_equals_forgetscopes(ours):
    from forgetscope.importers import read_lmeval

    a, b = (read_lmeval(LMEVAL / m, checkpoint=n).records for m, n in (("model_a", "A"), ("model_b", "B")))
    theirs = compare_records(a[a.task == "quiz"], b[b.task == "quiz"])
    mine = compare_records(*ours)
    _same_table(theirs.tasks, mine.tasks)
    _same_table(theirs.categories, mine.categories)
    assert mine.tasks.loc[0, "n"] == 32
