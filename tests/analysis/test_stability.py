"""Unstable flips: decision margins by hand, the counts compare reports, and their alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgetscope.analysis import compare_records
from forgetscope.analysis.stability import DEFAULT_FLIP_TOLERANCE
from forgetscope.analysis.transitions import unstable_counts
from forgetscope.records.margins import decision_margins


def _records(rows: list[tuple]) -> pd.DataFrame:
    """rows: (task, item_id, repeat, correct, loglikelihoods, choice_chars)."""
    return pd.DataFrame([
        {"checkpoint": "x", "task": t, "item_id": i, "item_hash": f"h{t}{i}", "category": "c" if t == "t" else "",
         "n_choices": len(ll), "repeat": r, "correct": bool(c), "correct_norm": bool(c), "correct_per_token": bool(c),
         "loglikelihoods": np.asarray(ll, dtype=float), "choice_chars": np.asarray(chars, dtype=np.int32),
         "choice_tokens": np.ones(len(ll), dtype=np.int32)}
        for t, i, r, c, ll, chars in rows
    ])


def test_margins_by_hand():
    records = _records([
        ("t", "a", 0, 1, [-1.0, -2.0, -1.5], [1, 4, 2]),  # acc: -1 vs -1.5; norm: -0.5 vs -0.75
        ("t", "b", 0, 1, [-1.0, -1.0, -4.0], [1, 2, 3]),  # tie under acc; norm: -0.5 vs -1
        ("t", "c", 0, 1, [-3.0], [3]),  # one choice: nothing can overtake it
        ("g", "d", 0, 0, [], []),  # generative: no margin
    ])
    assert decision_margins(records, "acc").tolist() == pytest.approx([0.5, 0.0, np.inf, np.nan], nan_ok=True)
    assert decision_margins(records, "acc_norm").tolist() == pytest.approx([0.25, 0.5, np.inf, np.nan], nan_ok=True)
    assert decision_margins(records, "acc_per_token")[:2].tolist() == pytest.approx([0.5, 0.0])


BEFORE = [
    ("t", "0", 0, 1, [-1.0, -1.0005, -3.0], [1, 1, 1]),  # 1→0, before margin 5e-4: unstable
    ("t", "1", 0, 1, [-1.0, -2.0, -3.0], [1, 1, 1]),  # 1→0, after margin 5e-4: unstable
    ("t", "2", 0, 1, [-1.0, -2.0, -3.0], [1, 1, 1]),  # 1→0, margins 1 and 1: a real flip
    ("t", "3", 0, 0, [-1.0, -1.0, -3.0], [1, 1, 1]),  # 0→1 from a tie: unstable
    ("t", "4", 0, 1, [-1.0, -1.0001, -3.0], [1, 1, 1]),  # 1→1 near a tie: not a flip
    ("g", "5", 0, 1, [], []),  # generative 1→0: never unstable
]
AFTER = [
    ("t", "0", 0, 0, [-2.0, -1.0, -3.0], [1, 1, 1]),
    ("t", "1", 0, 0, [-2.0, -1.9995, -5.0], [1, 1, 1]),
    ("t", "2", 0, 0, [-2.0, -1.0, -3.0], [1, 1, 1]),
    ("t", "3", 0, 1, [-1.0, -2.0, -3.0], [1, 1, 1]),
    ("t", "4", 0, 1, [-1.0, -1.0001, -3.0], [1, 1, 1]),
    ("g", "5", 0, 0, [], []),
]


def test_compare_counts_unstable_flips_apart():
    result = compare_records(_records(BEFORE), _records(AFTER), n_bootstrap=0, flip_tolerance=1e-3)
    tasks = result.tasks.set_index("task")
    assert tasks.loc["t", ["n_10", "n_10_unstable", "n_01", "n_01_unstable"]].tolist() == [3, 2, 1, 1]
    assert tasks.loc["g", ["n_10", "n_10_unstable", "n_01_unstable"]].tolist() == [1, 0, 0]
    assert result.overall[["n_10", "n_10_unstable", "n_01_unstable"]].iloc[0].tolist() == [4, 2, 1]
    assert result.categories[["task", "category", "n_10_unstable"]].values.tolist() == [["t", "c", 2]]
    # headline figures count every flip
    assert tasks.loc["t", "forgetting"] == pytest.approx(3 / 5)
    assert result.paired.frame["unstable"].tolist() == [True, True, False, True, True, False]
    data = result.to_json_dict()
    assert data["flip_tolerance"] == 1e-3
    assert data["tasks"]["t"]["n_10_unstable"] == 2 and data["tasks"]["t"]["n_01_unstable"] == 1
    assert data["overall"]["n_10_unstable"] == 2


def test_tolerance_decides_and_default_is_on():
    loose = compare_records(_records(BEFORE), _records(AFTER), n_bootstrap=0, flip_tolerance=2.0)
    assert loose.tasks.set_index("task").loc["t", "n_10_unstable"] == 3
    default = compare_records(_records(BEFORE), _records(AFTER), n_bootstrap=0)
    assert default.flip_tolerance == DEFAULT_FLIP_TOLERANCE == 1e-3
    assert default.tasks.set_index("task").loc["t", "n_10_unstable"] == 2
    for off in (None, 0):
        plain = compare_records(_records(BEFORE), _records(AFTER), n_bootstrap=0, flip_tolerance=off)
        assert "n_10_unstable" not in plain.tasks.columns and "unstable" not in plain.paired.frame.columns
        assert "flip_tolerance" not in plain.to_json_dict()


def test_alignment_does_not_depend_on_row_order():
    after = _records(AFTER).iloc[[5, 3, 1, 0, 4, 2]].reset_index(drop=True)
    result = compare_records(_records(BEFORE), after, n_bootstrap=0, flip_tolerance=1e-3)
    tasks = result.tasks.set_index("task")
    assert tasks.loc["t", ["n_10_unstable", "n_01_unstable"]].tolist() == [2, 1]


def test_records_without_loglikelihoods_are_compared_as_before():
    before = _records(BEFORE).drop(columns=["loglikelihoods"])
    result = compare_records(before, _records(AFTER), n_bootstrap=0, flip_tolerance=1e-3)
    assert "n_10_unstable" not in result.tasks.columns and result.flip_tolerance is None
    assert result.notes == []


def test_counts_are_per_repeat_like_n_10():
    frame = pd.DataFrame({
        "task": ["a", "a", "a", "a", "b"], "category": "", "item_id": ["0", "0", "1", "1", "2"],
        "repeat": [0, 1, 0, 1, 0], "before": [True, True, True, False, False],
        "after": [False, False, False, False, True], "unstable": [True, True, True, True, True],
        "n_choices": 4,
    })
    table = unstable_counts(frame, ["task"]).set_index("task")
    # task a: 1→0 unstable rows: 3 over 2 repeats → 1.5; task b ran once: 1
    assert table.loc["a", "n_10_unstable"] == pytest.approx(1.5)
    assert table.loc["b", "n_01_unstable"] == pytest.approx(1.0)
    overall = unstable_counts(frame, [])
    assert overall["n_10_unstable"].iloc[0] == pytest.approx(1.5)


def test_noise_summary_by_hand():
    from forgetscope.analysis.stability import noise_summary

    a = _records([
        ("t", "0", 0, 1, [-1.0, -1.0004, -3.0], [1, 1, 1]),
        ("t", "1", 0, 1, [-1.0, -2.0, -3.0], [1, 1, 1]),
        ("g", "2", 0, 1, [], []),
    ])
    b = _records([
        ("t", "0", 0, 0, [-1.0003, -1.0001, -3.0], [1, 1, 1]),  # flipped by 3e-4 of noise
        ("t", "1", 0, 1, [-1.0, -2.00005, -3.0], [1, 1, 1]),
        ("g", "2", 0, 1, [], []),
    ])
    table = noise_summary(a, b).set_index("task")
    assert table.loc["t", ["n", "n_01", "n_10"]].tolist() == [2, 0, 1]
    assert table.loc["t", "flip_rate"] == pytest.approx(0.5)
    assert table.loc["t", "max_abs_dll"] == pytest.approx(3e-4)
    assert table.loc["t", "suggested_flip_tolerance"] == pytest.approx(6e-4)
    assert np.isnan(table.loc["g", "max_abs_dll"]) and table.loc["g", "flip_rate"] == 0
    assert table.loc["(all)", ["n", "n_10"]].tolist() == [3, 1]
    assert table.loc["(all)", "flip_rate"] == pytest.approx(1 / 3)


def test_compare_command_prints_and_writes_unstable_counts(tmp_path):
    import json

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from forgetscope.cli import app
    from forgetscope.records.schema import to_table

    paths = []
    for name, rows in (("before", BEFORE), ("after", AFTER)):
        records = _records(rows).assign(checkpoint=name)
        records["loglikelihoods"] = records["loglikelihoods"].map(list)
        records["choice_chars"] = records["choice_chars"].map(list)
        records["choice_tokens"] = records["choice_tokens"].map(list)
        path = tmp_path / f"{name}.parquet"
        pq.write_table(to_table(records.to_dict("records")), path)
        paths.append(str(path))
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", *paths, "--json", str(out), "--n-bootstrap", "0", "--wide"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "1→0 unstable" in result.output and "F and BT still count every flip" in result.output
    narrow = CliRunner().invoke(app, ["compare", *paths, "--n-bootstrap", "0"], env={"COLUMNS": "100"})
    assert "1→0 unstable" not in narrow.output and "--wide: also F, F chance, F max, BT" in narrow.output
    assert "unstable flips" in narrow.output  # the hint names them: they were counted
    data = json.loads(out.read_text())
    assert data["flip_tolerance"] == 1e-3
    assert (data["tasks"]["t"]["n_10"], data["tasks"]["t"]["n_10_unstable"]) == (3, 2)
    off = CliRunner().invoke(app, ["compare", *paths, "--json", str(out), "--n-bootstrap", "0",
                                   "--flip-tolerance", "0"])
    assert off.exit_code == 0 and "unstable" not in off.output
    assert "n_10_unstable" not in json.loads(out.read_text())["tasks"]["t"]


def test_equal_k_fast_path_matches_the_general_one():
    """Rows with the same number of choices take a partition; the margins are those of the general code."""
    from forgetscope.records.margins import margins_from_lists

    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=(500, 4)), 1)  # rounding makes ties
    scores[3] = -np.inf
    scores[7, :2] = np.nan
    flat, offsets = scores.ravel(), np.arange(0, 2001, 4)
    fast = margins_from_lists([(flat, offsets)], 500, "acc")
    mixed = margins_from_lists([(np.r_[flat, 0.0], np.r_[offsets, 2001])], 501, "acc")[:500]  # one row of k = 1
    np.testing.assert_array_equal(fast[np.isfinite(mixed)], mixed[np.isfinite(mixed)])
    assert (fast == 0).sum() > 10 and fast[3] == 0.0


@pytest.mark.parametrize("metric", ["acc", "acc_norm", "acc_per_token"])
def test_margins_read_with_the_records_equal_the_in_memory_ones(tmp_path, metric):
    """load_records(margins=) computes the margins from the Parquet list columns and drops the lists;
    a compare on such column-subset records counts the same unstable flips as on full records."""
    from forgetscope.records.margins import margin_column
    from forgetscope.records.schema import ANALYSIS_COLUMNS
    from forgetscope.records.store import load_records, save_records

    full_b, full_a = _records(BEFORE), _records(AFTER).assign(checkpoint="y")
    save_records(full_b, tmp_path / "b" / "records.parquet")
    save_records(full_a, tmp_path / "a" / "records.parquet")
    narrow_b = load_records([tmp_path / "b"], columns=ANALYSIS_COLUMNS, margins=metric)
    narrow_a = load_records([tmp_path / "a"], columns=ANALYSIS_COLUMNS, margins=metric)
    assert "loglikelihoods" not in narrow_b.columns and margin_column(metric) in narrow_b.columns
    np.testing.assert_array_equal(narrow_b[margin_column(metric)].to_numpy(), decision_margins(full_b, metric))
    narrow = compare_records(narrow_b, narrow_a, metric=metric, n_bootstrap=0)
    full = compare_records(full_b, full_a, metric=metric, n_bootstrap=0)
    columns = ["task", "n_10", "n_01", "n_10_unstable", "n_01_unstable"]
    assert narrow.flip_tolerance == full.flip_tolerance == DEFAULT_FLIP_TOLERANCE
    def table(result):
        return sorted([str(row[0])] + [int(v) for v in row[1:]] for row in result.tasks[columns].itertuples(index=False))

    assert table(narrow) == table(full)
    assert narrow.tasks["n_10_unstable"].sum() > 0



def test_a_list_column_reads_alike_from_python_lists_arrow_pandas_and_arrow():
    import pyarrow as pa

    from forgetscope.records.margins import flat_list_column

    lists = [[-1.0, -2.5], None, [], [-0.5, -0.25, -3.0]]  # a missing list counts as empty
    arrow = pa.array(lists, type=pa.list_(pa.float64()))
    for column in (pd.Series(lists, dtype=object), pd.Series(arrow, dtype=pd.ArrowDtype(arrow.type)),
                   pa.chunked_array([arrow.slice(0, 2), arrow.slice(2)]), arrow):
        values, offsets = flat_list_column(column)
        assert values.tolist() == [-1.0, -2.5, -0.5, -0.25, -3.0] and offsets.tolist() == [0, 2, 2, 2, 5]
    values, offsets = flat_list_column(arrow.slice(1))  # a slice starts its offsets at 0
    assert values.tolist() == [-0.5, -0.25, -3.0] and offsets.tolist() == [0, 0, 0, 3]
